"""Clients with push devices and reminders written straight into an instance's database, for
the fault tests and benchmarks that need many at once (the dispatcher then sends them for real)."""

import time
from collections import Counter
from datetime import timedelta

from companion.accounts.clinics import create_clinic
from companion.db import iso, rows, utcnow, write


def populate(db, receiver, clients: int, second_every=10, clinic_id=None) -> tuple[int, dict]:
    """`clients` new clients with one device each (every `second_every`-th client id has a
    second one), in a new clinic unless one is given. Returns (clinic id, client id -> device
    names); `receiver` is a testkit.push_receiver PushReceiver or ReceiverProcess."""
    stamp = iso(utcnow())
    first = (db.conn.execute("SELECT max(id) FROM clients").fetchone()[0] or 0) + 1
    devices = {
        i: [f"c{i}"] + ([f"c{i}b"] if i % second_every == 0 else [])
        for i in range(first, first + clients)
    }
    with write(db):
        if clinic_id is None:
            clinic_id = create_clinic(db, "Faults Clinic", "Europe/London", None, utcnow())
        db.conn.executemany(
            # Awake all day (no quiet hours): the run uses the real clock, and quiet hours
            # are re-checked at send time.
            "INSERT INTO clients (id, clinic_id, name, timezone, quiet_start, quiet_end,"
            " created_at, updated_at)"
            " VALUES (:id, :clinic, :name, 'Europe/London', '00:00', '00:00', :at, :at)",
            [{"id": i, "clinic": clinic_id, "name": f"Client {i}", "at": stamp} for i in devices],
        )
        db.conn.executemany(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " created_at) VALUES ('client', :owner, :endpoint, :p256dh, :auth, :at)",
            [
                dict(receiver.new_subscription(name).info, owner=i, at=stamp)
                for i, names in devices.items()
                for name in names
            ],
        )
    return clinic_id, devices


BODY = "Put on a broad-spectrum sunscreen and avoid direct sun."


def add_rows(
    db, clinic_id: int, owners: list, dues: list, valid: list, title: str, body: str = BODY
) -> list[dict]:
    """Queue one reminder per (owner, due, validity); return the rows (id, owner, due, expiry)."""
    with write(db):
        db.conn.executemany(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title,"
            " body, url, due_at, expires_at, next_attempt_at, created_at) VALUES ('client',"
            " :owner, :clinic, :owner, 'instruction', :title, :body, '/reminders', :due,"
            " :expires, :due, :now)",
            [
                {"owner": o, "clinic": clinic_id, "title": title, "body": body, "due": iso(d)}
                | {"expires": iso(d + v), "now": iso(utcnow())}
                for o, d, v in zip(owners, dues, valid, strict=True)
            ],
        )
    sql = "SELECT id, owner_id, due_at, expires_at FROM notifications WHERE title = ? ORDER BY id"
    return rows(db, sql, (title,))


def due_now(db, clinic_id: int, devices: dict, n: int, title: str) -> set:
    """n reminders due a second ago, spread over the clients; return the expected pairs."""
    ids = sorted(devices)
    due = utcnow() - timedelta(seconds=1)
    owners = [ids[k % len(ids)] for k in range(n)]
    queued = add_rows(db, clinic_id, owners, [due] * n, [timedelta(hours=12)] * n, title)
    return {(name, r["id"]) for r in queued for name in devices[r["owner_id"]]}


def states(db, title: str) -> Counter:
    """Count a scenario's reminders (they share a title) by status."""
    sql = "SELECT status, count(*) FROM notifications WHERE title = ? GROUP BY status"
    return Counter(dict(db.conn.execute(sql, (title,)).fetchall()))


def unsettled(db, title: str) -> int:
    """How many of a scenario's reminders are still pending or leased."""
    counts = states(db, title)
    return counts["pending"] + counts["leased"]


def wait_settled(db, title: str, timeout: float, watch=None) -> float:
    """Wait until none of the scenario's reminders is pending or leased (calling `watch` every
    0.1 s meanwhile); return the seconds it took."""
    started = time.monotonic()
    while unsettled(db, title):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"rows still unsettled after {timeout:.0f} s: {states(db, title)}")
        if watch is not None:
            watch()
        time.sleep(0.1)
    return time.monotonic() - started
