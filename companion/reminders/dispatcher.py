"""Claim due notifications, send them to every live device, record each attempt, retry or settle.

When to retry and when a push service counts as down is in retries.py; the HTTP in sender.py.
"""

import json
import os
import random
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlite_utils

from companion.db import iso, parse_iso, rows, write
from companion.reminders import push, retries
from companion.reminders.push import Outcome
from companion.reminders.retries import EXPIRED, NO_DEVICE, Settings  # noqa: F401 - dispatch.*
from companion.reminders.sender import PushJob, Sender


class Target(NamedTuple):
    """One notification for one device (a PushJob's key)."""

    row_id: int
    subscription_id: int
    service: str  # the push service's origin


class Targets(NamedTuple):
    """What a batch is sent to, found before anything is sent."""

    devices: dict[tuple[str, int], list[dict]]  # (owner kind, owner id) -> live subscriptions
    discreet: set[int]  # clients whose notifications say nothing of the treatment
    settled: set[tuple[int, int]]  # (row, device) pairs an earlier attempt settled
    delivered: set[int]  # rows an earlier attempt delivered to some device


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def reclaim_expired(db: sqlite_utils.Database, now: datetime) -> int:
    """Put rows whose sender's lease ran out back in the queue (a separate, indexed step)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_until < :now",
            {"now": iso(now)},
        ).rowcount


# The partial index notifications_due (next_attempt_at WHERE status = 'pending') keeps
# this proportional to what is due, however many future rows are stored. Rows released
# together after an outage share next_attempt_at: due_at keeps them in due order.
CLAIM_SQL = (
    "UPDATE notifications SET status = 'leased', lease_until = :lease_until, lease_owner = :owner"
    " WHERE id IN (SELECT id FROM notifications WHERE status = 'pending'"
    " AND next_attempt_at <= :now ORDER BY next_attempt_at, due_at LIMIT :limit) RETURNING *"
)


def claim(
    db: sqlite_utils.Database, now: datetime, limit: int, lease_seconds: int, owner: str
) -> list[dict]:
    """Atomically lease up to `limit` due rows for this sender, oldest due first."""
    lease_until = iso(now + timedelta(seconds=lease_seconds))
    params = {"lease_until": lease_until, "owner": owner, "now": iso(now), "limit": limit}
    with write(db):
        claimed = db.conn.execute(CLAIM_SQL, params).fetchall()
    return sorted(
        (dict(r) for r in claimed), key=lambda r: (r["next_attempt_at"], r["due_at"], r["id"])
    )


def release(db: sqlite_utils.Database, owner: str) -> int:
    """Give back this sender's leases (graceful shutdown)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_owner = :owner",
            {"owner": owner},
        ).rowcount


def _targets(db: sqlite_utils.Database, claimed: list[dict]) -> Targets:
    """Find each row's live devices, discreet owners, devices settled, and rows delivered."""
    devices: dict[tuple[str, int], list[dict]] = {}
    for kind in ("client", "practitioner"):
        ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == kind})
        if ids:
            for s in rows(
                db,
                "SELECT * FROM push_subscriptions WHERE gone_at IS NULL AND owner_kind = :kind"
                " AND owner_id IN (SELECT value FROM json_each(:ids)) ORDER BY id",
                {"kind": kind, "ids": json.dumps(ids)},
            ):
                devices.setdefault((kind, s["owner_id"]), []).append(s)
    client_ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == "client"})
    discreet = {
        r["id"]
        for r in rows(
            db,
            "SELECT id FROM clients WHERE discreet = 1"
            " AND id IN (SELECT value FROM json_each(:ids))",
            {"ids": json.dumps(client_ids)},
        )
    }
    retried = [r["id"] for r in claimed if r["attempts"]]
    settled, delivered = set(), set()
    if retried:
        for d in rows(
            db,
            "SELECT notification_id, subscription_id, outcome FROM deliveries"
            " WHERE notification_id IN (SELECT value FROM json_each(:ids))"
            " AND outcome IN ('delivered', 'gone', 'failed')",  # final for that device
            {"ids": json.dumps(retried)},
        ):
            settled.add((d["notification_id"], d["subscription_id"]))
            if d["outcome"] == "delivered":
                delivered.add(d["notification_id"])
    return Targets(devices, discreet, settled, delivered)


def topic_for(row: dict) -> str:
    # One topic per session and kind: a phone that was offline gets the newest
    # pending sunscreen reminder, not a stack of stale ones.
    return f"{row['kind'][:10]}-{row['session_id'] or row['flag_id'] or row['id']}"


def _settled(row_id: int, owner: str, status: str, reason, attempts: int, sent_at) -> dict:
    """Parameters of a row's final state (see _record)."""
    return {
        "status": status,
        "reason": reason and reason[:500],
        "attempts": attempts,
        "sent_at": sent_at,
        "id": row_id,
        "owner": owner,
    }


def _jobs(
    claimed: list[dict], targets: Targets, now: datetime, owner: str, final: list, counts: dict
) -> tuple[list[PushJob], list[dict]]:
    """Build one send job per row and device; settle at once rows that expired or are bad."""
    jobs, live = [], []
    for row in claimed:
        if parse_iso(row["expires_at"]) <= now:
            counts["expired"] += 1
            if row["id"] in targets.delivered:  # to some device on an earlier attempt
                final.append(_settled(row["id"], owner, "sent", None, row["attempts"], iso(now)))
            else:
                final.append(_settled(row["id"], owner, "skipped", EXPIRED, row["attempts"], None))
            continue
        try:
            if row["urgency"] not in push.URGENCIES:
                raise ValueError(f"unknown urgency {row['urgency']!r}")
            payload = push.build_payload(
                row["title"],
                row["body"],
                row["url"],
                f"companion-{row['id']}",
                row["id"],
                discreet=row["owner_kind"] == "client" and row["owner_id"] in targets.discreet,
            )
        except ValueError as exc:  # a bad row must not hold up the batch
            counts["failed"] += 1
            reason = f"cannot send: {exc}"
            final.append(_settled(row["id"], owner, "failed", reason, row["attempts"], None))
            continue
        live.append(row)
        ttl = max(60, int((parse_iso(row["expires_at"]) - now).total_seconds()))
        for sub in targets.devices.get((row["owner_kind"], row["owner_id"]), []):
            if (row["id"], sub["id"]) not in targets.settled:
                target = Target(row["id"], sub["id"], push.origin(sub["endpoint"]))
                jobs.append(PushJob(target, sub, payload, ttl, row["urgency"], topic_for(row)))
    return jobs, live


def send_batch(
    db: sqlite_utils.Database,
    sender: Sender,
    claimed: list[dict],
    now: datetime,
    owner: str,
    settings: Settings,
) -> dict[str, int]:
    """Send claimed rows (no transaction open during HTTP), then record and settle them."""
    targets = _targets(db, claimed)
    services = retries.services_for(sender)
    counts = {"sent": 0, "retry": 0, "waiting": 0, "failed": 0, "skipped": 0, "expired": 0}
    final: list[dict] = []
    jobs, live = _jobs(claimed, targets, now, owner, final, counts)
    results, waiting = retries.send_unless_down(sender, jobs, services, now, settings)
    by_row: dict[int, list[tuple[Target, Outcome]]] = {}
    for target, outcome in results:
        by_row.setdefault(target.row_id, []).append((target, outcome))
    held: dict[int, set[str]] = {}  # row -> push services it waits for
    for job in waiting:
        held.setdefault(job.key.row_id, set()).add(job.key.service)

    stamp = iso(now)
    attempts, succeeded, gone, pending = [], set(), set(), []
    for row in live:
        found = by_row.get(row["id"], [])
        attempt = row["attempts"] + (1 if found else 0)
        down, retry = set(held.get(row["id"], ())), []
        for target, o in found:
            attempts.append(
                {
                    "notification_id": row["id"],
                    "subscription_id": target.subscription_id,
                    "attempt": attempt,
                    "at": stamp,
                    "status_code": o.status,
                    "outcome": o.kind,
                    "reason": o.reason[:500],
                    "elapsed_ms": o.elapsed_ms,
                }
            )
            if o.kind == "delivered":
                succeeded.add(target.subscription_id)
            elif o.kind == "gone":
                gone.add(target.subscription_id)
            elif retries.is_outage(o) and retries.is_down(services, target.service):
                down.add(target.service)  # wait for the push service; attempts are not spent
            elif o.kind == "retry":
                retry.append(o)
        outcomes = [o for _, o in found]
        delivered = row["id"] in targets.delivered or any(o.kind == "delivered" for o in outcomes)
        reasons = (services[s].reason for s in sorted(down) if services[s].reason)
        why = retry[0].reason if retry else next(reasons, "unavailable")
        wait_until = min((services[s].down_until for s in down), default=None)
        status, reason, next_at = retries.decide(
            row, attempt, outcomes, retry, wait_until, why, delivered, now, settings
        )
        counts[status] += 1
        if next_at is not None:
            pending.append(
                {
                    "attempts": attempt,
                    "next_attempt_at": iso(next_at),
                    "reason": reason[:500],
                    "id": row["id"],
                    "owner": owner,
                }
            )
        else:
            sent_at = stamp if status == "sent" else None
            final.append(_settled(row["id"], owner, status, reason, attempt, sent_at))
    _record(db, stamp, attempts, succeeded, gone, pending, final)
    return counts


def _record(
    db: sqlite_utils.Database,
    stamp: str,
    attempts: list[dict],
    succeeded: set[int],
    gone: set[int],
    pending: list[dict],
    final: list[dict],
) -> None:
    """Write a batch's deliveries, device states and row states in one short transaction."""
    with write(db):
        db.conn.executemany(
            "INSERT INTO deliveries (notification_id, subscription_id, attempt, at, status_code,"
            " outcome, reason, elapsed_ms) VALUES (:notification_id, :subscription_id, :attempt,"
            " :at, :status_code, :outcome, :reason, :elapsed_ms)",
            attempts,
        )
        db.conn.executemany(
            "UPDATE push_subscriptions SET last_success_at = :at WHERE id = :id",
            [{"at": stamp, "id": s} for s in sorted(succeeded)],
        )
        db.conn.executemany(
            "UPDATE push_subscriptions SET gone_at = :at WHERE id = :id",
            [{"at": stamp, "id": s} for s in sorted(gone)],
        )
        # WHERE lease_owner: a sender whose lease ran out must not settle a row that
        # another sender has claimed since.
        db.conn.executemany(
            "UPDATE notifications SET status = 'pending', attempts = :attempts,"
            " next_attempt_at = :next_attempt_at, status_reason = :reason, lease_until = NULL,"
            " lease_owner = NULL WHERE id = :id AND lease_owner = :owner",
            pending,
        )
        db.conn.executemany(
            "UPDATE notifications SET status = :status, status_reason = :reason,"
            " attempts = :attempts, sent_at = :sent_at, lease_until = NULL, lease_owner = NULL"
            " WHERE id = :id AND lease_owner = :owner",
            final,
        )


def tick(
    db: sqlite_utils.Database,
    sender: Sender,
    clock: Callable[[], datetime],
    owner: str,
    settings: Settings,
    max_batches: int = 20,
    stopping: threading.Event | None = None,
) -> dict[str, int]:
    """Run one dispatch pass: reclaim expired leases, then drain due rows in bounded batches."""
    total = {"reclaimed": reclaim_expired(db, clock())}
    for _ in range(max_batches):
        if stopping is not None and stopping.is_set():
            break  # shutting down: finish the batch in hand, claim no more
        now = clock()
        claimed = claim(db, now, settings.batch, settings.lease_seconds, owner)
        if not claimed:
            break
        for key, n in send_batch(db, sender, claimed, now, owner, settings).items():
            total[key] = total.get(key, 0) + n
        if len(claimed) < settings.batch:
            break
    return total
