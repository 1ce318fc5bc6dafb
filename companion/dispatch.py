"""Claim due notifications, send them to every live device, record each attempt, retry or settle."""

import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from . import push
from .db import iso, parse_iso, rows, write

NO_DEVICE = "no subscribed device (shown in the app's inbox)"
FINAL = ("delivered", "gone", "failed")


@dataclass
class Settings:
    batch: int = 500
    lease_seconds: int = 120
    max_attempts: int = 6
    base_backoff: float = 30.0  # seconds; doubles per attempt, with jitter
    max_backoff: float = 3600.0


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def reclaim_expired(db: sqlite_utils.Database, now: datetime) -> int:
    """Put rows whose sender's lease ran out back in the queue (a separate, indexed step)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_until < ?", (iso(now),)).rowcount


def claim(db: sqlite_utils.Database, now: datetime, limit: int, lease_seconds: int,
          owner: str) -> list[dict]:
    """Atomically lease up to `limit` due rows for this sender, oldest due first."""
    with write(db):
        claimed = db.conn.execute(
            "UPDATE notifications SET status = 'leased', lease_until = ?, lease_owner = ?"
            " WHERE id IN (SELECT id FROM notifications WHERE status = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) RETURNING *",
            (iso(now + timedelta(seconds=lease_seconds)), owner, iso(now), limit)).fetchall()
    return sorted((dict(r) for r in claimed), key=lambda r: r["next_attempt_at"])


def release(db: sqlite_utils.Database, owner: str) -> int:
    """Give back this sender's leases (graceful shutdown)."""
    with write(db):
        return db.conn.execute(
            "UPDATE notifications SET status = 'pending', lease_until = NULL, lease_owner = NULL"
            " WHERE status = 'leased' AND lease_owner = ?", (owner,)).rowcount


def _in(values) -> str:
    return ",".join("?" * len(values))


def _targets(db: sqlite_utils.Database, claimed: list[dict]) -> tuple[dict, dict, set]:
    """Find each row's live subscriptions, discreet owners, and devices already settled."""
    subs: dict[tuple, list[dict]] = {}
    for kind in ("client", "practitioner"):
        ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == kind})
        if ids:
            for s in rows(db, f"SELECT * FROM push_subscriptions WHERE gone_at IS NULL"
                              f" AND owner_kind = ? AND owner_id IN ({_in(ids)})", (kind, *ids)):
                subs.setdefault((kind, s["owner_id"]), []).append(s)
    client_ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == "client"})
    discreet = {r["id"] for r in rows(db, f"SELECT id FROM clients WHERE discreet = 1 AND id IN"
                                          f" ({_in(client_ids)})", client_ids)} if client_ids else set()
    retried = [r["id"] for r in claimed if r["attempts"]]
    settled = {(d["notification_id"], d["subscription_id"]) for d in rows(
        db, f"SELECT notification_id, subscription_id FROM deliveries WHERE notification_id IN"
            f" ({_in(retried)}) AND outcome IN ('delivered', 'gone', 'failed')", retried)} if retried else set()
    return subs, discreet, settled


def topic_for(row: dict) -> str:
    # One topic per session and kind: a phone that was offline gets the newest
    # pending sunscreen reminder, not a stack of stale ones.
    return f"{row['kind'][:10]}-{row['session_id'] or row['flag_id'] or row['id']}"


def backoff(attempt: int, settings: Settings, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the push service asked."""
    ceiling = min(settings.max_backoff, settings.base_backoff * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def send_batch(db: sqlite_utils.Database, sender: "push.Sender", claimed: list[dict],
               now: datetime, owner: str, settings: Settings) -> dict[str, int]:
    """Send claimed rows (no transaction open during HTTP), then record and settle them."""
    subs, discreet, settled = _targets(db, claimed)
    jobs, expired = [], []
    for row in claimed:
        if parse_iso(row["expires_at"]) <= now:
            expired.append(row)
            continue
        ttl = max(60, int((parse_iso(row["expires_at"]) - now).total_seconds()))
        payload = push.build_payload(row["title"], row["body"], row["url"],
                                     f"companion-{row['id']}", row["id"],
                                     discreet=row["owner_kind"] == "client" and row["owner_id"] in discreet)
        for sub in subs.get((row["owner_kind"], row["owner_id"]), []):
            if (row["id"], sub["id"]) not in settled:
                jobs.append(((row["id"], sub["id"]), sub, payload, ttl, row["urgency"], topic_for(row)))
    results = sender.send_many(jobs) if jobs else []
    by_row: dict[int, list] = {}
    for (row_id, sub_id), outcome in results:
        by_row.setdefault(row_id, []).append((sub_id, outcome))
    counts = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0, "expired": len(expired)}
    stamp = iso(now)
    expired_ids = {r["id"] for r in expired}
    with write(db):
        for row in expired:
            _settle(db, row, owner, "skipped", "expired before it could be sent", now)
        for row in claimed:
            if row["id"] in expired_ids:
                continue
            attempt = row["attempts"] + 1
            outcomes = by_row.get(row["id"], [])
            for sub_id, o in outcomes:
                db.conn.execute(
                    "INSERT INTO deliveries (notification_id, subscription_id, attempt, at,"
                    " status_code, outcome, reason, elapsed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (row["id"], sub_id, attempt, stamp, o.status, o.kind, o.reason[:500], o.elapsed_ms))
                if o.kind == "delivered":
                    db.conn.execute("UPDATE push_subscriptions SET last_success_at = ? WHERE id = ?",
                                    (stamp, sub_id))
                elif o.kind == "gone":
                    db.conn.execute("UPDATE push_subscriptions SET gone_at = ? WHERE id = ?",
                                    (stamp, sub_id))
            retry = [o for _, o in outcomes if o.kind == "retry"]
            delivered_before = row["attempts"] and db.conn.execute(
                "SELECT 1 FROM deliveries WHERE notification_id = ? AND outcome = 'delivered'"
                " AND attempt < ? LIMIT 1", (row["id"], attempt)).fetchone()
            delivered = delivered_before or any(o.kind == "delivered" for _, o in outcomes)
            if retry and attempt < settings.max_attempts:
                retry_after = max((o.retry_after or 0.0) for o in retry)
                next_at = now + timedelta(seconds=backoff(attempt, settings, retry_after))
                if next_at < parse_iso(row["expires_at"]):
                    db.conn.execute(
                        "UPDATE notifications SET status = 'pending', attempts = ?,"
                        " next_attempt_at = ?, status_reason = ?, lease_until = NULL,"
                        " lease_owner = NULL WHERE id = ? AND lease_owner = ?",
                        (attempt, iso(next_at), f"retrying: {retry[0].reason}"[:500], row["id"], owner))
                    counts["retry"] += 1
                    continue
                status, reason = "failed", f"expired while retrying: {retry[0].reason}"
            elif retry:
                status, reason = "failed", f"gave up after {attempt} attempts: {retry[0].reason}"
            elif delivered:
                status, reason = "sent", None
            elif not outcomes and not row["attempts"]:
                status, reason = "skipped", NO_DEVICE
            elif all(o.kind == "gone" for _, o in outcomes):
                status, reason = "skipped", "every device unsubscribed (shown in the app's inbox)"
            else:
                failed = [o for _, o in outcomes if o.kind == "failed"]
                status, reason = "failed", (failed[0].reason if failed else "not delivered")
            _settle(db, row, owner, status, reason, now, attempt)
            counts[status] += 1
    return counts


def _settle(db, row: dict, owner: str, status: str, reason: str | None, now: datetime,
            attempts: int | None = None) -> None:
    db.conn.execute(
        "UPDATE notifications SET status = ?, status_reason = ?, attempts = ?, sent_at = ?,"
        " lease_until = NULL, lease_owner = NULL WHERE id = ? AND lease_owner = ?",
        (status, reason, attempts if attempts is not None else row["attempts"],
         iso(now) if status == "sent" else None, row["id"], owner))


def tick(db: sqlite_utils.Database, sender: "push.Sender", clock: Callable[[], datetime],
         owner: str, settings: Settings, max_batches: int = 20) -> dict[str, int]:
    """Run one dispatch pass: reclaim expired leases, then drain due rows in bounded batches."""
    total = {"reclaimed": reclaim_expired(db, clock())}
    for _ in range(max_batches):
        now = clock()
        claimed = claim(db, now, settings.batch, settings.lease_seconds, owner)
        if not claimed:
            break
        for key, n in send_batch(db, sender, claimed, now, owner, settings).items():
            total[key] = total.get(key, 0) + n
        if len(claimed) < settings.batch:
            break
    return total
