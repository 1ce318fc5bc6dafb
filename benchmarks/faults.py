"""Faults, for real: kill -9 mid-batch, a push service down, two `serve` on one database,
SIGTERM under load, and a full or read-only disk during check-ins.

    .venv/bin/python benchmarks/faults.py [--n 5000] [--only a,b,c,d,d2,e] [--keep]

Each scenario builds a fresh instance (temporary folder, migrated database) and prints
one line with its figures and PASS or FAIL:

a. kill -9: a real `companion worker` sends N due reminders to a push service in
   another process that answers in 20-50 ms; it is SIGKILLed once the service has
   counted half and while a batch is partly out (rows leased, some of their messages
   arrived and not recorded yet, others still to come), then started again. Every (device, reminder) pair must arrive;
   a duplicate may only be a reminder the killed process held leased when it died
   (its in-flight window, read from the database right after the kill), with the same
   tag so the phone replaces it.
b. push service down: dispatch.tick on a simulated clock (one tick a simulated second,
   as the scheduler does) while the push service answers 503 for 10 simulated minutes
   and N reminders come due, a tenth of them valid for 5 minutes only. Nothing may be
   lost, the backlog must go out in due order once it is back, and reminders past
   their validity must be expired, not sent.
c. two `companion serve` instances (two ports, one instance folder, each with its own
   dispatcher child) and N due reminders: each pair arrives exactly once.
d. SIGTERM during load: `companion serve` answers threads of requests (check-in
   POSTs, reads, health) while its dispatcher sends N reminders; SIGTERM goes to the
   server mid-load. No request may get a 5xx (refused or reset connections after the
   shutdown are counted apart), every check-in answered 201 must be stored, and no row
   may stay leased: a worker started afterwards must send everything still due.
d2. the same with a push service answering in 2-3 s, so that the dispatcher's drain
   outlasts the 30 s `serve` gives it after SIGTERM.
e. storage faults during check-ins, through a real `companion run` (its instance on a
   16 MB tmpfs, run without root's DAC override so file modes apply; needs root for the
   mount, else the same logic in-process as in tests/test_faults.py): the database file
   made read-only, then the disk filled up.
   Check-ins must get a clear 503 (storage_unavailable, Retry-After); the phone's
   outbox keeps them and, once the fault is gone, replays them (twice, as a phone that
   lost the answer would): each lands exactly once.
"""

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from testkit import processes, push_receiver
from testkit.processes import (
    COMPANION,
    Http,
    children,
    free_port,
    sign_in_client,
    wait_for_health,
)
from testkit.push_receiver import PushReceiver, ReceiverProcess

SUBJECT = "mailto:ops@clinic-bench.net"
env_for = partial(
    processes.env_for,
    COMPANION_VAPID_SUBJECT=SUBJECT,
    COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS="1",
)
PASSWORD = "correct horse battery"
JITTER_MS = (20, 50)


# -- a push service in its own process that lists what it received -------------------------


def serve_receiver(argv: list[str]) -> None:
    """Child process: push_receiver.main with a 20-50 ms answer and GET /_messages."""

    jitter = [a for a in argv if a.startswith("--jitter-ms=")]
    argv = [a for a in argv if a not in jitter]
    low, high = (float(x) for x in jitter[0].split("=", 1)[1].split(",")) if jitter else (0, 0)

    class Jittered(push_receiver.PushReceiver):
        def _next_reply(self, sub):
            reply = super()._next_reply(sub)
            if high:
                time.sleep(random.uniform(low, high) / 1000)
            return reply

    class Handler(push_receiver._Handler):
        def do_GET(self) -> None:
            if self.path != "/_messages":
                return super().do_GET()
            receiver = self.server.receiver
            with receiver._changed:
                got = [
                    [m.subscription_id, (m.payload or {}).get("id"), (m.payload or {}).get("tag")]
                    for m in receiver.received
                ]
            body = json.dumps(got).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    push_receiver._Handler = Handler
    push_receiver.PushReceiver = Jittered
    push_receiver.main(argv)


class MessageReceiver(ReceiverProcess):
    def __init__(self, key: str, seed: str, jitter_ms=JITTER_MS):
        super().__init__(application_server_key=key, seed=seed)
        self._args.append(f"--jitter-ms={jitter_ms[0]},{jitter_ms[1]}")

    def command(self) -> list[str]:
        return [sys.executable, __file__, "--serve-receiver", *self._args]

    def received(self) -> int:
        return self.stats()["received"]

    def messages(self) -> list[tuple[str, int, str]]:
        with urllib.request.urlopen(f"{self.base_url}/_messages", timeout=60) as answer:
            return [tuple(m) for m in json.loads(answer.read())]


# -- instances, devices and reminders ------------------------------------------------------


def make_instance(folder: Path):
    os.environ["COMPANION_INSTANCE_PATH"] = str(folder)
    from companion import create_app
    from companion.cli import migrate

    app = create_app({"VAPID_SUBJECT": SUBJECT, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True})
    migrate(app)
    return app


def populate(
    db, receiver, clients: int, second_every: int = 10, clinic_id: int | None = None
) -> tuple[int, dict]:
    """`clients` new clients with one device each (every tenth has a second one), in a new
    clinic unless one is given. Returns (clinic id, client id -> device names).
    """
    from companion.accounts import store as clinic
    from companion.db import iso, utcnow, write

    now = utcnow()
    stamp = iso(now)
    first = (db.conn.execute("SELECT max(id) FROM clients").fetchone()[0] or 0) + 1
    devices = {
        i: [f"c{i}"] + ([f"c{i}b"] if i % second_every == 0 else [])
        for i in range(first, first + clients)
    }
    with write(db):
        if clinic_id is None:
            clinic_id = clinic.create_clinic(db, "Faults Clinic", "Europe/London", None, now)
        db.conn.executemany(
            "INSERT INTO clients (id, clinic_id, name, timezone, created_at, updated_at)"
            " VALUES (?, ?, ?, 'Europe/London', ?, ?)",
            [(i, clinic_id, f"Client {i}", stamp, stamp) for i in devices],
        )
        subs = []
        for i, names in devices.items():
            for name in names:
                info = receiver.new_subscription(name).info
                subs.append((i, info["endpoint"], info["p256dh"], info["auth"], stamp))
        db.conn.executemany(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " created_at) VALUES ('client', ?, ?, ?, ?, ?)",
            subs,
        )
    return clinic_id, devices


def add_rows(
    db, clinic_id: int, owners: list[int], dues: list[datetime], valid: list[timedelta], title: str
) -> list[dict]:
    """Queue one reminder per (owner, due, validity); return the rows (id, owner, due, expiry)."""
    from companion.db import iso, rows, utcnow, write

    body = "Put on a broad-spectrum sunscreen and avoid direct sun."
    stamp = iso(utcnow())
    with write(db):
        db.conn.executemany(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title,"
            " body, url, due_at, expires_at, next_attempt_at, created_at) VALUES ('client', ?,"
            " ?, ?, 'instruction', ?, ?, '/reminders', ?, ?, ?, ?)",
            [
                (o, clinic_id, o, title, body, iso(d), iso(d + v), iso(d), stamp)
                for o, d, v in zip(owners, dues, valid, strict=True)
            ],
        )
    return rows(
        db,
        "SELECT id, owner_id, due_at, expires_at FROM notifications WHERE title = ? ORDER BY id",
        (title,),
    )


def due_now(db, clinic_id: int, devices: dict, n: int, title: str) -> tuple[list[dict], set]:
    """n reminders due a second ago, spread over the clients; return rows and expected pairs."""
    from companion.db import utcnow

    ids = sorted(devices)
    owners = [ids[k % len(ids)] for k in range(n)]
    due = utcnow() - timedelta(seconds=1)
    queued = add_rows(db, clinic_id, owners, [due] * n, [timedelta(hours=12)] * n, title)
    pairs = {(name, r["id"]) for r in queued for name in devices[r["owner_id"]]}
    return queued, pairs


def states(db, title: str) -> Counter:
    """Count a scenario's reminders (they share a title) by status."""
    return Counter(
        {
            r[0]: r[1]
            for r in db.conn.execute(
                "SELECT status, count(*) FROM notifications WHERE title = ? GROUP BY status",
                (title,),
            )
        }
    )


def unsettled(db, title: str) -> int:
    return db.conn.execute(
        "SELECT count(*) FROM notifications WHERE title = ? AND status IN ('pending', 'leased')",
        (title,),
    ).fetchone()[0]


def wait_settled(db, title: str, timeout: float, watch=None) -> float:
    """Wait until none of the scenario's rows is pending or leased; return the seconds."""
    started = time.monotonic()
    while unsettled(db, title):
        if time.monotonic() - started > timeout:
            raise TimeoutError(
                f"rows still unsettled after {timeout:.0f} s: {dict(states(db, title))}"
            )
        if watch is not None:
            watch()
        time.sleep(0.1)
    return time.monotonic() - started


def tally(messages, pairs: set) -> tuple[Counter, int, int, int]:
    """Count per (device, reminder); return (counts, missing, unexpected, wrong tags)."""
    counts = Counter((sub, row_id) for sub, row_id, _ in messages)
    wrong_tags = sum(tag != f"companion-{row_id}" for _, row_id, tag in messages)
    return counts, len(pairs - set(counts)), len(set(counts) - pairs), wrong_tags


# -- processes --------------------------------------------------------------------------------


def spawn(args: list[str], env: dict, log: Path, prefix=()) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*prefix, COMPANION, *args], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 90) -> int | None:
    """Signal a child we started and wait for it; kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def checkin_body(note: str = "") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "taken_at": datetime.now(UTC).isoformat(),
        "redness": 1,
        "swelling": 1,
        "pain": 2,
        "note": note,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# -- a. kill -9 mid-batch -----------------------------------------------------------------


def mid_batch(db, receiver, half: int) -> bool:
    """True once half the messages arrived and a leased batch is partly out: some of its
    messages arrived (not recorded yet), others not yet."""
    received = receiver.received()
    if received < half:
        return False
    out, recorded = db.conn.execute(
        "SELECT (SELECT count(*) FROM notifications n JOIN push_subscriptions s"
        " ON s.owner_kind = 'client' AND s.owner_id = n.owner_id WHERE n.status = 'leased'),"
        " (SELECT count(*) FROM deliveries WHERE outcome = 'delivered')"
    ).fetchone()
    return recorded < received < recorded + out


def scenario_kill(n: int, folder: Path) -> bool:
    from companion.db import connect
    from companion.reminders import worker as scheduler

    app = make_instance(folder / "instance")
    lease = scheduler.Dispatcher(app).settings.lease_seconds
    log = folder / "worker.log"
    with MessageReceiver(app.config["VAPID_PUBLIC_KEY"], seed="faults-kill") as receiver:
        db = connect(app.config["DATABASE"])
        try:
            clinic_id, devices = populate(db, receiver, n)
            title = "Kill reminder"
            queued, pairs = due_now(db, clinic_id, devices, n, title)
            env = env_for(folder / "instance")
            worker = spawn(["worker"], env, log)
            try:
                deadline = time.monotonic() + 600
                while not mid_batch(db, receiver, len(pairs) // 2):
                    if worker.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the worker did not get halfway (see {log})")
                    time.sleep(0.005)
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                at_kill = receiver.received()
            finally:
                stop(worker, signal.SIGKILL)
            window = {
                r[0]
                for r in db.conn.execute(
                    "SELECT id FROM notifications WHERE status = 'leased' AND lease_owner LIKE ?",
                    (f"%:{worker.pid}:%",),
                )
            }
            before = states(db, title)
            restarted = time.monotonic()
            worker = spawn(["worker"], env, log)
            try:
                wait_settled(db, title, timeout=lease + 600)
                recovered = time.monotonic() - restarted
            finally:
                stopped = stop(worker)
            after = states(db, title)
            delivered_rows = db.conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 'delivered'"
                " GROUP BY notification_id, subscription_id HAVING count(*) > 1)"
            ).fetchone()[0]
        finally:
            db.close()
        messages = receiver.messages()
    counts, missing, unexpected, wrong_tags = tally(messages, pairs)
    duplicated = {key for key, c in counts.items() if c > 1}
    outside = {key for key in duplicated if key[1] not in window}
    extra = sum(c - 1 for c in counts.values())
    ok = (
        worker.returncode == stopped == 0
        and missing == unexpected == wrong_tags == 0
        and not outside
        and after == Counter({"sent": n})
        and delivered_rows == 0
    )
    print(
        f"a. kill -9 mid-batch: {n} reminders, {len(pairs)} (device, reminder) pairs; killed"
        f" at {at_kill} received with {len(window)} rows leased by it (the in-flight"
        f" window), {before['sent']} settled, {before['pending']} pending; restarted worker"
        f" settled all in {recovered:.1f} s (lease {lease} s); delivered"
        f" {len(pairs) - missing}/{len(pairs)} pairs, lost {missing}, duplicates {extra}"
        f" ({len(duplicated)} pairs, {len(outside)} outside the window, {wrong_tags} with"
        f" another tag); rows {dict(after)} ... {verdict(ok)}",
        flush=True,
    )
    return ok


# -- b. push service down for 10 simulated minutes ----------------------------------------


class RecordingSender:
    """Wraps the production Sender and notes the order rows are handed to it."""

    def __init__(self, inner):
        self.inner = inner
        self.order: list[int] = []

    def send_many(self, jobs):
        self.order.extend(job[0][0] for job in jobs)
        return self.inner.send_many(jobs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def scenario_outage(n: int, folder: Path) -> bool:
    from companion.db import connect, parse_iso, rows
    from companion.reminders import dispatcher as dispatch
    from companion.reminders import worker as scheduler

    app = make_instance(folder / "instance")
    t0 = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)  # the push service goes down
    outage = timedelta(minutes=10)
    with PushReceiver(application_server_key=app.config["VAPID_PUBLIC_KEY"]) as receiver:
        db = connect(app.config["DATABASE"])
        try:
            clients = min(n, 1000)
            clinic_id, _ = populate(db, receiver, clients, second_every=clients + 1)
            span = (outage + timedelta(minutes=1)).total_seconds()
            order = list(range(n))
            random.Random(7).shuffle(order)  # planned in any order; due order is what counts
            dues = [t0 - timedelta(minutes=1) + timedelta(seconds=span * k / n) for k in order]
            valid = [timedelta(minutes=5) if k % 10 == 0 else timedelta(hours=12) for k in order]
            queued = add_rows(
                db, clinic_id, [k % clients + 1 for k in order], dues, valid, "Outage reminder"
            )
            dispatcher = scheduler.Dispatcher(app)
            settings = dispatcher.settings
            sender = RecordingSender(dispatcher.get_sender(db))
            clock = [t0 - timedelta(minutes=1)]
            ticks = 0

            def tick():
                nonlocal ticks
                dispatch.tick(db, sender, lambda: clock[0], dispatcher.owner, settings)
                clock[0] += timedelta(seconds=1)  # the scheduler's interval
                ticks += 1

            while clock[0] < t0:
                tick()
            before = receiver.requests
            receiver.respond_status(None, 503, "Service Unavailable")
            while clock[0] < t0 + outage:
                tick()
            during = receiver.requests - before
            waiting = unsettled(db, "Outage reminder")
            receiver.reset(None)
            back, sent_from = clock[0], len(sender.order)
            while unsettled(db, "Outage reminder") and clock[0] < back + timedelta(minutes=30):
                tick()
            drained = clock[0] - back
            final = {
                r["id"]: r
                for r in rows(
                    db,
                    "SELECT id, status, status_reason, sent_at, expires_at, due_at"
                    " FROM notifications WHERE title = 'Outage reminder'",
                )
            }
            dispatcher.sender.close()
        finally:
            db.close()
        arrived = [m.payload["id"] for m in receiver.received]
    due_of = {r["id"]: r["due_at"] for r in queued}
    sent = {i for i, r in final.items() if r["status"] == "sent"}
    expired = {
        i
        for i, r in final.items()
        if r["status"] in ("skipped", "failed") and "expired" in (r["status_reason"] or "")
    }
    lost = len(final) - len(sent) - len(expired) + len(set(arrived) - sent)
    stale_sent = sum(
        parse_iso(final[i]["sent_at"]) >= parse_iso(final[i]["expires_at"]) for i in sent
    )
    expired_arrived = len(expired & set(arrived))
    expired_early = sum(parse_iso(final[i]["expires_at"]) > back + drained for i in expired)
    # Order after the return: rows handed to the sender for the first time since.
    seen, drain = set(), []
    for row_id in sender.order[sent_from:]:
        if row_id not in seen:
            seen.add(row_id)
            drain.append(row_id)
    inversions = sum(due_of[a] > due_of[b] for a, b in zip(drain, drain[1:], strict=False))
    rank = {i: k for k, i in enumerate(sorted(sent, key=lambda i: (due_of[i], i)))}
    displacement = max((abs(k - rank[i]) for k, i in enumerate(arrived)), default=0)
    ok = (
        lost == 0
        and stale_sent == 0
        and expired_arrived == 0
        and expired_early == 0
        and inversions == 0
        and sorted(arrived) == sorted(sent)
        and len(expired) > 0
    )
    print(
        f"b. push service down 10 min (simulated, 503): {n} reminders due from 1 min before"
        f" to the end ({n // 10} valid 5 min); {during} requests during the outage, {waiting}"
        f" waiting at its end; sent {len(sent)}, expired {len(expired)} (all past validity"
        f" before they could go: {expired_arrived} reached a phone, {expired_early} expired"
        f" early), lost {lost}, sent past validity {stale_sent}; backlog of {len(drain)} drained"
        f" {drained.total_seconds():.0f} s after the return, handed to the sender in due"
        f" order ({inversions} inversions; arrival max displacement {displacement} with"
        f" {scheduler.SENDER_THREADS} in flight); {ticks} ticks ... {verdict(ok)}",
        flush=True,
    )
    return ok


# -- c. two `serve` instances on one database ---------------------------------------------


def scenario_two_serves(n: int, folder: Path) -> bool:
    from companion.db import connect

    app = make_instance(folder / "instance")
    env = env_for(folder / "instance")
    with MessageReceiver(app.config["VAPID_PUBLIC_KEY"], seed="faults-two") as receiver:
        db = connect(app.config["DATABASE"])
        serves = []
        try:
            clinic_id, devices = populate(db, receiver, n)
            ports = [free_port(), free_port()]
            for k, port in enumerate(ports):
                serves.append(
                    spawn(
                        ["serve", "--port", str(port), "--workers", "1", "--threads", "2"],
                        env,
                        folder / f"serve{k}.log",
                    )
                )
            for port, proc in zip(ports, serves, strict=True):
                wait_for_health(port, proc)
            dispatchers = [set(children(p.pid)) for p in serves]
            title = "Two serves reminder"
            queued, pairs = due_now(db, clinic_id, devices, n, title)
            owners = set()

            def watch():
                owners.update(
                    r[0].split(":")[1]
                    for r in db.conn.execute(
                        "SELECT DISTINCT lease_owner FROM notifications WHERE status = 'leased'"
                    )
                )

            took = wait_settled(db, title, timeout=600, watch=watch)
            after = states(db, title)
            twice = db.conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 'delivered'"
                " GROUP BY notification_id, subscription_id HAVING count(*) > 1)"
            ).fetchone()[0]
        finally:
            codes = [stop(p) for p in serves]
            db.close()
        messages = receiver.messages()
    counts, missing, unexpected, wrong_tags = tally(messages, pairs)
    duplicates = sum(c - 1 for c in counts.values())
    claimed_by = {pid for pid in owners if any(int(pid) in kids for kids in dispatchers)}
    ok = (
        missing == unexpected == duplicates == wrong_tags == twice == 0
        and len(claimed_by) == 2
        and after == Counter({"sent": n})
        and codes == [0, 0]
    )
    print(
        f"c. two serve instances, one database: {n} reminders, {len(pairs)} pairs; claims"
        f" seen from {len(claimed_by)} dispatchers (one per serve); settled in {took:.1f} s;"
        f" received {len(messages)}, missing {missing}, duplicates {duplicates}; rows"
        f" {dict(after)}; exits {codes} ... {verdict(ok)}",
        flush=True,
    )
    return ok


# -- d. SIGTERM during load ---------------------------------------------------------------


class Load:
    """Threads sending a bounded stream of requests until the server is gone."""

    def __init__(self, port: int, phone: Http, threads: int, limit: float):
        self.port, self.cookie = port, phone.cookie_header()
        self.statuses: Counter = Counter()
        self.errors: Counter = Counter()
        self.acked: set[str] = set()
        self.cut: set[str] = set()  # check-ins whose answer was lost (the phone replays them)
        self.terminated = threading.Event()
        self.deadline = time.monotonic() + limit
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(threads)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join()

    def run(self, k: int) -> None:
        conn, step = None, k
        while time.monotonic() < self.deadline:
            step += 1
            kind = step % 4
            headers, body, checkin = {"Cookie": self.cookie}, None, None
            if kind == 0:
                method, path = "GET", "/healthz"
            elif kind == 1:
                method, path = "GET", "/api/aftercare"
            else:
                checkin = checkin_body()
                method, path, body = "POST", "/api/checkins", json.dumps(checkin).encode()
                headers["Content-Type"] = "application/json"
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                with self.lock:
                    self.statuses[resp.status] += 1
                    if checkin and resp.status in (200, 201):
                        self.acked.add(checkin["id"])
                if resp.will_close:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                conn.close()
                conn = None
                with self.lock:
                    self.errors["refused"] += 1
                if self.terminated.is_set():
                    break  # the server is gone
                time.sleep(0.05)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                with self.lock:
                    self.errors[
                        "reset"
                        if isinstance(e, ConnectionError | http.client.HTTPException)
                        else type(e).__name__
                    ] += 1
                    if checkin:
                        self.cut.add(checkin["id"])
        if conn is not None:
            conn.close()


def scenario_sigterm(
    n: int,
    folder: Path,
    load_seconds: float = 3.0,
    jitter_ms=JITTER_MS,
    label: str = "d. SIGTERM during load",
) -> bool:
    from companion.db import connect
    from companion.reminders import worker as scheduler

    app = make_instance(folder / "instance")
    lease = scheduler.Dispatcher(app).settings.lease_seconds
    env = env_for(folder / "instance", COMPANION_CHECKIN_RATE_PER_HOUR="1000000")
    with MessageReceiver(app.config["VAPID_PUBLIC_KEY"], "faults-term", jitter_ms) as receiver:
        db = connect(app.config["DATABASE"])
        port = free_port()
        serve = spawn(
            ["serve", "--port", str(port), "--workers", "2", "--threads", "4"],
            env,
            folder / "serve.log",
        )
        load = None
        try:
            wait_for_health(port, serve)
            phone, _ = sign_in_client(port, "dr@clinic-bench.net", PASSWORD)
            clinic_id = db.conn.execute("SELECT id FROM clinics").fetchone()[0]
            _, devices = populate(db, receiver, n, clinic_id=clinic_id)
            title = "Term reminder"
            queued, pairs = due_now(db, clinic_id, devices, n, title)
            load = Load(port, phone, threads=8, limit=load_seconds + 60).start()
            time.sleep(load_seconds)
            before = states(db, title)
            sent_at_term = receiver.received()
            term = time.monotonic()
            serve.send_signal(signal.SIGTERM)
            load.terminated.set()
            try:
                code = serve.wait(timeout=120)
            except subprocess.TimeoutExpired:
                code = None
            exited = time.monotonic() - term
            load.join()
        finally:
            if load is not None:
                load.terminated.set()
                load.deadline = 0
                load.join()
            stop(serve, signal.SIGKILL)
        at_exit = states(db, title)
        stuck = db.conn.execute(
            "SELECT count(*), max(lease_until) FROM notifications WHERE status = 'leased'"
        ).fetchone()
        stored = {r[0] for r in db.conn.execute("SELECT id FROM checkins")}
        # Whatever is still due (or was left leased) must go out from a new worker.
        restarted = time.monotonic()
        worker = spawn(["worker"], env, folder / "worker.log")
        try:
            wait_settled(db, title, timeout=lease + 300)
            recovered = time.monotonic() - restarted
        finally:
            stop(worker)
        after = states(db, title)
        db.close()
        messages = receiver.messages()
    counts, missing, unexpected, wrong_tags = tally(messages, pairs)
    duplicates = sum(c - 1 for c in counts.values())
    server_errors = {s: c for s, c in load.statuses.items() if s >= 500}
    log = (folder / "serve.log").read_text(errors="replace")
    killed = " (its dispatcher killed after 30 s)" if "did not stop within" in log else ""
    lost_acks = len(load.acked - stored)
    ok = (
        not server_errors
        and code == 0
        and lost_acks == 0
        and stuck[0] == 0
        and missing == unexpected == wrong_tags == 0
        and after == Counter({"sent": n})
    )
    print(
        f"{label}: {sum(load.statuses.values())} answers"
        f" {dict(sorted(load.statuses.items()))}, 5xx {sum(server_errors.values())},"
        f" after the shutdown {dict(load.errors) or 'no connection errors'}; check-ins"
        f" answered {len(load.acked)}, stored {len(load.acked & stored)}, cut off"
        f" {len(load.cut)} (the phone replays them); serve exited {code} in {exited:.1f} s"
        f"{killed};"
        f" reminders at SIGTERM {dict(before)} ({sent_at_term} received), at exit"
        f" {dict(at_exit)}, left leased {stuck[0]}; a new worker settled the rest in"
        f" {recovered:.1f} s: {len(pairs) - missing}/{len(pairs)} pairs delivered,"
        f" duplicates {duplicates} ... {verdict(ok)}",
        flush=True,
    )
    return ok


# -- e. disk full, database read-only -------------------------------------------------------


def storage_faults(post, faults) -> list[dict]:
    """Check in while each fault lasts (until 3 are refused), then replay the phone's outbox.

    post(body) -> (status, answer, headers); faults: [(name, apply, remove)].
    """
    results = []
    for name, apply, remove in faults:
        statuses, outbox, landed, bad = Counter(), [], set(), []
        apply()
        try:
            for _ in range(200):
                body = checkin_body(note="n" * 2000)  # needs new pages: a full disk shows
                status, answer, headers = post(body)
                statuses[status] += 1
                if status == 503:
                    code = ((answer or {}).get("error") or {}).get("code")
                    retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                    if code != "storage_unavailable" or not retry:
                        bad.append((status, code, retry))
                    outbox.append(body)  # the phone keeps it and tries again later
                    if len(outbox) == 3:
                        break
                elif status == 201:
                    landed.add(body["id"])
                else:
                    bad.append((status, answer))
        finally:
            remove()
        replays = Counter(post(body)[0] for body in outbox)  # back online: 201
        replays.update(post(body)[0] for body in outbox)  # the answer was lost: 200
        results.append(
            {
                "name": name,
                "statuses": statuses,
                "outbox": [b["id"] for b in outbox],
                "landed": landed,
                "replays": replays,
                "bad": bad,
            }
        )
    return results


def check_stored(database: str, results: list[dict], before: int) -> tuple[bool, list[str]]:
    conn = sqlite3.connect(database)
    try:
        total = conn.execute("SELECT count(*) FROM checkins").fetchone()[0]
        lines, ok = [], True
        expected = before
        for r in results:
            ids = r["outbox"] + sorted(r["landed"])
            once = (
                conn.execute(
                    f"SELECT count(*) FROM checkins WHERE id IN ({','.join('?' * len(ids))})", ids
                ).fetchone()[0]
                if ids
                else 0
            )
            expected += len(ids)
            good = (
                r["statuses"][503] == len(r["outbox"]) == 3
                and not r["bad"]
                and r["replays"] == Counter({201: 3, 200: 3})
                and once == len(ids)
            )
            ok &= good
            lines.append(
                f"{r['name']}: answers {dict(sorted(r['statuses'].items()))}, 503s"
                f" {r['statuses'][503]} (storage_unavailable + Retry-After),"
                f" other errors {len(r['bad'])}; outbox replayed"
                f" {dict(sorted(r['replays'].items()))}, stored once {once}/{len(ids)}"
            )
        return ok and total == expected, lines
    finally:
        conn.close()


# Root, but without the capabilities that let root write a read-only file: file
# permissions then apply to the server as they would to a service user.
UNPRIVILEGED = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def scenario_storage(folder: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return storage_in_process(folder, "needs root and setpriv")
    disk = folder / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        return storage_in_process(folder, f"mount failed: {mounted.stderr.strip()}")
    server = None
    try:
        instance = disk / "instance"
        instance.mkdir()
        env = env_for(instance, COMPANION_CHECKIN_RATE_PER_HOUR="1000000")
        port = free_port()
        server = spawn(["run", "--port", str(port)], env, folder / "run.log", UNPRIVILEGED)
        wait_for_health(port, server)
        phone, _ = sign_in_client(port, "dr@clinic-bench.net", PASSWORD)
        assert phone.call("POST", "/api/checkins", checkin_body())[0] == 201
        database = instance / "companion.sqlite3"
        filler = disk / "filler"

        def fill():
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for size in (1 << 20, 4096):
                    with contextlib.suppress(OSError):
                        while True:
                            os.write(fd, b"\0" * size)
            finally:
                os.close(fd)

        def writable():
            # SQLite gives a -wal or -shm file it creates the database file's mode: made
            # while the file was 0444, they stay read-only after it is 0644 again, and every
            # write fails until they are fixed too (as `chmod 0644 companion.sqlite3*` does).
            left = [
                p.name for p in instance.glob("companion.sqlite3-*") if not p.stat().st_mode & 0o200
            ]
            for path in instance.glob("companion.sqlite3*"):
                path.chmod(0o644)
            notes.append(f"read-only {', '.join(left)} left by SQLite" if left else "")

        notes: list[str] = []
        results = storage_faults(
            lambda body: phone.call("POST", "/api/checkins", body),
            [
                ("read-only (database file chmod 0444)", lambda: database.chmod(0o444), writable),
                ("disk full (tmpfs filled)", fill, filler.unlink),
            ],
        )
        code = stop(server, signal.SIGINT, timeout=60)
        ok, lines = check_stored(str(database), results, before=1)
    finally:
        if server is not None:
            stop(server, signal.SIGKILL)
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    ok &= code == 0
    repaired = f" (repaired with chmod 0644 companion.sqlite3*: {notes[0]})" if notes[0] else ""
    print(
        "e. storage faults during check-ins, real `companion run` (16 MB tmpfs, no DAC override):"
        f" {'; '.join(lines)}{repaired}; exit {code} ... {verdict(ok)}",
        flush=True,
    )
    return ok


def storage_in_process(folder: Path, why: str) -> bool:
    """The same faults in-process, as tests/test_faults.py makes them (PRAGMAs)."""
    import conftest

    from companion import create_app
    from companion import db as companion_db
    from companion.cli import migrate

    os.environ["COMPANION_INSTANCE_PATH"] = str(folder / "instance")
    app = create_app({"TESTING": True, "VAPID_SUBJECT": SUBJECT, "CHECKIN_RATE_PER_HOUR": 10**6})
    migrate(app)
    phone = conftest.World(app).c1
    real_connect = companion_db.connect

    def faulty(pragma):
        def connect(path):
            db = real_connect(path)
            pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
            db.conn.execute(pragma.format(pages=pages))
            return db

        return lambda: setattr(companion_db, "connect", connect)

    def heal():
        companion_db.connect = real_connect

    def post(body):
        r = phone.post("/api/checkins", body)
        return r.status_code, r.json, dict(r.headers)

    before = sqlite3.connect(app.config["DATABASE"])
    try:
        count = before.execute("SELECT count(*) FROM checkins").fetchone()[0]
    finally:
        before.close()
    results = storage_faults(
        post,
        [
            ("disk full (PRAGMA max_page_count)", faulty("PRAGMA max_page_count = {pages}"), heal),
            ("read-only (PRAGMA query_only)", faulty("PRAGMA query_only = ON"), heal),
        ],
    )
    ok, lines = check_stored(app.config["DATABASE"], results, before=count)
    print(
        f"e. storage faults during check-ins, in-process ({why}): {'; '.join(lines)} ..."
        f" {verdict(ok)}",
        flush=True,
    )
    return ok


# -- main -------------------------------------------------------------------------------------

SCENARIOS = {
    "a": lambda args, folder: scenario_kill(args.n, folder),
    "b": lambda args, folder: scenario_outage(args.n, folder),
    "c": lambda args, folder: scenario_two_serves(args.n, folder),
    "d": lambda args, folder: scenario_sigterm(args.n, folder),
    "d2": lambda args, folder: scenario_sigterm(
        args.n,
        folder,
        jitter_ms=(2000, 3000),
        label="d2. SIGTERM during load, push service answering in 2-3 s",
    ),
    "e": lambda args, folder: scenario_storage(folder),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="reminders due in a, b, c and d")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help="scenarios to run, e.g. a,c (default: all)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (logs)")
    args = parser.parse_args()
    # Started in the background, SIGINT may be ignored, and children would inherit that:
    # `companion run` is stopped with SIGINT (Ctrl+C) here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    failed = []
    wanted = args.only.split(",")
    for key in [k for k in SCENARIOS if k in wanted]:
        folder = Path(tempfile.mkdtemp(prefix=f"companion-faults-{key}-"))
        started = time.monotonic()
        try:
            ok = SCENARIOS[key](args, folder)
        except Exception as exc:  # a scenario that cannot finish is a failure, not a crash
            traceback.print_exc()
            print(f"{key}. FAIL: {exc!r}", flush=True)
            ok = False
        finally:
            if args.keep:
                print(f"   (kept {folder})")
            else:
                shutil.rmtree(folder, ignore_errors=True)
        print(
            f"   ({key} took {time.monotonic() - started:.0f} s; load average"
            f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
            flush=True,
        )
        if not ok:
            failed.append(key)
    print("faults: " + ("all PASS" if not failed else f"FAIL in {', '.join(failed)}"))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-receiver"]:
        serve_receiver(sys.argv[2:])
    else:
        main()
