"""Dispatch throughput and lateness against a real push service in another process.

    .venv/bin/python benchmarks/dispatch.py [--n 10000] [--delay-ms 0,50] [--future 100000]

For each push-service delay it builds a fresh instance (temporary folder, migrated
database), subscribes N clients (one device each) on a ReceiverProcess that checks
VAPID and decrypts every message, and adds --future rows due later, so that the
table is large while little is due. Then it measures, through the production path
(scheduler.Dispatcher's Sender and Settings, calling dispatch.tick):

- burst: N rows due at once, drained with back-to-back ticks -> messages/s;
- steady: rows coming due at --rate per second for --steady-seconds, ticked once a
  second as the scheduler does -> lateness (receiver's clock minus due time);
- naive: pywebpush.webpush() in a loop, a new connection and a new VAPID signature
  per message (--naive samples) -> messages/s, and our ratio to it;
- an empty tick (nothing due) with 0 rows and with the future rows;
- EXPLAIN QUERY PLAN of the claim query.

--workers overrides the Sender's requests in flight and connections per push service
(scheduler.SENDER_THREADS); --profile samples the burst's GIL holders with py-spy
(pip install py-spy).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from push_receiver import ReceiverProcess  # noqa: E402

SUBJECT = "mailto:bench@clinic-bench.net"


# -- the receiver, in its own process, also reporting when each message arrived ----------


def serve_receiver(argv: list[str]) -> None:
    """Child process: push_receiver.main, plus GET /_times?since=k."""
    import push_receiver

    class TimedHandler(push_receiver._Handler):
        def do_GET(self) -> None:
            if not self.path.startswith("/_times"):
                return super().do_GET()
            since = int(self.path.partition("since=")[2] or 0)
            receiver = self.server.receiver
            with receiver._changed:
                got = [(m.payload or {}).get("id") for m in receiver.received[since:]]
                at = [m.received_at for m in receiver.received[since:]]
            body = json.dumps({"id": got, "at": at}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    push_receiver._Handler = TimedHandler
    push_receiver.main(argv)


class TimedReceiver(ReceiverProcess):
    def command(self) -> list[str]:
        return [sys.executable, __file__, "--serve-receiver", *self._args]

    def cpu_seconds(self) -> float:
        """CPU time the receiver process has used (Linux /proc), or nan elsewhere."""
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def times(self, since: int = 0) -> list[tuple[int, float]]:
        with urllib.request.urlopen(f"{self.base_url}/_times?since={since}", timeout=30) as r:
            data = json.loads(r.read())
        return list(zip(data["id"], data["at"], strict=True))


# -- an instance with clients, devices and rows ---------------------------------------------


def make_instance(folder: Path):
    os.environ["COMPANION_INSTANCE_PATH"] = str(folder)
    from companion import create_app
    from companion.cli import migrate

    app = create_app({"VAPID_SUBJECT": SUBJECT, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True})
    migrate(app)
    return app


def populate(db, receiver, n: int, now: datetime) -> int:
    """Create a clinic and n clients with one device each; return the clinic id."""
    from companion.accounts import store as clinic
    from companion.db import iso, write

    stamp = iso(now)
    with write(db):
        clinic_id = clinic.create_clinic(db, "Bench Clinic", "Europe/London", None, now)
        db.conn.executemany(
            "INSERT INTO clients (id, clinic_id, name, timezone, created_at, updated_at)"
            " VALUES (?, ?, ?, 'Europe/London', ?, ?)",
            [(i, clinic_id, f"Client {i}", stamp, stamp) for i in range(1, n + 1)],
        )
        subs = []
        for i in range(1, n + 1):
            info = receiver.new_subscription(f"s{i}").info
            subs.append((i, info["endpoint"], info["p256dh"], info["auth"], stamp))
        db.conn.executemany(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " created_at) VALUES ('client', ?, ?, ?, ?, ?)",
            subs,
        )
    return clinic_id


def add_rows(
    db,
    clinic_id: int,
    dues: list[datetime],
    clients: int,
    created: datetime,
    title: str = "Sunscreen reminder",
) -> None:
    from companion.db import iso, write

    body = (
        "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or "
        "peeling can happen; it is usually mild and passes. Keep moisturising."
    )
    stamp = iso(created)
    params = []
    for k, due in enumerate(dues):
        owner = k % clients + 1
        params.append(
            (
                owner,
                clinic_id,
                owner,
                title,
                body,
                iso(due),
                iso(due + timedelta(hours=12)),
                iso(due),
                stamp,
            )
        )
    with write(db):
        db.conn.executemany(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title,"
            " body, url, due_at, expires_at, next_attempt_at, created_at) VALUES ('client', ?,"
            " ?, ?, 'instruction', ?, ?, '/reminders', ?, ?, ?, ?)",
            params,
        )


def count(db, status: str) -> int:
    return db.conn.execute(
        "SELECT count(*) FROM notifications WHERE status = ?", (status,)
    ).fetchone()[0]


# -- measurements -----------------------------------------------------------------------------


def empty_tick_us(db, sender, settings, repeat: int = 300) -> float:
    from companion.db import utcnow
    from companion.reminders import dispatcher as dispatch

    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = dispatch.tick(db, sender, utcnow, "bench-empty", settings)
        samples.append(time.perf_counter() - started)
        assert set(result) == {"reclaimed"}, result
    return statistics.median(samples) * 1e6


def burst(db, sender, settings, n: int, profile_to: Path | None) -> tuple[float, float]:
    """Drain n due rows with back-to-back ticks; return (messages/s, CPU us per message)."""
    from companion.db import utcnow
    from companion.reminders import dispatcher as dispatch

    spy = None
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=Path(sys.executable).parent)
    if profile_to is not None and py_spy:
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(os.getpid()),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(profile_to),
                "--nonblocking",
                "--gil",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        result = dispatch.tick(db, sender, utcnow, "bench", settings)
        if set(result) == {"reclaimed"}:
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait()
    return n / elapsed, cpu / n * 1e6


def steady(db, sender, settings, clinic_id, clients, rate, seconds, receiver):
    """Rows due at `rate`/s, ticked once a second; return lateness samples in seconds."""
    from companion.db import utcnow
    from companion.reminders import dispatcher as dispatch

    first = utcnow() + timedelta(seconds=2)
    total = int(rate * seconds)
    dues = [first + timedelta(seconds=k / rate) for k in range(total)]
    add_rows(db, clinic_id, dues, clients, utcnow(), title="Steady reminder")
    ids = [
        r[0]
        for r in db.conn.execute(
            "SELECT id FROM notifications WHERE title = 'Steady reminder' ORDER BY id"
        )
    ]
    due_of = {row_id: due.timestamp() for row_id, due in zip(ids, dues, strict=True)}
    since = receiver.stats()["received"]
    next_tick = time.monotonic()
    deadline = time.monotonic() + seconds + 30
    while time.monotonic() < deadline:
        dispatch.tick(db, sender, utcnow, "bench", settings)
        left = db.conn.execute(
            "SELECT count(*) FROM notifications WHERE id >= ? AND status IN ('pending', 'leased')",
            (ids[0],),
        ).fetchone()[0]
        if not left:
            break
        next_tick += 1.0  # APScheduler's interval job: once a second
        time.sleep(max(0.0, next_tick - time.monotonic()))
    lateness = [at - due_of[row_id] for row_id, at in receiver.times(since) if row_id in due_of]
    return lateness, total


def naive(pem: str, receiver, samples: int) -> tuple[float, float]:
    """pywebpush.webpush() per message: new connection, new VAPID signature.

    Returns (messages/s, CPU us per message).
    """
    from py_vapid import Vapid
    from pywebpush import webpush

    from companion.reminders.push import build_payload

    vapid = Vapid.from_pem(pem.encode())
    subs = [receiver.new_subscription(f"naive{k}") for k in range(samples)]
    payloads = [
        build_payload(
            "Sunscreen reminder",
            "Put on a broad-spectrum sunscreen.",
            "/reminders",
            f"naive-{k}",
            -k,
        )
        for k in range(samples)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for sub, payload in zip(subs, payloads, strict=True):
        webpush(
            {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
            data=payload,
            vapid_private_key=vapid,
            vapid_claims={"sub": SUBJECT},
            ttl=3600,
            timeout=10,
        )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return samples / elapsed, cpu / samples * 1e6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(delay_ms: float, args) -> None:
    from companion.db import connect, utcnow
    from companion.reminders import dispatcher as dispatch
    from companion.reminders import worker as scheduler

    folder = Path(tempfile.mkdtemp(prefix="companion-bench-"))
    try:
        app = make_instance(folder)
        pem = app.config["VAPID_PRIVATE_KEY"]
        with TimedReceiver(
            application_server_key=app.config["VAPID_PUBLIC_KEY"],
            delay_ms=delay_ms,
            seed=f"bench-{delay_ms}",
        ) as receiver:
            db = connect(app.config["DATABASE"])
            dispatcher = scheduler.Dispatcher(app)
            settings = dispatcher.settings
            if args.batch:
                settings.batch = args.batch
            if args.workers:
                from companion.reminders.push import Sender

                sender = Sender(
                    pem,
                    SUBJECT,
                    timeout=app.config["PUSH_TIMEOUT"],
                    pool_size=args.workers,
                    max_workers=args.workers,
                )
            else:
                sender = dispatcher.get_sender(db)  # the production construction
            now = utcnow()
            clinic_id = populate(db, receiver, args.n, now)
            sender.send(receiver.new_subscription("s1").info, b"{}", ttl=60)  # sign, connect

            empty_small = empty_tick_us(db, sender, settings)
            future = [now + timedelta(days=1, seconds=k) for k in range(args.future)]
            add_rows(db, clinic_id, future, args.n, now, title="Future reminder")
            empty_large = empty_tick_us(db, sender, settings)

            add_rows(db, clinic_id, [now - timedelta(seconds=1)] * args.n, args.n, now)
            receiver_cpu = receiver.cpu_seconds()
            rate, cpu_us = burst(
                db, sender, settings, args.n, folder / "profile.txt" if args.profile else None
            )
            receiver_us = (receiver.cpu_seconds() - receiver_cpu) / args.n * 1e6
            sent = count(db, "sent")
            stats = receiver.stats()
            assert sent == args.n, f"only {sent} of {args.n} rows sent"
            assert stats["rejected"] == 0, stats

            lateness, total = steady(
                db, sender, settings, clinic_id, args.n, args.rate, args.steady_seconds, receiver
            )
            assert len(lateness) == total, f"{len(lateness)} of {total} steady rows arrived"
            naive_rate, naive_cpu_us = naive(pem, receiver, args.naive)
            plan = db.conn.execute(
                "EXPLAIN QUERY PLAN " + dispatch.CLAIM_SQL, ("x", "x", "x", 1)
            ).fetchall()
            sender.close()
            db.close()
        if args.profile and (folder / "profile.txt").exists():
            shutil.copy(folder / "profile.txt", f"/tmp/dispatch-profile-{delay_ms:g}ms.txt")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    workers = args.workers or sender.max_workers
    lines = [
        f"== push service delay {delay_ms:g} ms: {args.n} due + {args.future} future rows,"
        f" batch {settings.batch}, {workers} in flight (aiohttp Sender)",
        f"burst   {rate:8.0f} msg/s  ({args.n} messages, all due at once;"
        f" CPU per message: {cpu_us:.0f} us here, {receiver_us:.0f} us in the receiver)",
        f"naive   {naive_rate:8.0f} msg/s  (pywebpush.webpush(), new connection each,"
        f" {args.naive} samples; {naive_cpu_us:.0f} us CPU per message)",
        f"ratio   {rate / naive_rate:8.1f} x naive",
        f"steady  {total} rows due at {args.rate:g}/s for {args.steady_seconds:g} s, one tick a"
        f" second: lateness p50 {percentile(lateness, 0.5):.3f} s,"
        f" p99 {percentile(lateness, 0.99):.3f} s, max {max(lateness):.3f} s",
        f"empty tick {empty_small:7.0f} us with 0 rows, {empty_large:7.0f} us with"
        f" {args.future} future rows",
        "claim query plan: " + "; ".join(r[3] for r in plan),
        f"receiver: {stats['received']} received, {stats['rejected']} rejected,"
        f" {stats['connections']} connections (after the burst)",
    ]
    lines.append(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="rows due at once (burst)")
    parser.add_argument("--delay-ms", default="0,50", help="push service delays to run")
    parser.add_argument("--future", type=int, default=100_000, help="rows due later")
    parser.add_argument("--naive", type=int, default=200, help="naive baseline samples")
    parser.add_argument(
        "--rate", type=float, default=200, help="steady rows due per second (a busy peak is ~100/s)"
    )
    parser.add_argument("--steady-seconds", type=float, default=10)
    parser.add_argument(
        "--workers", type=int, default=0, help="override the Sender's requests in flight (and pool)"
    )
    parser.add_argument("--batch", type=int, default=0, help="override Settings.batch")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the burst (GIL holders) to /tmp/dispatch-profile-<delay>ms.txt",
    )
    args = parser.parse_args()
    for delay in (float(d) for d in args.delay_ms.split(",")):
        run(delay, args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-receiver"]:
        serve_receiver(sys.argv[2:])
    else:
        main()
