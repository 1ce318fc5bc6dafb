"""Load on a running `companion serve` for fault tests and benchmarks: threads sending check-ins,
reads and health checks on keep-alive connections until the server is gone."""

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime


def checkin_body() -> dict:
    taken = datetime.now(UTC).isoformat()
    return {"id": str(uuid.uuid4()), "taken_at": taken, "redness": 1, "swelling": 1, "pain": 2}


class Load:
    """Each thread: half its requests are check-in POSTs, a quarter `GET /healthz`, a quarter
    `GET /api/aftercare`. Set `gone` once the server is told to stop: a thread then ends at its
    first refused connection."""

    def __init__(self, port: int, cookie: str, threads: int = 6, limit: float = 30):
        self.port, self.cookie = port, cookie
        self.answers, self.errors = Counter(), Counter()
        self.acked: set[str] = set()  # check-ins answered 200/201
        self.cut: set[str] = set()  # check-ins whose answer was lost (the phone replays them)
        self.gone = threading.Event()
        self.deadline = time.monotonic() + limit
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(threads)]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.deadline = min(self.deadline, time.monotonic() + 30)
        for thread in self.threads:
            thread.join()

    def run(self, step: int) -> None:
        conn = None
        while time.monotonic() < self.deadline:
            step += 1
            headers, body, checkin = {"Cookie": self.cookie}, None, None
            if step % 4 < 2:
                method, path = "GET", ("/healthz", "/api/aftercare")[step % 4]
            else:
                checkin = checkin_body()
                method, path, body = "POST", "/api/checkins", json.dumps(checkin).encode()
                headers["Content-Type"] = "application/json"
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except ConnectionRefusedError:
                conn.close()
                conn = None
                with self.lock:
                    self.errors["refused"] += 1
                if self.gone.is_set():
                    return  # the server has stopped listening
                time.sleep(0.05)
                continue
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                reset = isinstance(e, ConnectionError | http.client.HTTPException)
                with self.lock:
                    self.errors["reset" if reset else type(e).__name__] += 1
                    if checkin:
                        self.cut.add(checkin["id"])
                continue
            with self.lock:
                self.answers[resp.status] += 1
                if checkin and resp.status in (200, 201):
                    self.acked.add(checkin["id"])
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
