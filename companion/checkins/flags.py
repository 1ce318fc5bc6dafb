"""Flags: apply triage's findings to a session's flags, alert practitioners, and find missed check-ins.

Triage (checkins/triage.py) decides; this module stores what it decided. Alerts are queued
through the outbox (reminders/outbox.py), the one writer of notification rows.
"""

from datetime import datetime, timedelta

import sqlite_utils

from companion.checkins import triage
from companion.db import iso, one, parse_iso, rows, write
from companion.reminders import outbox
from companion.reminders.inbox import APPLIES_SQL


def apply_findings(
    db: sqlite_utils.Database,
    client: dict,
    session: dict,
    checkin_id: str | None,
    findings: list[dict],
    now: datetime,
    *,
    late: bool = False,
) -> list[dict]:
    """Open, escalate or update flags (one open per session and rule); alert on new urgency.

    A late check-in (one taken before a check-in already stored) opens and escalates but
    never rewrites an open flag's reason: the newer check-in's words describe the present.
    """
    open_flags = rows(
        db,
        "SELECT * FROM flags WHERE session_id = :session_id AND status != 'resolved'",
        {"session_id": session["id"]},
    )
    stamp = iso(now)
    changed = []
    for action in triage.reconcile(open_flags, findings):
        if late and action["action"] == "update":
            continue
        values = {
            "clinic_id": client["clinic_id"],
            "client_id": client["id"],
            "session_id": session["id"],
            "checkin_id": checkin_id,
            "rule": action["rule"],
            "severity": action["severity"],
            "reason": action["reason"],
            "action": action["action"],
            "now": stamp,
        }
        if action["action"] == "open":
            values["id"] = db.conn.execute(
                "INSERT INTO flags (clinic_id, client_id, session_id, checkin_id, rule, severity,"
                " reason, opened_at, updated_at) VALUES (:clinic_id, :client_id, :session_id,"
                " :checkin_id, :rule, :severity, :reason, :now, :now)",
                values,
            ).lastrowid
        else:
            values["id"] = action["id"]
            db.conn.execute(
                "UPDATE flags SET severity = :severity, reason = :reason, updated_at = :now,"
                " checkin_id = coalesce(:checkin_id, checkin_id) WHERE id = :id",
                values,
            )
        db.conn.execute(
            "INSERT INTO flag_events (flag_id, at, actor_kind, action, severity, reason)"
            " VALUES (:id, :now, 'triage', :action, :severity, :reason)",
            values,
        )
        changed.append(dict(action, id=values["id"]))
    for flag in changed:
        if flag["action"] in ("open", "escalate"):
            alert_practitioners(db, client, session, flag, now)
    return changed


def all_resolved_since(db: sqlite_utils.Database, session_id: int, since: str) -> bool:
    """Whether the clinic has resolved every flag of a session, the last of them at or after
    `since` (a check-in's arrival): what the client's home page then says instead of the
    check-in's own "contact your clinic now" or "your clinic will look at this today"."""
    found = one(
        db,
        "SELECT count(*) AS flags, sum(status != 'resolved') AS waiting,"
        " max(resolved_at) AS last FROM flags WHERE session_id = :session_id",
        {"session_id": session_id},
    )
    return bool(found["flags"]) and not found["waiting"] and found["last"] >= since


def alert_practitioners(
    db: sqlite_utils.Database, client: dict, session: dict, flag: dict, now: datetime
) -> int:
    """Queue a push to each active practitioner of the clinic who wants this severity; an
    urgent flag also goes by email to every active owner when the clinic's email_alerts is on."""
    found = rows(
        db,
        "SELECT p.id, p.alert_severities, p.role, c.email_alerts FROM practitioners p"
        " JOIN clinics c ON c.id = p.clinic_id WHERE p.clinic_id = :clinic_id AND p.active = 1",
        {"clinic_id": client["clinic_id"]},
    )
    wanted = [p["id"] for p in found if flag["severity"] in p["alert_severities"].split(",")]
    by_email = {
        p["id"]
        for p in found
        if flag["severity"] == "urgent" and p["email_alerts"] and p["role"] == "owner"
    }
    return outbox.queue_alerts(db, client, session, flag, wanted, now, by_email)


def check_missed(
    db: sqlite_utils.Database, now: datetime, window: timedelta = timedelta(hours=12)
) -> int:
    """N3: flag sessions whose last two scheduled check-ins passed their window unanswered."""
    last = one(db, "SELECT at FROM heartbeats WHERE name = 'n3'")
    start = parse_iso(last["at"]) if last else now - timedelta(days=2)
    if now - start < timedelta(minutes=1):
        return 0
    # Only sessions with a check-in step whose answer window closed since the last run.
    sessions = rows(
        db,
        "SELECT DISTINCT session_id FROM notifications WHERE kind = 'checkin'"
        " AND due_at > :since AND due_at <= :until AND session_id IS NOT NULL",
        {"since": iso(start - window), "until": iso(now - window)},
    )
    opened = 0
    with write(db):
        for s in sessions:
            ids = {"session_id": s["session_id"]}
            session = one(db, "SELECT * FROM treatment_sessions WHERE id = :session_id", ids)
            if session is None:
                continue
            due = [
                parse_iso(r["due_at"])
                for r in rows(
                    db,
                    # A check-in the client was asked, by push, email or in the app's
                    # inbox (a row skipped for want of a device still showed there).
                    "SELECT due_at FROM notifications WHERE session_id = :session_id"
                    f" AND kind = 'checkin' AND {APPLIES_SQL} ORDER BY due_at",
                    ids,
                )
            ]
            taken = [
                parse_iso(r["taken_at"])
                for r in rows(
                    db, "SELECT taken_at FROM checkins WHERE session_id = :session_id", ids
                )
            ]
            finding = triage.missed_checkins(due, taken, now, window)
            if finding:
                client = one(
                    db, "SELECT * FROM clients WHERE id = :id", {"id": session["client_id"]}
                )
                opened += len(apply_findings(db, client, session, None, [finding], now))
        db.conn.execute(
            "INSERT INTO heartbeats (name, pid, at) VALUES ('n3', NULL, :now)"
            " ON CONFLICT(name) DO UPDATE SET at = excluded.at",
            {"now": iso(now)},
        )
    return opened
