"""The outbox: the one place that inserts, cancels or re-plans notification rows.

A session's reminders are planned here from its clinic's protocol (reminders.planning does
the pure part); practitioner alerts are queued here too. The dispatcher only claims and
settles the rows this module writes. Protocol versions are stored in reminders.protocol_store.
"""

import json
from datetime import datetime, timedelta

import sqlite_utils

from companion.db import iso, parse_iso, rows
from companion.reminders import planning, protocol_store
from companion.reminders.protocol import text_in

# Every notification row is written by this one statement (planned reminders and alerts).
# Not sqlite-utils' insert_all(): it inspects the table on every call, which made planning a
# session of 15 steps about 1.5 ms slower (2.0-2.6 ms -> 3.7-3.9 ms per session, measured).
INSERT = (
    "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, session_id, flag_id,"
    " step_key, kind, title, body, url, urgency, due_at, expires_at, status, status_reason,"
    " next_attempt_at, created_at, channels) VALUES (:owner_kind, :owner_id, :clinic_id,"
    " :client_id, :session_id, :flag_id, :step_key, :kind, :title, :body, :url, :urgency,"
    " :due_at, :expires_at, :status, :status_reason, :next_attempt_at, :created_at, :channels)"
)


def _insert_plan(
    db: sqlite_utils.Database,
    session: dict,
    client: dict,
    steps: list[dict],
    now: datetime,
    keep: set[str],
) -> None:
    planned = planning.plan(
        parse_iso(session["performed_at"]),
        steps,
        client["timezone"],
        client["quiet_start"],
        client["quiet_end"],
        now,
        client.get("language") or "en",
    )
    db.conn.executemany(
        INSERT,
        [
            {
                "owner_kind": "client",
                "owner_id": client["id"],
                "clinic_id": client["clinic_id"],
                "client_id": client["id"],
                "session_id": session["id"],
                "flag_id": None,
                "step_key": row["step_key"],
                "kind": row["kind"],
                "title": row["title"],
                "body": row["body"],
                "url": f"/checkin?session={session['id']}"
                if row["kind"] == "checkin"
                else "/reminders",
                "urgency": "normal",
                "due_at": iso(row["due_at"]),
                "expires_at": iso(row["expires_at"]),
                "status": row["status"],
                "status_reason": row["skip_reason"],
                "next_attempt_at": iso(row["due_at"]),
                "created_at": iso(now),
                "channels": None,  # the client's own, read at send time
            }
            for row in planned
            if row["step_key"] not in keep
        ],
    )


def plan_session(
    db: sqlite_utils.Database, session: dict, client: dict, protocol: dict, now: datetime
) -> None:
    """Write one outbox row per protocol step of a new session."""
    _insert_plan(db, session, client, protocol["steps"], now, keep=set())


def cancel_pending(
    db: sqlite_utils.Database,
    reason: str,
    *,
    session_id: int | None = None,
    client_id: int | None = None,
) -> int:
    """Cancel the reminders of a session or client that have not gone out yet."""
    column, value = (
        ("session_id", session_id) if session_id is not None else ("client_id", client_id)
    )
    return db.conn.execute(
        "UPDATE notifications SET status = 'cancelled', status_reason = :reason,"
        f" lease_until = NULL WHERE {column} = :value AND status IN ('pending', 'skipped')",
        {"reason": reason, "value": value},
    ).rowcount


def cancel_alerts_to(db: sqlite_utils.Database, practitioner_id: int, reason: str) -> int:
    """Cancel the alerts queued for a practitioner that have not gone out yet."""
    return db.conn.execute(
        "UPDATE notifications SET status = 'cancelled', status_reason = :reason,"
        " lease_until = NULL WHERE owner_kind = 'practitioner' AND owner_id = :owner_id"
        " AND status IN ('pending', 'skipped')",
        {"reason": reason, "owner_id": practitioner_id},
    ).rowcount


def forget_client(db: sqlite_utils.Database, client_id: int) -> None:
    """Erasure: cancel what is not sent yet about a client, then delete the client's own rows.

    Alerts to practitioners about the client go with the client row (ON DELETE CASCADE).
    """
    cancel_pending(db, "client erased", client_id=client_id)
    db.conn.execute(
        "DELETE FROM notifications WHERE owner_kind = 'client' AND owner_id = :client_id",
        {"client_id": client_id},
    )


def replan_session(
    db: sqlite_utils.Database,
    session: dict,
    client: dict,
    protocol: dict,
    now: datetime,
    reason: str,
    only_future: bool = False,
) -> None:
    """Cancel the planned reminders not yet sent and plan them again.

    A new session time re-plans every step not yet sent; a new time zone or quiet hours
    (only_future) re-plans only reminders still ahead, so nothing settled or already due
    is sent again late.
    """
    # Only planned reminders are re-planned; alerts and ad-hoc rows have no step_key.
    where = (
        "status = 'pending' AND due_at > :now"
        if only_future
        else "status IN ('pending', 'skipped')"
    )
    db.conn.execute(
        "UPDATE notifications SET status = 'cancelled', status_reason = :reason"
        f" WHERE session_id = :session_id AND step_key IS NOT NULL AND {where}",
        {"reason": f"re-planned: {reason}", "session_id": session["id"], "now": iso(now)},
    )
    keep = {
        r["step_key"]
        for r in rows(
            db,
            "SELECT step_key FROM notifications WHERE session_id = :session_id"
            " AND step_key IS NOT NULL AND status != 'cancelled'",
            {"session_id": session["id"]},
        )
    }
    _insert_plan(db, session, client, protocol["steps"], now, keep=keep)


def replan_client(db: sqlite_utils.Database, client: dict, now: datetime) -> None:
    """Re-plan the future reminders of every session of a client that still has some."""
    for session in rows(
        db,
        "SELECT DISTINCT s.* FROM treatment_sessions s JOIN notifications n"
        " ON n.session_id = s.id AND n.status = 'pending' AND n.due_at > :now"
        " WHERE s.client_id = :client_id",
        {"now": iso(now), "client_id": client["id"]},
    ):
        protocol = protocol_store.protocol_by_id(db, session["protocol_id"])
        replan_session(
            db, session, client, protocol, now, "time zone or quiet hours changed", only_future=True
        )


def retext_client(db: sqlite_utils.Database, client: dict) -> int:
    """A client's new language: their reminders not sent yet take each step's text in it.

    A row keeps its step's text from planning (the inbox, the schedule and the calendar
    show it), so a change of language rewrites the unsent rows in place: due times, topics
    and attempts stay as they were. What was already sent stays in the language it went in, and
    so does a row leased by the dispatcher: it is being sent in the words it was claimed with.
    """
    unsent = "status IN ('pending', 'skipped') AND step_key IS NOT NULL"
    changed = 0
    for session in rows(
        db,
        "SELECT id, protocol_id FROM treatment_sessions WHERE client_id = :client_id AND id IN"
        f" (SELECT session_id FROM notifications WHERE client_id = :client_id AND {unsent})",
        {"client_id": client["id"]},
    ):
        protocol = protocol_store.protocol_by_id(db, session["protocol_id"])
        texts = [
            {
                "session_id": session["id"],
                "step_key": step["key"],
                "title": text_in(step["title"], client["language"]),
                "body": text_in(step["body"], client["language"]),
            }
            for step in protocol["steps"]
        ]
        changed += db.conn.executemany(
            "UPDATE notifications SET title = :title, body = :body"
            f" WHERE session_id = :session_id AND step_key = :step_key AND {unsent}",
            texts,
        ).rowcount
    return changed


SCHEDULE = """
    SELECT n.session_id, n.id, n.step_key, n.kind, n.title, n.due_at, n.expires_at, n.status,
           n.status_reason, n.attempts, n.sent_at,
           (SELECT count(DISTINCT d.subscription_id) FROM deliveries d
             WHERE d.notification_id = n.id AND d.outcome = 'delivered') AS delivered_to,
           EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
             AND d.channel = 'email' AND d.outcome = 'delivered') AS emailed
    FROM notifications n WHERE n.session_id {sessions} AND n.step_key IS NOT NULL
    ORDER BY n.due_at, n.id"""


def session_schedule(db: sqlite_utils.Database, session_id: int) -> list[dict]:
    """Return a session's planned reminders with their delivery outcome."""
    found = rows(db, SCHEDULE.format(sessions="= :session_id"), {"session_id": session_id})
    for n in found:
        del n["session_id"]
        n["emailed"] = bool(n["emailed"])
    return found


# How long an alert is worth sending: a practitioner who was away sees the flag in the queue.
ALERT_VALID = timedelta(hours=24)


def queue_alerts(
    db: sqlite_utils.Database,
    client: dict,
    session: dict,
    flag: dict,
    practitioner_ids: list[int],
    now: datetime,
    by_email: set[int] = frozenset(),
) -> int:
    """Queue a push about a new or escalated flag to each of these practitioners, and an
    email to those in by_email (owners, when the clinic sends urgent alerts by email)."""
    urgent = flag["severity"] == "urgent"
    recipients = {pid: ["push"] for pid in practitioner_ids}
    for pid in by_email:
        recipients[pid] = [*recipients.get(pid, []), "email"]
    title = ("Urgent: " if urgent else "Review: ") + f"{client['name']} ({flag['rule']})"
    db.conn.executemany(
        INSERT,
        [
            {
                "owner_kind": "practitioner",
                "owner_id": practitioner_id,
                "clinic_id": client["clinic_id"],
                "client_id": client["id"],
                "session_id": session["id"],
                "flag_id": flag["id"],
                "step_key": None,
                "kind": "alert",
                "title": title[:60],
                "body": flag["reason"][:200],
                "url": f"/clinic/clients/{client['id']}",
                "urgency": "high" if urgent else "normal",
                "due_at": iso(now),
                "expires_at": iso(now + ALERT_VALID),
                "status": "pending",
                "status_reason": None,
                "next_attempt_at": iso(now),
                "created_at": iso(now),
                "channels": None if chosen == ["push"] else json.dumps(chosen),
            }
            for practitioner_id, chosen in sorted(recipients.items())
        ],
    )
    return len(recipients)
