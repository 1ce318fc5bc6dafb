"""Claim due notifications, send them to every live device, record each attempt, retry or settle.

What each row is sent to (devices, quiet hours, topics) is in jobs.py; when to retry and
when a push service counts as down in retries.py; the HTTP in sender.py.
"""

import os
import random
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlite_utils

from companion.db import iso, parse_iso, write
from companion.reminders import by_email, retries
from companion.reminders import jobs as jobs_for
from companion.reminders.jobs import Target, topic_for  # noqa: F401 - dispatch.topic_for
from companion.reminders.push import Outcome
from companion.reminders.retries import EXPIRED, NO_DEVICE, QUIET, Settings  # noqa: F401 - dispatch.*
from companion.reminders.sender import Sender


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


def send_batch(
    db: sqlite_utils.Database,
    sender: Sender | None,
    claimed: list[dict],
    now: datetime,
    owner: str,
    settings: Settings,
    email: by_email.Email | None = None,
    push_off: str | None = None,
) -> dict[str, int]:
    """Send claimed rows (no transaction open during HTTP or SMTP), then record and settle them.

    Push first; then email, where the client chose it or push could not deliver (by_email).
    Without a sender (push_off says why) a row that has devices goes by email where it can,
    else waits for push (see _without_push).
    """
    targets = jobs_for.find_targets(db, claimed, email_on=email is not None)
    services = retries.services_for(sender) if sender is not None else {}
    counts = {
        "sent": 0,
        "retry": 0,
        "waiting": 0,
        "failed": 0,
        "skipped": 0,
        "expired": 0,
        "quiet": 0,
    }
    final: list[dict] = []
    pending: list[dict] = []
    jobs, live = jobs_for.build(claimed, targets, now, owner, final, pending, counts)
    if sender is None:
        results, waiting = [], jobs
    else:
        results, waiting = retries.send_unless_down(sender, jobs, services, now, settings)
    by_row: dict[int, list[tuple[Target, Outcome]]] = {}
    for target, outcome in results:
        by_row.setdefault(target.row_id, []).append((target, outcome))
    held: dict[int, set[str]] = {}  # row -> push services it waits for
    for job in waiting:
        held.setdefault(job.key.row_id, set()).add(job.key.service)

    stamp = iso(now)
    attempts, succeeded, gone, decided = [], set(), set(), []
    for row in live:
        if sender is None and row["id"] in held:
            decided.append(_without_push(row, targets, email, push_off or "push is off", now))
            continue
        found = by_row.get(row["id"], [])
        # A probe that finds its push service still down spends no attempt (only a row's
        # first try counts): the row keeps its retries for when the service is back.
        spent = row["attempts"] == 0 or any(
            not (retries.is_outage(o) and retries.is_down(services, t.service)) for t, o in found
        )
        attempt = row["attempts"] + (1 if found and spent else 0)
        down, retry = set(held.get(row["id"], ())), []
        for target, o in found:
            attempts.append(
                {
                    "notification_id": row["id"],
                    "subscription_id": target.subscription_id,
                    "channel": "push",
                    "address": None,
                    "attempt": row["attempts"] + 1,  # this try's number (a probe's repeats)
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
        if (
            status == "waiting"
            and not retry
            and not delivered  # reached a device: waiting only for the others
            and _email_instead(row, targets, email)
            and retries.down_too_long(services, down, now, settings)
        ):
            # The push service has been down as long as retries would have taken: push
            # failed for this row, which goes by email now (by_email.send), not at expiry.
            status, reason, next_at = "failed", f"push service down: {why}", None
        decided.append((row, attempt, status, reason, next_at))
    decided = by_email.send(
        db, email, decided, targets.quiet, targets.emailed, attempts, stamp, now, settings
    )
    emailed = sum(1 for a in attempts if a["channel"] == "email")
    if emailed:
        counts["emailed"] = emailed
    for row, attempt, status, reason, next_at in decided:
        counts[status] += 1
        if next_at is not None:
            pending.append(jobs_for.put_back(row, owner, attempt, next_at, reason))
        else:
            sent_at = stamp if status == "sent" else None
            final.append(jobs_for.settled(row["id"], owner, status, reason, attempt, sent_at))
    _record(db, stamp, attempts, succeeded, gone, pending, final)
    return counts


def _email_instead(row: dict, targets, email) -> bool:
    """This row may go by email in place of push (the default fallback), and has not yet."""
    if email is None or row["id"] in targets.emailed or row["owner_kind"] != "client":
        return False
    want = by_email.wanted(row, targets.quiet.get(row["owner_id"]))
    return want is not None and not want[1]


# How long a row that only push can deliver waits, while push is off, before it is looked at
# again (it expires in the queue if push stays off).
PUSH_OFF_WAIT = 60


def _without_push(row: dict, targets, email, problem: str, now: datetime) -> tuple:
    """A row with devices while push cannot be used at all (no usable VAPID contact).

    No live push is possible: the row goes by email once where it may (by_email.send sends
    'skipped' rows), else it waits for push without spending an attempt.
    """
    client = targets.quiet.get(row["owner_id"]) if row["owner_kind"] == "client" else None
    emailable = email is not None and row["id"] not in targets.emailed
    if emailable and by_email.wanted(row, client) is not None:
        return row, row["attempts"], "skipped", f"push is off: {problem}", None
    wait = min(now + timedelta(seconds=PUSH_OFF_WAIT), parse_iso(row["expires_at"]))
    return row, row["attempts"], "waiting", f"waiting for push, which is off: {problem}", wait


def _record(
    db: sqlite_utils.Database,
    stamp: str,
    attempts: list[dict],
    succeeded: set[int],
    gone: set[int],
    pending: list[dict],
    final: list[dict],
) -> None:
    """Write a batch's deliveries, device states and row states in one short transaction.

    A client erased or a device removed while the batch was out is no error: each
    result is written on its own terms, so nobody else's result is rolled back.
    """
    with write(db):
        db.conn.executemany(
            "INSERT INTO deliveries (notification_id, subscription_id, channel, address, attempt,"
            " at, status_code, outcome, reason, elapsed_ms) SELECT :notification_id, (SELECT id"
            " FROM push_subscriptions WHERE id = :subscription_id), :channel, :address, :attempt,"
            " :at, :status_code, :outcome, :reason, :elapsed_ms"
            " WHERE EXISTS (SELECT 1 FROM notifications WHERE id = :notification_id)",
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
    sender: Sender | None,
    clock: Callable[[], datetime],
    owner: str,
    settings: Settings,
    max_batches: int = 20,
    stopping: threading.Event | None = None,
    email: by_email.Email | None = None,
    push_off: str | None = None,
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
        for key, n in send_batch(
            db, sender, claimed, now, owner, settings, email, push_off
        ).items():
            total[key] = total.get(key, 0) + n
        if len(claimed) < settings.batch:
            break
    return total
