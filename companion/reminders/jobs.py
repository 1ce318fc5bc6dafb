"""What a claimed batch is sent to: each row's live devices (the newest few), its client's
quiet hours, its Topic, and one PushJob per row and device. No HTTP; the dispatcher sends."""

import json
from datetime import datetime
from itertools import zip_longest
from typing import NamedTuple

import sqlite_utils

from companion.db import iso, parse_iso, rows
from companion.reminders import channels, push, retries
from companion.reminders.devices import MAX_LIVE_DEVICES
from companion.reminders.push import topic_header
from companion.reminders.retries import EXPIRED, QUIET
from companion.reminders.sender import PushJob


class Target(NamedTuple):
    """One notification for one device (a PushJob's key)."""

    row_id: int
    subscription_id: int
    service: str  # the push service's origin


class Targets(NamedTuple):
    """What a batch is sent to, found before anything is sent."""

    devices: dict[tuple[str, int], list[dict]]  # (owner kind, owner id) -> live subscriptions
    discreet: set[int]  # clients whose notifications say nothing of the treatment
    quiet: dict[int, dict]  # client id -> timezone, quiet_start, quiet_end, language, ...
    settled: set[tuple[int, int]]  # (row, device) pairs an earlier attempt settled
    delivered: set[int]  # rows an earlier attempt delivered to some device
    emailed: set[int]  # rows an earlier attempt emailed, or whose email was refused for good
    by_email: set[int]  # clients whose reminders may go by email (held in quiet hours too)
    senders: dict[int, str]  # clinic id -> the name clients know it by (display name)


def find_targets(db: sqlite_utils.Database, claimed: list[dict], email_on: bool = False) -> Targets:
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
    for key, found in devices.items():
        # The newest devices only: hundreds of dead endpoints registered by one owner
        # cost a bounded share of a batch (devices.subscribe retires the rest).
        devices[key] = found[-MAX_LIVE_DEVICES:]
    client_ids = sorted({r["owner_id"] for r in claimed if r["owner_kind"] == "client"})
    clients = rows(
        db,
        "SELECT id, discreet, timezone, quiet_start, quiet_end, email, channels, language"
        " FROM clients"
        " WHERE id IN (SELECT value FROM json_each(:ids))",
        {"ids": json.dumps(client_ids)},
    )
    discreet = {c["id"] for c in clients if c["discreet"]}
    quiet = {c["id"]: c for c in clients}
    by_email = set()
    for c in clients:
        chosen = channels.decode(c["channels"])
        if not channels.allows(chosen, "push"):
            devices.pop(("client", c["id"]), None)  # the client turned push off
        if email_on and c["email"] and channels.allows(chosen, "email"):
            by_email.add(c["id"])
    retried = [r["id"] for r in claimed if r["attempts"]]
    settled, delivered, emailed = set(), set(), set()
    if retried:
        for d in rows(
            db,
            "SELECT notification_id, subscription_id, outcome, channel FROM deliveries"
            " WHERE notification_id IN (SELECT value FROM json_each(:ids))"
            " AND outcome IN ('delivered', 'gone', 'failed')",  # final for that device
            {"ids": json.dumps(retried)},
        ):
            if d["channel"] == "email":
                emailed.add(d["notification_id"])
                continue
            settled.add((d["notification_id"], d["subscription_id"]))
            if d["outcome"] == "delivered":
                delivered.add(d["notification_id"])
    clinic_ids = sorted({r["clinic_id"] for r in claimed if r["owner_kind"] == "client"})
    senders = {
        c["id"]: c["name"]
        for c in rows(
            db,
            "SELECT id, coalesce(display_name, name) AS name FROM clinics"
            " WHERE id IN (SELECT value FROM json_each(:ids))",
            {"ids": json.dumps(clinic_ids)},
        )
    }
    return Targets(devices, discreet, quiet, settled, delivered, emailed, by_email, senders)


def titled(row: dict, targets: Targets) -> str:
    """A client's reminder says which clinic it comes from (a client trusts their clinic, not
    an app name); discreet mode replaces the whole text later, name included."""
    sender = targets.senders.get(row["clinic_id"]) if row["owner_kind"] == "client" else None
    return f"{sender}: {row['title']}" if sender else row["title"]


def topic_for(row: dict) -> str:
    """One topic per message (RFC 8030 replaces a stored message by topic).

    A planned step keeps its topic when it is re-sent or re-planned (the newer copy
    should replace the older); two steps, or two flags, never share one.
    """
    if row["step_key"] and row["session_id"]:
        return topic_header(f"s{row['session_id']}-{row['step_key']}")
    if row["flag_id"]:
        return f"flag-{row['flag_id']}"
    return f"n-{row['id']}"


def settled(row_id: int, owner: str, status: str, reason, attempts: int, sent_at) -> dict:
    """Parameters of a row's final state (see _record)."""
    return {
        "status": status,
        "reason": reason and reason[:500],
        "attempts": attempts,
        "sent_at": sent_at,
        "id": row_id,
        "owner": owner,
    }


def build(
    claimed: list[dict],
    targets: Targets,
    now: datetime,
    owner: str,
    final: list,
    pending: list,
    counts: dict,
) -> tuple[list[PushJob], list[dict]]:
    """Build one send job per row and device; settle at once rows that expired or are bad,
    and put back those that would arrive in their client's quiet hours."""
    per_owner: dict[tuple[str, int], list[PushJob]] = {}
    live = []
    for row in claimed:
        owner_key = (row["owner_kind"], row["owner_id"])
        client = targets.quiet.get(row["owner_id"]) if row["owner_kind"] == "client" else None
        # Practitioners' alerts are exempt: an urgent flag must reach them at any hour. A
        # client with neither a device nor email gets nothing at night anyway (it settles).
        held = client is not None and (
            targets.devices.get(owner_key) or row["owner_id"] in targets.by_email
        )
        later = retries.after_quiet_hours(client, now) if held else now
        if later > now and parse_iso(row["expires_at"]) > now:
            counts["quiet"] += 1
            if later >= parse_iso(row["expires_at"]):
                final.append(settled(row["id"], owner, "skipped", QUIET, row["attempts"], None))
            else:
                reason = f"held for quiet hours until {iso(later)}"
                pending.append(put_back(row, owner, row["attempts"], later, reason))
            continue
        if parse_iso(row["expires_at"]) <= now:
            counts["expired"] += 1
            if row["id"] in targets.delivered:  # to some device on an earlier attempt
                final.append(settled(row["id"], owner, "sent", None, row["attempts"], iso(now)))
            else:
                final.append(settled(row["id"], owner, "skipped", EXPIRED, row["attempts"], None))
            continue
        try:
            if row["urgency"] not in push.URGENCIES:
                raise ValueError(f"unknown urgency {row['urgency']!r}")
            payload = push.build_payload(
                titled(row, targets),
                row["body"],
                row["url"],
                f"companion-{row['id']}",
                row["id"],
                discreet=row["owner_kind"] == "client" and row["owner_id"] in targets.discreet,
                language=client and client["language"],
            )
        except ValueError as exc:  # a bad row must not hold up the batch
            counts["failed"] += 1
            reason = f"cannot send: {exc}"
            final.append(settled(row["id"], owner, "failed", reason, row["attempts"], None))
            continue
        live.append(row)
        ttl = max(60, int((parse_iso(row["expires_at"]) - now).total_seconds()))
        # A row the outbox marked for email only (an owner's urgent alert) is not pushed.
        pushed = channels.allows(channels.decode(row.get("channels")), "push")
        for sub in targets.devices.get(owner_key, []) if pushed else []:
            if (row["id"], sub["id"]) not in targets.settled:
                target = Target(row["id"], sub["id"], push.origin(sub["endpoint"]))
                job = PushJob(target, sub, payload, ttl, row["urgency"], topic_for(row))
                per_owner.setdefault(owner_key, []).append(job)
    # Fair between owners: every owner's first message goes before anyone's second, so
    # one owner's dead endpoints do not queue ahead of everyone else's reminders.
    queues = list(per_owner.values())
    jobs = [job for round_ in zip_longest(*queues) for job in round_ if job is not None]
    return jobs, live


def put_back(row: dict, owner: str, attempts: int, next_at: datetime, reason: str) -> dict:
    """Parameters of a row going back to the queue (see _record)."""
    return {
        "attempts": attempts,
        "next_attempt_at": iso(next_at),
        "reason": reason[:500],
        "id": row["id"],
        "owner": owner,
    }
