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
  the same dispatcher to testkit's SMTP server (aiosmtpd, in its own process) -> emails/s.
"""

import argparse
import statistics
import time
from datetime import timedelta

from py_vapid import Vapid
from pywebpush import webpush

from companion.accounts.clinics import create_clinic
from companion.db import iso, utcnow, write
from companion.reminders import dispatcher
from companion.reminders.push import build_payload
from companion.reminders.worker import Dispatcher
from testkit.bench import cpu_seconds, host_load, instance, percentile
from testkit.push_receiver import ReceiverProcess
from testkit.reminders import add_rows, populate
from testkit.smtp_server import SmtpProcess

SUBJECT = "mailto:bench@clinic-bench.net"
CONFIG = {"VAPID_SUBJECT": SUBJECT, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True}
BODY = (
    "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or peeling can"
    " happen; it is usually mild and passes. Keep moisturising."
)


def queue(db, clinic_id: int, clients: int, dues: list, title: str) -> list[int]:
    """One reminder per due time, valid 12 hours, round-robin over the clients; their ids."""
    owners = [k % clients + 1 for k in range(len(dues))]
    valid = [timedelta(hours=12)] * len(dues)
    return [r["id"] for r in add_rows(db, clinic_id, owners, dues, valid, title, BODY)]


def drain(db, sender, settings, email=None) -> tuple[float, float]:
    """Back-to-back ticks until one finds nothing due; return (wall, CPU) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    while set(dispatcher.tick(db, sender, utcnow, "bench", settings, email=email)) != {"reclaimed"}:
        pass
    return time.perf_counter() - wall, time.process_time() - cpu


def empty_tick_us(db, sender, settings, repeat: int = 300) -> float:
    """Median microseconds of a tick that finds nothing due."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        assert set(dispatcher.tick(db, sender, utcnow, "bench-empty", settings)) == {"reclaimed"}
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def steady(db, sender, settings, clinic_id: int, args, receiver) -> list[float]:
    """Rows due at args.rate/s, ticked once a second; return lateness samples in seconds."""
    first = utcnow() + timedelta(seconds=2)
    n = int(args.rate * args.steady_seconds)
    dues = [first + timedelta(seconds=k / args.rate) for k in range(n)]
    ids = queue(db, clinic_id, args.n, dues, "Steady reminder")
    due_of = {row_id: due.timestamp() for row_id, due in zip(ids, dues, strict=True)}
    since = receiver.stats()["received"]
    unsettled = "id >= ? AND status IN ('pending', 'leased')"
    next_tick, deadline = time.monotonic(), time.monotonic() + args.steady_seconds + 30
    while time.monotonic() < deadline:
        dispatcher.tick(db, sender, utcnow, "bench", settings)
        if not db["notifications"].count_where(unsettled, [ids[0]]):
            break
        next_tick += 1.0  # APScheduler's interval job: once a second
        time.sleep(max(0.0, next_tick - time.monotonic()))
    return [at - due_of[i] for _, i, _, at in receiver.messages(since) if i in due_of]


def naive(pem: str, receiver, samples: int) -> tuple[float, float]:
    """pywebpush.webpush() per message; return (messages/s, CPU us per message)."""
    vapid = Vapid.from_pem(pem.encode())
    subs = [receiver.new_subscription(f"naive{k}") for k in range(samples)]
    started, cpu = time.perf_counter(), time.process_time()
    for k, sub in enumerate(subs):
        data = build_payload("Sunscreen reminder", BODY, "/reminders", f"naive-{k}", -k)
        claims = {"sub": SUBJECT}
        webpush(
            sub.to_json(), data, vapid_private_key=vapid, vapid_claims=claims, ttl=3600, timeout=10
        )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return samples / elapsed, cpu / samples * 1e6


def push_run(delay_ms: float, args) -> None:
    n = args.n
    with instance(CONFIG) as (app, db):
        production = Dispatcher(app)  # its Settings and Sender, as `companion run` makes them
        settings, sender = production.settings, production.get_sender(db)
        key, pem = app.config["VAPID_PUBLIC_KEY"], app.config["VAPID_PRIVATE_KEY"]
        with ReceiverProcess(key, delay_ms, seed=f"bench-{delay_ms}") as receiver, sender:
            clinic_id, _ = populate(db, receiver, n, second_every=n + 1)
            sender.send(receiver.new_subscription("c1").info, b"{}", ttl=60)  # sign, connect
            empty_small = empty_tick_us(db, sender, settings)
            later = utcnow() + timedelta(days=1)
            future = [later + timedelta(seconds=k) for k in range(args.future)]
            queue(db, clinic_id, n, future, "Future reminder")
            empty_large = empty_tick_us(db, sender, settings)

            queue(db, clinic_id, n, [utcnow() - timedelta(seconds=1)] * n, "Sunscreen")
            receiver_cpu = cpu_seconds(receiver.pid)
            elapsed, cpu = drain(db, sender, settings)
            receiver_us = (cpu_seconds(receiver.pid) - receiver_cpu) / n * 1e6
            stats = receiver.stats()
            sent = db["notifications"].count_where("status = 'sent'")
            assert sent == n and stats["rejected"] == 0, stats

            lateness = steady(db, sender, settings, clinic_id, args, receiver)
            assert len(lateness) == int(args.rate * args.steady_seconds), "steady rows lost"
            naive_rate, naive_cpu_us = naive(pem, receiver, args.naive)
            params = {"lease_until": "x", "owner": "x", "now": "x", "limit": 1}
            plan = db.conn.execute("EXPLAIN QUERY PLAN " + dispatcher.CLAIM_SQL, params)
            plan = "; ".join(r[3] for r in plan)
    rate = n / elapsed
    print(
        f"== push service delay {delay_ms:g} ms: {n} due + {args.future} future rows,"
        f" batch {settings.batch}, {sender.max_workers} in flight (pywebpush send_async Sender)\n"
        f"burst   {rate:8.0f} msg/s  ({n} messages, all due at once;"
        f" CPU per message: {cpu / n * 1e6:.0f} us here, {receiver_us:.0f} us in the receiver)\n"
        f"naive   {naive_rate:8.0f} msg/s  (pywebpush.webpush(), new connection each,"
        f" {args.naive} samples; {naive_cpu_us:.0f} us CPU per message)\n"
        f"ratio   {rate / naive_rate:8.1f} x naive\n"
        f"steady  {len(lateness)} rows due at {args.rate:g}/s for {args.steady_seconds:g} s, one"
        f" tick a second: lateness p50 {percentile(lateness, 50):.3f} s,"
        f" p99 {percentile(lateness, 99):.3f} s, max {max(lateness):.3f} s\n"
        f"empty tick {empty_small:7.0f} us with 0 rows, {empty_large:7.0f} us with"
        f" {args.future} future rows\n"
        f"claim query plan: {plan}\n"
        f"receiver: {stats['received']} received, {stats['rejected']} rejected,"
        f" {stats['connections']} connections (after the burst)\n{host_load()}",
        flush=True,
    )


def email_run(n: int) -> None:
    """n reminders due at once for email-only clients, one dispatcher, one SMTP server process."""
    with SmtpProcess() as smtp:
        config = CONFIG | {"PUBLIC_URL": "https://aftercare.clinic-bench.net"} | smtp.config()
        with instance(config) as (app, db):
            production = Dispatcher(app)
            settings, email = production.settings, production.get_email()
            with write(db):
                clinic_id = create_clinic(db, "Bench Clinic", "Europe/London", None, utcnow())
                db["clients"].insert_all(
                    {"id": i, "clinic_id": clinic_id, "name": "Client", "channels": '["email"]'}
                    | {"email": f"c{i}@home-bench.net", "timezone": "Europe/London"}
                    | {"quiet_start": "00:00", "quiet_end": "00:00"}  # awake all day
                    | {"created_at": iso(utcnow()), "updated_at": iso(utcnow())}
                    for i in range(1, n + 1)
                )
            queue(db, clinic_id, n, [utcnow() - timedelta(seconds=1)] * n, "Sunscreen")
            server_cpu = cpu_seconds(smtp.pid)
            with production.get_sender(db) as sender:
                elapsed, cpu = drain(db, sender, settings, email)
            server_cpu = cpu_seconds(smtp.pid) - server_cpu
            assert smtp.count() == n == db["notifications"].count_where("status = 'sent'")
    print(
        f"== email: {n} reminders due at once, clients with email only, batch {settings.batch}\n"
        f"email   {n / elapsed:8.0f} emails/s  (one dispatcher, {email.mailer.connections} SMTP"
        f" connections to aiosmtpd in its own process; CPU per email {cpu / n * 1e6:.0f} us here,"
        f" {server_cpu / n * 1e6:.0f} us in the server: one after the other, a ceiling of"
        f" {n / (cpu + server_cpu):.0f}/s on an idle core)\n{host_load()}",
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
        push_run(float(delay), args)
    if args.email:
        email_run(args.email)


if __name__ == "__main__":
    main()
