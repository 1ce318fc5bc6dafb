"""What a client sees of their aftercare: today's instructions, the next reminder, the inbox."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlite_utils

from companion.clinical import day_number
from companion.db import iso, parse_iso, rows
from companion.reminders.planning import SKIP_BEFORE_SESSION, SKIP_PAST_VALIDITY
from companion.treatments.store import latest_session, session_dict


def _local(text: str, tz: str) -> datetime:
    return parse_iso(text).astimezone(ZoneInfo(tz))


# Steps skipped when the session was planned never applied to this client; a reminder
# skipped later (no device to push to) still did, and the app shows it.
PLANNING_SKIPS = (SKIP_BEFORE_SESSION, SKIP_PAST_VALIDITY)


# applies() in SQL, for queries that limit what they read.
APPLIES_SQL = (
    "status != 'cancelled' AND NOT (status = 'skipped' AND (coalesce(status_reason, '') IN ({})"
    " OR substr(coalesce(status_reason, ''), 1, 10) = 'less than '))"
).format(", ".join(f"'{reason}'" for reason in PLANNING_SKIPS))


def applies(row: dict) -> bool:
    """Tell whether a planned row is part of the client's aftercare (not cancelled or void)."""
    reason = row["status_reason"] or ""
    void = row["status"] == "skipped" and (
        reason in PLANNING_SKIPS or reason.startswith("less than ")
    )
    return row["status"] != "cancelled" and not void


# What applies() and reminder_dict() read of a notification row.
COLUMNS = "id, kind, title, body, url, due_at, status, status_reason, session_id"


def reminder_dict(row: dict, tz: str) -> dict:
    """Shape a planned reminder for the client, due time on their wall clock."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "title": row["title"],
        "body": row["body"],
        "url": row["url"],
        "due_at": _local(row["due_at"], tz).isoformat(),
        "status": row["status"],
        "session_id": row["session_id"],
    }


def overview(
    db: sqlite_utils.Database,
    client: dict,
    now: datetime,
    session: dict | None = None,
    lists: bool = True,
) -> dict:
    """Return the latest session, today's steps, the next reminder and (`lists`) all upcoming
    and recent ones.

    `session`: the client's latest session row, when the caller has read it already.
    `lists=False` (the home page, which shows today's steps and the next reminder): the lists
    stay empty and nothing due before two days ago is read.
    """
    tz = client["timezone"]
    session = session or latest_session(db, client["id"])
    if session is None:
        return {"session": None, "today": [], "next": None, "upcoming": [], "past": [], "day": None}
    # Without the lists, only today's steps and the next are shown: none due before two days
    # ago is read (the client's "today" began at most ~25 hours ago, whatever their zone).
    since = "" if lists else iso(now - timedelta(days=2))
    planned = rows(
        db,
        f"SELECT {COLUMNS} FROM notifications WHERE session_id = :session_id"
        " AND owner_kind = 'client' AND status NOT IN ('cancelled') AND due_at >= :since"
        " ORDER BY due_at, id",
        {"session_id": session["id"], "since": since},
    )
    today = now.astimezone(ZoneInfo(tz)).date()
    performed = parse_iso(session["performed_at"])
    now_text = iso(now)
    to_come = [r for r in planned if r["status"] == "pending" and r["due_at"] > now_text]
    return {
        "session": session_dict(session, tz),
        "day": day_number(performed, now, tz),
        "today": [
            reminder_dict(r, tz)
            for r in planned
            if _local(r["due_at"], tz).date() == today and applies(r)
        ],
        "next": reminder_dict(to_come[0], tz) if to_come else None,
        "upcoming": [reminder_dict(r, tz) for r in to_come] if lists else [],
        "past": [reminder_dict(r, tz) for r in planned if applies(r) and r["due_at"] <= now_text][
            ::-1
        ][:10]
        if lists
        else [],
    }


def inbox(db: sqlite_utils.Database, client: dict, now: datetime, limit: int = 100) -> list[dict]:
    """Return the client's reminders that are due, newest first: the in-app fallback to push."""
    found = rows(
        db,
        f"SELECT {COLUMNS} FROM notifications WHERE owner_kind = 'client'"
        f" AND owner_id = :client_id AND due_at <= :now AND {APPLIES_SQL}"
        " ORDER BY due_at DESC, id DESC LIMIT :limit",
        {"client_id": client["id"], "now": iso(now), "limit": limit},
    )
    return [reminder_dict(r, client["timezone"]) for r in found]
