"""Dispatch throughput and lateness against a real push service in another process.

    .venv/bin/python benchmarks/dispatch.py [--n 10000] [--delay-ms 0,50] [--future 100000]

For each push-service delay: a fresh instance (temporary folder, migrated database), N
clients with one device each on a receiver process that checks VAPID and decrypts every
message, and --future rows due later (a large table with little due). Through the
production path (worker.Dispatcher's Sender and Settings, dispatcher.tick) it measures:

- burst: N rows due at once, drained with back-to-back ticks -> messages/s;
- steady: rows due at --rate per second, one tick a second as the worker does -> lateness
  (the receiver's clock minus the due time);
- naive: pywebpush.webpush() per message (a new connection and VAPID signature each);
- an empty tick (nothing due) with 0 rows and with the future rows; the claim query's plan;
- email (--email N): N rows due at once for clients whose only channel is email, sent by
  the same dispatcher to testkit's SMTP server (aiosmtpd, in this process) -> emails/s.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from py_vapid import Vapid
from pywebpush import webpush

from companion import create_app
from companion.accounts import clinics as accounts
from companion.cli import migrate
from companion.db import connect, iso, utcnow, write
from companion.reminders import dispatcher
from companion.reminders.push import build_payload
from companion.reminders.worker import Dispatcher
from testkit import push_receiver
from testkit.push_receiver import ReceiverProcess
from testkit.smtp_server import SmtpProcess

SUBJECT = "mailto:bench@clinic-bench.net"
PUBLIC = "https://aftercare.clinic-bench.net"
BODY = (
    "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or peeling can"
    " happen; it is usually mild and passes. Keep moisturising."
)


def serve_receiver(argv: list[str]) -> None:
    """Child process: the push receiver, plus GET /_times?since=k -> [[id, received_at], ...]."""

    class TimedHandler(push_receiver._Handler):
        def do_GET(self) -> None:
            if not self.path.startswith("/_times"):
                return super().do_GET()
            receiver, since = self.server.receiver, int(self.path.partition("since=")[2])
            with receiver._changed:
                got = [((m.payload or {}).get("id"), m.received_at) for m in receiver.received]
            body = json.dumps(got[since:]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    push_receiver._Handler = TimedHandler
    push_receiver.main(argv)


class TimedReceiver(ReceiverProcess):
    def command(self) -> list[str]:
        return [sys.executable, __file__, "--serve-receiver", *self._args]

    def cpu_seconds(self) -> float:
        """CPU time the receiver process has used (Linux /proc)."""
        stat = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")

    def times(self, since: int) -> list[tuple[int, float]]:
        with urllib.request.urlopen(f"{self.base_url}/_times?since={since}", timeout=30) as r:
            return [tuple(pair) for pair in json.loads(r.read())]


def populate(db, receiver, n: int, now: datetime) -> int:
    """Create a clinic and n clients with one device each; return the clinic id."""
    stamp, clients = iso(now), range(1, n + 1)
    with write(db):
        clinic_id = accounts.create_clinic(db, "Bench Clinic", "Europe/London", None, now)
        db.conn.executemany(
            # Awake all day (no quiet hours): the run uses the real clock, and quiet hours
            # are re-checked at send time.
            "INSERT INTO clients (id, clinic_id, name, timezone, quiet_start, quiet_end,"
            " created_at, updated_at)"
            " VALUES (:id, :clinic, :name, 'Europe/London', '00:00', '00:00', :at, :at)",
            [{"id": i, "clinic": clinic_id, "name": f"Client {i}", "at": stamp} for i in clients],
        )
        devices = [
            receiver.new_subscription(f"s{i}").info | {"id": i, "at": stamp} for i in clients
        ]
        db.conn.executemany(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " created_at) VALUES ('client', :id, :endpoint, :p256dh, :auth, :at)",
            devices,
        )
    return clinic_id


def add_rows(db, clinic_id: int, dues: list[datetime], clients: int, title: str) -> list[int]:
    """Queue one reminder per due time, round-robin over the clients; return their ids."""
    base = {"clinic": clinic_id, "title": title, "body": BODY, "created": iso(utcnow())}
    params = [
        base
        | {"owner": k % clients + 1, "due": iso(due), "expires": iso(due + timedelta(hours=12))}
        for k, due in enumerate(dues)
    ]
    with write(db):
        first = db.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM notifications").fetchone()[0]
        db.conn.executemany(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title,"
            " body, url, due_at, expires_at, next_attempt_at, created_at) VALUES ('client',"
            " :owner, :clinic, :owner, 'instruction', :title, :body, '/reminders', :due,"
            " :expires, :due, :created)",
            params,
        )
    return list(range(first, first + len(params)))


def tick(db, sender, settings, owner: str = "bench") -> dict[str, int]:
    return dispatcher.tick(db, sender, utcnow, owner, settings)


def empty_tick_us(db, sender, settings, repeat: int = 300) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        assert set(tick(db, sender, settings, "bench-empty")) == {"reclaimed"}
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def burst(db, sender, settings, n: int) -> tuple[float, float]:
    """Drain n due rows with back-to-back ticks; return (messages/s, CPU us per message)."""
    started, cpu = time.perf_counter(), time.process_time()
    while set(tick(db, sender, settings)) != {"reclaimed"}:
        pass
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return n / elapsed, cpu / n * 1e6


def steady(db, sender, settings, clinic_id: int, args, receiver) -> list[float]:
    """Rows due at args.rate/s, ticked once a second; return lateness samples in seconds."""
    first = utcnow() + timedelta(seconds=2)
    dues = [
        first + timedelta(seconds=k / args.rate)
        for k in range(int(args.rate * args.steady_seconds))
    ]
    ids = add_rows(db, clinic_id, dues, args.n, "Steady reminder")
    due_of = {row_id: due.timestamp() for row_id, due in zip(ids, dues, strict=True)}
    since = receiver.stats()["received"]
    next_tick, deadline = time.monotonic(), time.monotonic() + args.steady_seconds + 30
    while time.monotonic() < deadline:
        tick(db, sender, settings)
        left = db.conn.execute(
            "SELECT count(*) FROM notifications WHERE id >= :first"
            " AND status IN ('pending', 'leased')",
            {"first": ids[0]},
        ).fetchone()[0]
        if not left:
            break
        next_tick += 1.0  # APScheduler's interval job: once a second
        time.sleep(max(0.0, next_tick - time.monotonic()))
    return [at - due_of[row_id] for row_id, at in receiver.times(since) if row_id in due_of]


def naive(pem: str, receiver, samples: int) -> tuple[float, float]:
    """pywebpush.webpush() per message; return (messages/s, CPU us per message)."""
    vapid = Vapid.from_pem(pem.encode())
    subs = [receiver.new_subscription(f"naive{k}") for k in range(samples)]
    started, cpu = time.perf_counter(), time.process_time()
    for k, sub in enumerate(subs):
        webpush(
            {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
            data=build_payload("Sunscreen reminder", BODY, "/reminders", f"naive-{k}", -k),
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
    with tempfile.TemporaryDirectory(prefix="companion-bench-") as folder:
        os.environ["COMPANION_INSTANCE_PATH"] = folder
        measure(delay_ms, args)


def measure(delay_ms: float, args) -> None:
    app = create_app({"VAPID_SUBJECT": SUBJECT, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True})
    migrate(app)
    pem, key = app.config["VAPID_PRIVATE_KEY"], app.config["VAPID_PUBLIC_KEY"]
    db = connect(app.config["DATABASE"])
    production = Dispatcher(app)  # its Settings and Sender, as `companion run` makes them
    settings, sender = production.settings, production.get_sender(db)
    with TimedReceiver(key, delay_ms, seed=f"bench-{delay_ms}") as receiver, sender:
        now = utcnow()
        clinic_id = populate(db, receiver, args.n, now)
        sender.send(receiver.new_subscription("s1").info, b"{}", ttl=60)  # sign, connect
        empty_small = empty_tick_us(db, sender, settings)
        future = [now + timedelta(days=1, seconds=k) for k in range(args.future)]
        add_rows(db, clinic_id, future, args.n, "Future reminder")
        empty_large = empty_tick_us(db, sender, settings)

        add_rows(db, clinic_id, [now - timedelta(seconds=1)] * args.n, args.n, "Sunscreen")
        receiver_cpu = receiver.cpu_seconds()
        rate, cpu_us = burst(db, sender, settings, args.n)
        receiver_us = (receiver.cpu_seconds() - receiver_cpu) / args.n * 1e6
        stats = receiver.stats()
        sent = db.conn.execute("SELECT count(*) FROM notifications WHERE status = 'sent'")
        assert sent.fetchone()[0] == args.n and stats["rejected"] == 0, stats

        lateness = steady(db, sender, settings, clinic_id, args, receiver)
        assert len(lateness) == int(args.rate * args.steady_seconds), "steady rows went missing"
        naive_rate, naive_cpu_us = naive(pem, receiver, args.naive)
        params = {"lease_until": "x", "owner": "x", "now": "x", "limit": 1}
        plan = db.conn.execute("EXPLAIN QUERY PLAN " + dispatcher.CLAIM_SQL, params).fetchall()
    db.close()
    print(
        f"== push service delay {delay_ms:g} ms: {args.n} due + {args.future} future rows,"
        f" batch {settings.batch}, {sender.max_workers} in flight (pywebpush send_async Sender)\n"
        f"burst   {rate:8.0f} msg/s  ({args.n} messages, all due at once;"
        f" CPU per message: {cpu_us:.0f} us here, {receiver_us:.0f} us in the receiver)\n"
        f"naive   {naive_rate:8.0f} msg/s  (pywebpush.webpush(), new connection each,"
        f" {args.naive} samples; {naive_cpu_us:.0f} us CPU per message)\n"
        f"ratio   {rate / naive_rate:8.1f} x naive\n"
        f"steady  {len(lateness)} rows due at {args.rate:g}/s for {args.steady_seconds:g} s, one tick a"
        f" second: lateness p50 {percentile(lateness, 0.5):.3f} s,"
        f" p99 {percentile(lateness, 0.99):.3f} s, max {max(lateness):.3f} s\n"
        f"empty tick {empty_small:7.0f} us with 0 rows, {empty_large:7.0f} us with"
        f" {args.future} future rows\n"
        "claim query plan: " + "; ".join(r[3] for r in plan) + "\n"
        f"receiver: {stats['received']} received, {stats['rejected']} rejected,"
        f" {stats['connections']} connections (after the burst)\n"
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )


def email_run(n: int) -> None:
    """n reminders due at once for email-only clients, one dispatcher, one SMTP server process."""
    with tempfile.TemporaryDirectory(prefix="companion-bench-") as folder, SmtpProcess() as smtp:
        os.environ["COMPANION_INSTANCE_PATH"] = folder
        app = create_app({"VAPID_SUBJECT": SUBJECT, "PUBLIC_URL": PUBLIC} | smtp.config())
        migrate(app)
        db = connect(app.config["DATABASE"])
        production = Dispatcher(app)
        settings, sender, email = (
            production.settings,
            production.get_sender(db),
            production.get_email(),
        )
        now = utcnow()
        with write(db):
            clinic_id = accounts.create_clinic(db, "Bench Clinic", "Europe/London", None, now)
            db.conn.executemany(
                "INSERT INTO clients (id, clinic_id, name, email, channels, timezone, quiet_start,"
                " quiet_end, created_at, updated_at) VALUES (:id, :clinic, 'Client', :email,"
                " '[\"email\"]', 'Europe/London', '00:00', '00:00', :at, :at)",
                [
                    {"id": i, "clinic": clinic_id, "email": f"c{i}@home-bench.net", "at": iso(now)}
                    for i in range(1, n + 1)
                ],
            )
        add_rows(db, clinic_id, [now - timedelta(seconds=1)] * n, n, "Sunscreen")
        started, cpu, server_cpu = time.perf_counter(), time.process_time(), smtp.cpu_seconds()
        while set(dispatcher.tick(db, sender, utcnow, "bench", settings, email=email)) != {
            "reclaimed"
        }:
            pass
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = smtp.cpu_seconds() - server_cpu
        received = smtp.count()
        sent = db.conn.execute("SELECT count(*) FROM notifications WHERE status = 'sent'")
        assert received == n and sent.fetchone()[0] == n
        db.close()
        sender.close()
    print(
        f"== email: {n} reminders due at once, clients with email only, batch {settings.batch}\n"
        f"email   {n / elapsed:8.0f} emails/s  (one dispatcher, {email.mailer.connections} SMTP"
        f" connections to aiosmtpd in its own process; CPU per email {cpu / n * 1e6:.0f} us here,"
        f" {server_cpu / n * 1e6:.0f} us in the server: one after the other, a ceiling of"
        f" {n / (cpu + server_cpu):.0f}/s on an idle core)"
        f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="rows due at once (burst)")
    parser.add_argument("--delay-ms", default="0,50", help="push service delays to run")
    parser.add_argument("--future", type=int, default=100_000, help="rows due later")
    parser.add_argument("--naive", type=int, default=200, help="naive baseline samples")
    parser.add_argument("--rate", type=float, default=200, help="steady rows due per second")
    parser.add_argument("--steady-seconds", type=float, default=10)
    parser.add_argument("--email", type=int, default=2000, help="emails due at once (0: none)")
    args = parser.parse_args()
    for delay in args.delay_ms.split(",") if args.delay_ms else ():
        run(float(delay), args)
    if args.email:
        email_run(args.email)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-receiver"]:
        serve_receiver(sys.argv[2:])
    else:
        main()
