"""The `companion` command in child processes, for tests and benchmarks: port, env, start and
stop, health, children, and a small JSON client that signs a phone in over HTTP."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

COMPANION = str(Path(sys.executable).with_name("companion"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(instance: str | Path, **extra: str) -> dict:
    """This environment without any COMPANION_ setting, then the instance folder and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env.update(COMPANION_INSTANCE_PATH=str(instance), **extra)
    return env


def wait_for_health(port: int, proc: subprocess.Popen | None = None, timeout: float = 90) -> None:
    """Wait until GET /healthz answers 200; fail at once if `proc` exits first.

    The bound is generous (a loaded CI machine starts Python slowly); a server that never
    comes up still fails fast enough, and a hang is caught by the per-test timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the server did not become healthy")


def spawn(args: list[str], env: dict, log: Path, prefix=()) -> subprocess.Popen:
    """`companion ARGS` (after `prefix`, e.g. setpriv's) with its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*prefix, COMPANION, *args], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 90) -> int | None:
    """Signal a child we started and wait for it; kill it if it does not exit in time (None)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def children(pid: int) -> dict[int, str]:
    """The child processes of `pid`: their ids and command lines."""
    out = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True
    )
    return {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in out.stdout.splitlines()}


class Http:
    """A tiny JSON client with a cookie jar, one connection per call."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Cookie": self.cookie_header()} if self.cookies else {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            for cookie in resp.headers.get_all("Set-Cookie") or []:
                name, _, rest = cookie.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            return resp.status, parsed, dict(resp.headers)
        finally:
            conn.close()


def sign_in_client(port: int, email: str, password: str) -> tuple["Http", int]:
    """Set up the clinic over HTTP (its first practitioner `email`), then sign a client's phone
    in with an invite; return the phone's client and the client's id."""
    return sign_in_phone(lambda: Http(port), email, password)


def sign_in_phone(new_client, email: str, password: str):
    """sign_in_client through any client with Http's `call` (new_client() makes one per
    person), e.g. one over Flask's test client; return (phone, client id)."""
    practitioner = new_client()
    status, answer, _ = practitioner.call(
        "POST",
        "/api/setup",
        {
            "clinic_name": "Process Clinic",
            "timezone": "Europe/London",
            "email": email,
            "name": "Dr Process",
            "password": password,
        },
    )
    assert status == 201, (status, answer)
    status, client, _ = practitioner.call("POST", "/api/clients", {"name": "Alice"})
    assert status == 201, (status, client)
    performed = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    status, answer, _ = practitioner.call(
        "POST",
        f"/api/clients/{client['id']}/sessions",
        {
            "performed_at": performed,
            "areas": ["face"],
            "needle_depth_mm": 0.5,
            "device": "pen",
            "products": [],
            "notes": "",
        },
    )
    assert status == 201, (status, answer)
    status, invite, _ = practitioner.call("POST", f"/api/clients/{client['id']}/invites")
    assert status == 201, (status, invite)
    phone = new_client()
    status, answer, _ = phone.call("POST", f"/api/invites/{invite['token']}/redeem")
    assert status == 200, (status, answer)
    return phone, client["id"]
