"""Faults, for real: kill -9 mid-batch, a push service down, two `serve` on one database,
SIGTERM under load, and a full or read-only disk during check-ins.

    .venv/bin/python benchmarks/faults.py [--n 5000] [--only a,b,c,d,d2,e] [--keep]

Each scenario builds a fresh instance in a temporary folder and prints one line of figures
ending in PASS or FAIL; benchmarks/README.md says what each scenario does and checks.
"""

import argparse
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from companion.db import parse_iso, rows
from companion.reminders import dispatcher as dispatch
from companion.reminders import worker
from testkit import bench, processes
from testkit.load import Load, checkin_body
from testkit.processes import children, free_port, sign_in_client, spawn, stop, wait_for_health
from testkit.push_receiver import PushReceiver, ReceiverProcess
from testkit.reminders import add_rows, due_now, populate, states, unsettled, wait_settled

SUBJECT = "mailto:ops@clinic-bench.net"
CONFIG = {"VAPID_SUBJECT": SUBJECT, "PUSH_ALLOW_PRIVATE_ENDPOINTS": True}
env_for = partial(
    processes.env_for, COMPANION_VAPID_SUBJECT=SUBJECT, COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS="1"
)
PASSWORD = "correct horse battery"
JITTER_MS = (20, 50)
TWICE_DELIVERED = (
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 'delivered'"
    " GROUP BY notification_id, subscription_id HAVING count(*) > 1)"
)


# -- what the scenarios share: an instance, devices, due reminders, workers, the tally -----


@contextlib.contextmanager
def instance(folder: Path, seed: str | None, jitter_ms=JITTER_MS):
    """A fresh instance in folder/instance, its push service (`ReceiverProcess` answering in
    jitter_ms, or `PushReceiver` in this process when seed is None) and its database."""
    with bench.instance(CONFIG, folder / "instance") as (app, db):
        key = app.config["VAPID_PUBLIC_KEY"]
        if seed is None:
            receiver = PushReceiver(application_server_key=key)
        else:
            receiver = ReceiverProcess(key, seed=seed, jitter_ms=jitter_ms)
        with receiver:
            yield app, receiver, db


def worker_settles(db, title: str, env: dict, log: Path, timeout: float) -> tuple[float, int]:
    """Run a `companion worker` until the scenario's rows are settled: (seconds, exit status)."""
    proc = spawn(["worker"], env, log)
    try:
        took = wait_settled(db, title, timeout)
    finally:
        code = stop(proc)
    return took, code


def tally(messages, pairs: set) -> tuple[Counter, int, int, int, int]:
    """Count per (device, reminder): (counts, missing, unexpected, duplicates, wrong tags)."""
    counts = Counter((sub, row_id) for sub, row_id, _, _ in messages)
    duplicates = sum(c - 1 for c in counts.values())
    wrong_tags = sum(tag != f"companion-{row_id}" for _, row_id, tag, _ in messages)
    return counts, len(pairs - set(counts)), len(set(counts) - pairs), duplicates, wrong_tags


def report(text: str, ok: bool) -> bool:
    print(f"{text} ... {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


# -- a. kill -9 mid-batch -----------------------------------------------------------------


def mid_batch(db, receiver, half: int) -> bool:
    """True once half the messages arrived and a leased batch is partly out: some of its
    messages arrived (not recorded yet), others not yet."""
    received = receiver.stats()["received"]
    if received < half:
        return False
    out, recorded = db.conn.execute(
        "SELECT (SELECT count(*) FROM notifications n JOIN push_subscriptions s"
        " ON s.owner_kind = 'client' AND s.owner_id = n.owner_id WHERE n.status = 'leased'),"
        " (SELECT count(*) FROM deliveries WHERE outcome = 'delivered')"
    ).fetchone()
    return recorded < received < recorded + out


def scenario_kill(n: int, folder: Path) -> bool:
    log, env, title = folder / "worker.log", env_for(folder / "instance"), "Kill reminder"
    with instance(folder, "faults-kill") as (app, receiver, db):
        lease = worker.Dispatcher(app).settings.lease_seconds
        clinic_id, devices = populate(db, receiver, n)
        pairs = due_now(db, clinic_id, devices, n, title)
        proc = spawn(["worker"], env, log)
        try:
            deadline = time.monotonic() + 600
            while not mid_batch(db, receiver, len(pairs) // 2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not get halfway (see {log})")
                time.sleep(0.005)
        finally:
            stop(proc, signal.SIGKILL)
        at_kill = receiver.stats()["received"]
        sql = "SELECT id FROM notifications WHERE status = 'leased' AND lease_owner LIKE ?"
        window = {r[0] for r in db.conn.execute(sql, (f"%:{proc.pid}:%",))}
        before = states(db, title)
        recovered, stopped = worker_settles(db, title, env, log, timeout=lease + 600)
        after, twice = states(db, title), db.conn.execute(TWICE_DELIVERED).fetchone()[0]
        counts, missing, unexpected, extra, wrong_tags = tally(receiver.messages(), pairs)
    duplicated = {key for key, c in counts.items() if c > 1}
    outside = {key for key in duplicated if key[1] not in window}
    ok = stopped == 0 and missing == unexpected == wrong_tags == twice == 0
    ok = ok and not outside and after == Counter({"sent": n})
    return report(
        f"a. kill -9 mid-batch: {n} reminders, {len(pairs)} (device, reminder) pairs; killed"
        f" at {at_kill} received with {len(window)} rows leased by it (the in-flight"
        f" window), {before['sent']} settled, {before['pending']} pending; restarted worker"
        f" settled all in {recovered:.1f} s (lease {lease} s); delivered"
        f" {len(pairs) - missing}/{len(pairs)} pairs, lost {missing}, duplicates {extra}"
        f" ({len(duplicated)} pairs, {len(outside)} outside the window, {wrong_tags} with"
        f" another tag); rows {dict(after)}",
        ok,
    )


# -- b. push service down for 10 simulated minutes ----------------------------------------


def scenario_outage(n: int, folder: Path) -> bool:
    t0 = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)  # the push service goes down
    outage, title = timedelta(minutes=10), "Outage reminder"
    with instance(folder, None) as (app, receiver, db):
        clients = min(n, 1000)
        clinic_id, _ = populate(db, receiver, clients, second_every=clients + 1)
        span = (outage + timedelta(minutes=1)).total_seconds()
        order = list(range(n))
        random.Random(7).shuffle(order)  # planned in any order; due order is what counts
        dues = [t0 - timedelta(minutes=1) + timedelta(seconds=span * k / n) for k in order]
        valid = [timedelta(minutes=5 if k % 10 == 0 else 720) for k in order]
        owners = [k % clients + 1 for k in order]
        queued = add_rows(db, clinic_id, owners, dues, valid, title)
        due_of = {r["id"]: r["due_at"] for r in queued}
        dispatcher = worker.Dispatcher(app)
        sender, handed = dispatcher.get_sender(db), []  # rows in the order given to the sender
        send_many = sender.send_many
        sender.send_many = lambda jobs: handed.extend(j.key.row_id for j in jobs) or send_many(jobs)
        clock, ticks = [t0 - timedelta(minutes=1)], 0

        def tick_until(done):
            nonlocal ticks
            while not done():
                dispatch.tick(db, sender, lambda: clock[0], dispatcher.owner, dispatcher.settings)
                clock[0] += timedelta(seconds=1)  # the scheduler's interval
                ticks += 1

        tick_until(lambda: clock[0] >= t0)
        before = receiver.requests
        receiver.respond_status(None, 503, "Service Unavailable")
        tick_until(lambda: clock[0] >= t0 + outage)
        during, waiting = receiver.requests - before, unsettled(db, title)
        receiver.reset(None)
        back, sent_from = clock[0], len(handed)
        tick_until(lambda: not unsettled(db, title) or clock[0] >= back + timedelta(minutes=30))
        drained = clock[0] - back
        sql = "SELECT id, status, status_reason, sent_at, expires_at FROM notifications"
        final = {r["id"]: r for r in rows(db, sql + " WHERE title = ?", (title,))}
        dispatcher.sender.close()
        arrived = [m.payload["id"] for m in receiver.received]
    sent = {i for i, r in final.items() if r["status"] == "sent"}
    unsent = {i for i, r in final.items() if r["status"] in ("skipped", "failed")}
    expired = {i for i in unsent if "expired" in (final[i]["status_reason"] or "")}
    lost = len(final) - len(sent) - len(expired) + len(set(arrived) - sent)
    stale = sum(parse_iso(final[i]["sent_at"]) >= parse_iso(final[i]["expires_at"]) for i in sent)
    expired_arrived = len(expired & set(arrived))
    expired_early = sum(parse_iso(final[i]["expires_at"]) > back + drained for i in expired)
    drain = list(dict.fromkeys(handed[sent_from:]))  # first hand-over since the return
    inversions = sum(due_of[a] > due_of[b] for a, b in zip(drain, drain[1:], strict=False))
    rank = {i: k for k, i in enumerate(sorted(sent, key=lambda i: (due_of[i], i)))}
    displacement = max((abs(k - rank[i]) for k, i in enumerate(arrived)), default=0)
    ok = lost == stale == expired_arrived == expired_early == inversions == 0
    ok = ok and sorted(arrived) == sorted(sent) and len(expired) > 0
    return report(
        f"b. push service down 10 min (simulated, 503): {n} reminders due from 1 min before"
        f" to the end ({n // 10} valid 5 min); {during} requests during the outage, {waiting}"
        f" waiting at its end; sent {len(sent)}, expired {len(expired)} (all past validity"
        f" before they could go: {expired_arrived} reached a phone, {expired_early} expired"
        f" early), lost {lost}, sent past validity {stale}; backlog of {len(drain)} drained"
        f" {drained.total_seconds():.0f} s after the return, handed to the sender in due"
        f" order ({inversions} inversions; arrival max displacement {displacement} with"
        f" {worker.SENDER_THREADS} in flight); {ticks} ticks",
        ok,
    )


# -- c. two `serve` instances on one database ---------------------------------------------


def scenario_two_serves(n: int, folder: Path) -> bool:
    env, title = env_for(folder / "instance"), "Two serves reminder"
    with instance(folder, "faults-two") as (app, receiver, db):
        serves, owners = [], set()
        try:
            clinic_id, devices = populate(db, receiver, n)
            ports = [free_port(), free_port()]
            for k, port in enumerate(ports):
                args = ["serve", "--port", str(port), "--workers", "1", "--threads", "2"]
                serves.append(spawn(args, env, folder / f"serve{k}.log"))
            for port, proc in zip(ports, serves, strict=True):
                wait_for_health(port, proc)
            dispatchers = [set(children(p.pid)) for p in serves]
            pairs = due_now(db, clinic_id, devices, n, title)

            def watch():
                sql = "SELECT DISTINCT lease_owner FROM notifications WHERE status = 'leased'"
                owners.update(r[0].split(":")[1] for r in db.conn.execute(sql))

            took = wait_settled(db, title, timeout=600, watch=watch)
            after, twice = states(db, title), db.conn.execute(TWICE_DELIVERED).fetchone()[0]
        finally:
            codes = [stop(p) for p in serves]
        messages = receiver.messages()
    _, missing, unexpected, duplicates, wrong_tags = tally(messages, pairs)
    claimed_by = {pid for pid in owners if any(int(pid) in kids for kids in dispatchers)}
    ok = missing == unexpected == duplicates == wrong_tags == twice == 0 and len(claimed_by) == 2
    ok = ok and after == Counter({"sent": n}) and codes == [0, 0]
    return report(
        f"c. two serve instances, one database: {n} reminders, {len(pairs)} pairs; claims"
        f" seen from {len(claimed_by)} dispatchers (one per serve); settled in {took:.1f} s;"
        f" received {len(messages)}, missing {missing}, duplicates {duplicates}; rows"
        f" {dict(after)}; exits {codes}",
        ok,
    )


# -- d. SIGTERM during load (testkit.load: 8 threads, half of it check-ins) ---------------


def scenario_sigterm(n: int, folder: Path, jitter_ms=JITTER_MS, label="d. SIGTERM during load"):
    env = env_for(folder / "instance", COMPANION_CHECKIN_RATE_PER_HOUR="1000000")
    title = "Term reminder"
    with instance(folder, "faults-term", jitter_ms) as (app, receiver, db):
        lease = worker.Dispatcher(app).settings.lease_seconds
        port = free_port()
        args = ["serve", "--port", str(port), "--workers", "2", "--threads", "4"]
        serve, load = spawn(args, env, folder / "serve.log"), None
        try:
            wait_for_health(port, serve)
            phone, _ = sign_in_client(port, "dr@clinic-bench.net", PASSWORD)
            clinic_id = db.conn.execute("SELECT id FROM clinics").fetchone()[0]
            _, devices = populate(db, receiver, n, clinic_id=clinic_id)
            pairs = due_now(db, clinic_id, devices, n, title)
            load = Load(port, phone.cookie_header(), threads=8, limit=63)
            time.sleep(3)
            before, sent_at_term = states(db, title), receiver.stats()["received"]
            term = time.monotonic()
            load.gone.set()  # each thread now ends at its first refused connection
            code = stop(serve, timeout=120)
            exited = time.monotonic() - term
        finally:
            if load is not None:
                load.gone.set()
                load.join()
            stop(serve, signal.SIGKILL)
        at_exit, stuck = states(db, title), db["notifications"].count_where("status = 'leased'")
        stored = {r[0] for r in db.conn.execute("SELECT id FROM checkins")}
        # whatever is still due must go out from a new worker
        recovered, _ = worker_settles(db, title, env, folder / "worker.log", lease + 300)
        after = states(db, title)
        _, missing, unexpected, duplicates, wrong_tags = tally(receiver.messages(), pairs)
    server_errors = {s: c for s, c in load.answers.items() if s >= 500}
    killed = "did not stop within" in (folder / "serve.log").read_text(errors="replace")
    ok = not server_errors and code == 0 and not load.acked - stored and stuck == 0
    ok = ok and missing == unexpected == wrong_tags == 0 and after == Counter({"sent": n})
    return report(
        f"{label}: {sum(load.answers.values())} answers {dict(sorted(load.answers.items()))},"
        f" 5xx {sum(server_errors.values())}, after the shutdown"
        f" {dict(load.errors) or 'no connection errors'}; check-ins answered {len(load.acked)},"
        f" stored {len(load.acked & stored)}, cut off {len(load.cut)} (the phone replays them);"
        f" serve exited {code} in {exited:.1f} s"
        f"{' (its dispatcher killed after 30 s)' if killed else ''}; reminders at SIGTERM"
        f" {dict(before)} ({sent_at_term} received), at exit {dict(at_exit)}, left leased"
        f" {stuck}; a new worker settled the rest in {recovered:.1f} s:"
        f" {len(pairs) - missing}/{len(pairs)} pairs delivered, duplicates {duplicates}",
        ok,
    )


# -- e. disk full, database read-only -------------------------------------------------------


def check_in_through(phone, name: str, apply, remove) -> dict:
    """Check in while the fault lasts until 3 are refused (kept in the phone's outbox), then
    replay the outbox twice: back online (201), then as a phone that lost the answer (200)."""
    r = dict(name=name, statuses=Counter(), outbox=[], landed=[], bad=[], replays=Counter())
    apply()
    try:
        while len(r["outbox"]) < 3 and r["statuses"].total() < 200:
            body = checkin_body() | {"note": "n" * 2000}  # new pages: a full disk shows
            status, answer, headers = phone.call("POST", "/api/checkins", body)
            r["statuses"][status] += 1
            if status == 503:
                code = ((answer or {}).get("error") or {}).get("code")
                retry = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                if code != "storage_unavailable" or not retry:
                    r["bad"].append((status, code, retry))
                r["outbox"].append(body)
            else:
                r["landed" if status == 201 else "bad"].append(body["id"])
    finally:
        remove()
    for _ in range(2):
        r["replays"].update(phone.call("POST", "/api/checkins", b)[0] for b in r["outbox"])
    return r


# Root, but without the capabilities that let root write a read-only file: file
# permissions then apply to the server as they would to a service user.
UNPRIVILEGED = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def scenario_storage(folder: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return report("e. skipped: needs root and setpriv (tests/test_faults.py: in-process)", True)
    disk = folder / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode:
        return report(f"e. skipped: mount failed: {mounted.stderr.strip()}", True)
    instance, filler = disk / "instance", disk / "filler"
    database, left = instance / "companion.sqlite3", []

    def writable():
        # SQLite gives a -wal or -shm file it creates the database file's mode: made while
        # the file was 0444, they stay read-only after it is 0644 again, and every write
        # fails until they are fixed too (as `chmod 0644 companion.sqlite3*` does).
        wal_shm = instance.glob("companion.sqlite3-*")
        left.extend(p.name for p in wal_shm if not p.stat().st_mode & 0o200)
        for path in instance.glob("companion.sqlite3*"):
            path.chmod(0o644)

    def fill():  # 4 KB blocks until ENOSPC
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)

    faults = [
        ("read-only (database file chmod 0444)", lambda: database.chmod(0o444), writable),
        ("disk full (tmpfs filled)", fill, filler.unlink),
    ]
    server = None
    try:
        instance.mkdir()
        env = env_for(instance, COMPANION_CHECKIN_RATE_PER_HOUR="1000000")
        port = free_port()
        server = spawn(["run", "--port", str(port)], env, folder / "run.log", UNPRIVILEGED)
        wait_for_health(port, server)
        phone, _ = sign_in_client(port, "dr@clinic-bench.net", PASSWORD)
        assert phone.call("POST", "/api/checkins", checkin_body())[0] == 201
        results = [check_in_through(phone, *fault) for fault in faults]
        code = stop(server, signal.SIGINT, timeout=60)
        with contextlib.closing(sqlite3.connect(database)) as conn:
            stored = Counter(r[0] for r in conn.execute("SELECT id FROM checkins"))
    finally:
        if server is not None:
            stop(server, signal.SIGKILL)
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    ok = code == 0 and len(stored) == 1 + sum(len(r["outbox"] + r["landed"]) for r in results)
    lines = []
    for r in results:
        ids = [b["id"] for b in r["outbox"]] + r["landed"]
        once = sum(stored[i] == 1 for i in ids)
        ok &= r["statuses"][503] == len(r["outbox"]) == 3 and not r["bad"]
        ok &= r["replays"] == Counter({201: 3, 200: 3}) and once == len(ids)
        lines.append(
            f"{r['name']}: answers {dict(sorted(r['statuses'].items()))}, 503s"
            f" {r['statuses'][503]} (storage_unavailable + Retry-After),"
            f" other errors {len(r['bad'])}; outbox replayed"
            f" {dict(sorted(r['replays'].items()))}, stored once {once}/{len(ids)}"
        )
    repaired = f" (repaired with chmod 0644 companion.sqlite3*: read-only {', '.join(left)}"
    repaired = f"{repaired} left by SQLite)" if left else ""
    return report(
        "e. storage faults during check-ins, real `companion run` (16 MB tmpfs, no DAC override):"
        f" {'; '.join(lines)}{repaired}; exit {code}",
        ok,
    )


# -- main -------------------------------------------------------------------------------------

SCENARIOS = {
    "a": scenario_kill,
    "b": scenario_outage,
    "c": scenario_two_serves,
    "d": scenario_sigterm,
    "d2": partial(
        scenario_sigterm,
        jitter_ms=(2000, 3000),
        label="d2. SIGTERM during load, push service answering in 2-3 s",
    ),
    "e": lambda n, folder: scenario_storage(folder),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="reminders due in a, b, c and d")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="e.g. a,c (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (logs)")
    args = parser.parse_args()
    # Started in the background, SIGINT may be ignored, and children would inherit that:
    # `companion run` is stopped with SIGINT (Ctrl+C) here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    failed = []
    for key in [k for k in SCENARIOS if k in args.only.split(",")]:
        folder = Path(tempfile.mkdtemp(prefix=f"companion-faults-{key}-"))
        started = time.monotonic()
        try:
            ok = SCENARIOS[key](args.n, folder)
        except Exception as exc:  # a scenario that cannot finish is a failure, not a crash
            traceback.print_exc()
            ok = report(f"{key}. {exc!r}", False)
        finally:
            if args.keep:
                print(f"   (kept {folder})")
            else:
                shutil.rmtree(folder, ignore_errors=True)
        took = time.monotonic() - started
        print(f"   ({key} took {took:.0f} s; {bench.host_load()})", flush=True)
        failed += [] if ok else [key]
    print("faults: " + ("all PASS" if not failed else f"FAIL in {', '.join(failed)}"))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
