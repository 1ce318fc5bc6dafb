"""Claim due notifications, send them to every live device, record each attempt, retry or settle."""

import os
import random
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import sqlite_utils

from companion.db import iso, parse_iso, rows, write
from companion.reminders import push

NO_DEVICE = "no subscribed device (shown in the app's inbox)"
ALL_GONE = "every device unsubscribed (shown in the app's inbox)"
EXPIRED = "expired before it could be sent"
FINAL = ("delivered", "gone", "failed")


@dataclass
class Settings:
    batch: int = 500
    lease_seconds: int = 120
    max_attempts: int = 6
    base_backoff: float = 30.0  # seconds; doubles per attempt, with jitter
    max_backoff: float = 3600.0
    # A push service that answered this many different devices in a row with 5xx or
    # nothing is down: its messages wait without spending attempts, and one probe goes
    # out per interval (doubling from probe_backoff to max_probe_backoff).
    outage_devices: int = 3
    probe_backoff: float = 5.0
    max_probe_backoff: float = 60.0


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def reclaim_expired(db: sqlite_utils.Database, now: datetime) -> int:
    """Put rows whose sender's lease ran out back in the queue (a separate, indexed step)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_until < ?",
            (iso(now),),
        ).rowcount


# The partial index notifications_due (next_attempt_at WHERE status = 'pending') keeps
# this proportional to what is due, however many future rows are stored. Rows released
# together after an outage share next_attempt_at: due_at keeps them in due order.
CLAIM_SQL = (
    "UPDATE notifications SET status = 'leased', lease_until = ?, lease_owner = ?"
    " WHERE id IN (SELECT id FROM notifications WHERE status = 'pending'"
    " AND next_attempt_at <= ? ORDER BY next_attempt_at, due_at LIMIT ?) RETURNING *"
)


def claim(
    db: sqlite_utils.Database, now: datetime, limit: int, lease_seconds: int, owner: str
) -> list[dict]:
    """Atomically lease up to `limit` due rows for this sender, oldest due first."""
    with write(db):
        claimed = db.conn.execute(
            CLAIM_SQL, (iso(now + timedelta(seconds=lease_seconds)), owner, iso(now), limit)
        ).fetchall()
    return sorted(
        (dict(r) for r in claimed), key=lambda r: (r["next_attempt_at"], r["due_at"], r["id"])
    )


def release(db: sqlite_utils.Database, owner: str) -> int:
    """Give back this sender's leases (graceful shutdown)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_owner = ?",
            (owner,),
        ).rowcount


def _in(values) -> str:
    return ",".join("?" * len(values))


def _targets(db: sqlite_utils.Database, claimed: list[dict]) -> tuple[dict, set, set, set]:
    """Find each row's live devices, discreet owners, devices settled, and rows delivered."""
    subs: dict[tuple, list[dict]] = {}
    for kind in ("client", "practitioner"):
        ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == kind})
        if ids:
            for s in rows(
                db,
                f"SELECT * FROM push_subscriptions WHERE gone_at IS NULL"
                f" AND owner_kind = ? AND owner_id IN ({_in(ids)})",
                (kind, *ids),
            ):
                subs.setdefault((kind, s["owner_id"]), []).append(s)
    client_ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == "client"})
    discreet = (
        {
            r["id"]
            for r in rows(
                db,
                f"SELECT id FROM clients WHERE discreet = 1 AND id IN ({_in(client_ids)})",
                client_ids,
            )
        }
        if client_ids
        else set()
    )
    retried = [r["id"] for r in claimed if r["attempts"]]
    settled, delivered = set(), set()
    if retried:
        for d in rows(
            db,
            f"SELECT notification_id, subscription_id, outcome FROM deliveries"
            f" WHERE notification_id IN ({_in(retried)}) AND outcome IN"
            f" ({_in(FINAL)})",
            (*retried, *FINAL),
        ):
            settled.add((d["notification_id"], d["subscription_id"]))
            if d["outcome"] == "delivered":
                delivered.add(d["notification_id"])
    return subs, discreet, settled, delivered


def topic_for(row: dict) -> str:
    # One topic per session and kind: a phone that was offline gets the newest
    # pending sunscreen reminder, not a stack of stale ones.
    return f"{row['kind'][:10]}-{row['session_id'] or row['flag_id'] or row['id']}"


def backoff(attempt: int, settings: Settings, retry_after: float | None) -> float:
    """Exponential backoff, jittered over its upper half, never sooner than asked (Retry-After)."""
    ceiling = min(settings.max_backoff, settings.base_backoff * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


# -- push services that are down ---------------------------------------------------------


@dataclass
class _Service:
    """What this sender has seen of one push service (an endpoint origin) lately."""

    failing: set = field(default_factory=set)  # devices answered 5xx/nothing since a good answer
    down_until: datetime | None = None  # set: down; messages wait, then one probe goes out
    probes: int = 0
    reason: str = ""


# Kept per Sender (one per dispatcher) and dropped with it.
_services: "weakref.WeakKeyDictionary[push.Sender, dict[str, _Service]]" = (
    weakref.WeakKeyDictionary()
)


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _outage(outcome: "push.Outcome") -> bool:
    """A 5xx or no answer: says more about the push service than about the device."""
    return outcome.kind == "retry" and (outcome.status is None or outcome.status >= 500)


def _observe(
    services: dict[str, _Service], results: list, now: datetime, settings: Settings
) -> None:
    """Mark push services down after enough failing devices in a row, up on any answer."""
    seen: dict[str, list] = {}
    for (_, sub_id, origin), outcome in results:
        seen.setdefault(origin, []).append((sub_id, outcome))
    for origin, answers in seen.items():
        failing = [(sub_id, o) for sub_id, o in answers if _outage(o)]
        if len(failing) < len(answers):  # it answered someone: it is up
            services.pop(origin, None)
            continue
        service = services.setdefault(origin, _Service())
        service.failing.update(sub_id for sub_id, _ in failing)
        service.reason = failing[0][1].reason
        if service.down_until is not None or len(service.failing) >= settings.outage_devices:
            wait = min(settings.max_probe_backoff, settings.probe_backoff * 2**service.probes)
            asked = max((o.retry_after or 0.0) for _, o in failing)
            service.down_until = now + timedelta(seconds=max(wait, asked))
            service.probes += 1


def _send(
    sender: "push.Sender",
    jobs: list,
    services: dict[str, _Service],
    now: datetime,
    settings: Settings,
) -> tuple[list, list]:
    """Send jobs, except to push services that are down: one probe each when it is time.

    Returns (results, waiting): waiting are the jobs not sent because their push
    service is down.
    """
    ready, probes, waiting = [], {}, []
    for job in jobs:
        service = services.get(job[0][2])
        if service is None or service.down_until is None:
            ready.append(job)
        elif service.down_until <= now and job[0][2] not in probes:
            probes[job[0][2]] = job
        else:
            waiting.append(job)
    results = []
    if probes:
        results = sender.send_many(list(probes.values()))
        _observe(services, results, now, settings)
        still = []
        for job in waiting:
            (ready if services.get(job[0][2]) is None else still).append(job)
        waiting = still
    sent = sender.send_many(ready) if ready else []
    _observe(services, sent, now, settings)
    return results + sent, waiting


# -- one batch -------------------------------------------------------------------------------


def _jobs(
    claimed: list[dict], targets: tuple, now: datetime, owner: str, final: list, counts: dict
) -> tuple[list, list]:
    """Build one send job per row and device; settle at once rows that expired or are bad."""
    subs, discreet, settled, delivered_before = targets
    jobs, live = [], []
    for row in claimed:
        if parse_iso(row["expires_at"]) <= now:
            counts["expired"] += 1
            # Delivered to some device on an earlier attempt: it did go out.
            sent = row["id"] in delivered_before
            final.append(
                (
                    "sent" if sent else "skipped",
                    None if sent else EXPIRED,
                    row["attempts"],
                    iso(now) if sent else None,
                    row["id"],
                    owner,
                )
            )
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
                discreet=row["owner_kind"] == "client" and row["owner_id"] in discreet,
            )
        except ValueError as exc:  # a bad row must not hold up the batch
            counts["failed"] += 1
            final.append(
                ("failed", f"cannot send: {exc}"[:500], row["attempts"], None, row["id"], owner)
            )
            continue
        live.append(row)
        ttl = max(60, int((parse_iso(row["expires_at"]) - now).total_seconds()))
        for sub in subs.get((row["owner_kind"], row["owner_id"]), []):
            if (row["id"], sub["id"]) not in settled:
                jobs.append(
                    (
                        (row["id"], sub["id"], _origin(sub["endpoint"])),
                        sub,
                        payload,
                        ttl,
                        row["urgency"],
                        topic_for(row),
                    )
                )
    return jobs, live


def _decide(
    row: dict,
    attempt: int,
    outcomes: list,
    retry: list,
    wait_until: datetime | None,
    why: str,
    delivered: bool,
    now: datetime,
    settings: Settings,
) -> tuple[str, str | None, datetime | None]:
    """Return (status, reason, next attempt) for a row; 'retry'/'waiting' go back to pending."""
    next_at = wait_until
    if retry and attempt < settings.max_attempts:
        retry_after = max((o.retry_after or 0.0) for o in retry)
        at = now + timedelta(seconds=backoff(attempt, settings, retry_after))
        next_at = min(next_at, at) if next_at else at
    if next_at is not None and next_at < parse_iso(row["expires_at"]):
        if retry:
            return "retry", f"retrying: {why}", next_at
        return "waiting", f"waiting for the push service: {why}", next_at
    if delivered:  # on some device; the others could not be reached
        return "sent", None, None
    if next_at is not None:
        if attempt == 0:
            return "skipped", EXPIRED, None
        return "failed", f"expired while retrying: {why}", None
    if retry:
        return "failed", f"gave up after {attempt} attempts: {why}", None
    if not outcomes and not row["attempts"]:
        return "skipped", NO_DEVICE, None
    if all(o.kind == "gone" for o in outcomes):
        return "skipped", ALL_GONE, None
    failed = [o for o in outcomes if o.kind == "failed"]
    return "failed", (failed[0].reason if failed else "not delivered"), None


def send_batch(
    db: sqlite_utils.Database,
    sender: "push.Sender",
    claimed: list[dict],
    now: datetime,
    owner: str,
    settings: Settings,
) -> dict[str, int]:
    """Send claimed rows (no transaction open during HTTP), then record and settle them."""
    targets = _targets(db, claimed)
    services = _services.setdefault(sender, {})
    counts = {"sent": 0, "retry": 0, "waiting": 0, "failed": 0, "skipped": 0, "expired": 0}
    final: list[tuple] = []
    jobs, live = _jobs(claimed, targets, now, owner, final, counts)
    results, waiting = _send(sender, jobs, services, now, settings)
    by_row: dict[int, list] = {}
    for (row_id, sub_id, origin), outcome in results:
        by_row.setdefault(row_id, []).append((sub_id, origin, outcome))
    held: dict[int, set[str]] = {}  # row -> push services it waits for
    for (row_id, _, origin), *_ in waiting:
        held.setdefault(row_id, set()).add(origin)

    stamp = iso(now)
    attempts, succeeded, gone, pending = [], set(), set(), []
    for row in live:
        found = by_row.get(row["id"], [])
        attempt = row["attempts"] + (1 if found else 0)
        down, retry = set(held.get(row["id"], ())), []
        for sub_id, origin, o in found:
            attempts.append(
                (row["id"], sub_id, attempt, stamp, o.status, o.kind, o.reason[:500], o.elapsed_ms)
            )
            if o.kind == "delivered":
                succeeded.add(sub_id)
            elif o.kind == "gone":
                gone.add(sub_id)
            elif _outage(o) and origin in services and services[origin].down_until:
                down.add(origin)  # wait for the push service; the row's attempts are not spent
            elif o.kind == "retry":
                retry.append(o)
        outcomes = [o for *_, o in found]
        delivered = row["id"] in targets[3] or any(o.kind == "delivered" for o in outcomes)
        why = (
            retry[0].reason
            if retry
            else next(
                (services[o].reason for o in sorted(down) if services[o].reason), "unavailable"
            )
        )
        wait_until = min((services[o].down_until for o in down), default=None)
        status, reason, next_at = _decide(
            row, attempt, outcomes, retry, wait_until, why, delivered, now, settings
        )
        counts[status] += 1
        if next_at is not None:
            pending.append((attempt, iso(next_at), reason[:500], row["id"], owner))
        else:
            final.append(
                (
                    status,
                    reason and reason[:500],
                    attempt,
                    stamp if status == "sent" else None,
                    row["id"],
                    owner,
                )
            )
    _record(db, stamp, attempts, succeeded, gone, pending, final)
    return counts


def _record(
    db: sqlite_utils.Database,
    stamp: str,
    attempts: list,
    succeeded: set,
    gone: set,
    pending: list,
    final: list,
) -> None:
    """Write a batch's deliveries, device states and row states in one short transaction."""
    with write(db):
        db.conn.executemany(
            "INSERT INTO deliveries (notification_id, subscription_id, attempt, at, status_code,"
            " outcome, reason, elapsed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            attempts,
        )
        db.conn.executemany(
            "UPDATE push_subscriptions SET last_success_at = ? WHERE id = ?",
            [(stamp, s) for s in sorted(succeeded)],
        )
        db.conn.executemany(
            "UPDATE push_subscriptions SET gone_at = ? WHERE id = ?",
            [(stamp, s) for s in sorted(gone)],
        )
        # WHERE lease_owner: a sender whose lease ran out must not settle a row that
        # another sender has claimed since.
        db.conn.executemany(
            "UPDATE notifications SET status = 'pending', attempts = ?, next_attempt_at = ?,"
            " status_reason = ?, lease_until = NULL, lease_owner = NULL"
            " WHERE id = ? AND lease_owner = ?",
            pending,
        )
        db.conn.executemany(
            "UPDATE notifications SET status = ?, status_reason = ?, attempts = ?, sent_at = ?,"
            " lease_until = NULL, lease_owner = NULL WHERE id = ? AND lease_owner = ?",
            final,
        )


def tick(
    db: sqlite_utils.Database,
    sender: "push.Sender",
    clock: Callable[[], datetime],
    owner: str,
    settings: Settings,
    max_batches: int = 20,
    stopping: "threading.Event | None" = None,
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
