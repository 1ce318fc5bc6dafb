"""The review queue, flag actions, client timeline data, export and erasure (queries + rules)."""

import csv
import io
import json
import shutil
from datetime import datetime

import sqlite_utils

from companion.accounts import store as clinic
from companion.checkins import store as checkins
from companion.db import iso, one, parse_iso, rows, write
from companion.errors import ApiError, not_found
from companion.reminders import outbox as schedule

SEVERITY_ORDER = "CASE f.severity WHEN 'urgent' THEN 0 WHEN 'review' THEN 1 ELSE 2 END"
ACTIVE = ("open", "acknowledged")


def queue(
    db: sqlite_utils.Database,
    clinic_id: int,
    *,
    statuses=ACTIVE,
    severity: str | None = None,
    practitioner_id: int | None = None,
    client_id: int | None = None,
    limit: int = 200,
) -> list[dict]:
    """Return flags for the queue: urgent first, then oldest first, with what a row shows."""
    sql = f"""
        SELECT f.*, c.name AS client_name, c.timezone, s.performed_at, s.practitioner_id,
          (SELECT json_object('redness', ch.redness, 'swelling', ch.swelling, 'taken_at', ch.taken_at)
             FROM checkins ch WHERE ch.session_id = f.session_id
             ORDER BY ch.taken_at DESC LIMIT 1) AS latest,
          (SELECT p.id FROM checkins ch JOIN photos p ON p.checkin_id = ch.id
             WHERE ch.session_id = f.session_id ORDER BY ch.taken_at DESC, p.created_at DESC
             LIMIT 1) AS photo_id
        FROM flags f JOIN clients c ON c.id = f.client_id
        LEFT JOIN treatment_sessions s ON s.id = f.session_id
        WHERE f.clinic_id = ? AND f.status IN ({",".join("?" * len(statuses))})"""
    params: list = [clinic_id, *statuses]
    if severity:
        sql += " AND f.severity = ?"
        params.append(severity)
    if practitioner_id:
        sql += " AND s.practitioner_id = ?"
        params.append(practitioner_id)
    if client_id:
        sql += " AND f.client_id = ?"
        params.append(client_id)
    sql += f" ORDER BY {SEVERITY_ORDER}, f.opened_at, f.id LIMIT ?"
    params.append(limit)
    return [flag_dict(r) for r in rows(db, sql, params)]


def counts(db: sqlite_utils.Database, clinic_id: int) -> dict:
    """Count active flags per severity (for the header, the title and the badge)."""
    found = {
        r["severity"]: r["n"]
        for r in rows(
            db,
            "SELECT severity, count(*) AS n FROM flags WHERE clinic_id = ? AND status IN (?, ?)"
            " GROUP BY severity",
            (clinic_id, *ACTIVE),
        )
    }
    return {s: found.get(s, 0) for s in ("urgent", "review", "info")}


def flag_dict(row: dict) -> dict:
    out = {
        k: row.get(k)
        for k in (
            "id",
            "rule",
            "severity",
            "status",
            "client_id",
            "session_id",
            "reason",
            "opened_at",
            "updated_at",
            "acknowledged_at",
            "called_at",
            "resolved_at",
            "note",
            "checkin_id",
        )
    }
    if "client_name" in row:
        out["client_name"] = row["client_name"]
    if row.get("performed_at"):
        out["hours_since_session"] = None
        out["performed_at"] = row["performed_at"]
    if "latest" in row:
        out["latest"] = json.loads(row["latest"]) if row["latest"] else None
        out["photo_url"] = f"/api/photos/{row['photo_id']}" if row.get("photo_id") else None
    return out


def get_flag(db: sqlite_utils.Database, flag_id: int, clinic_id: int) -> dict:
    row = one(
        db,
        "SELECT f.*, c.name AS client_name FROM flags f JOIN clients c"
        " ON c.id = f.client_id WHERE f.id = ? AND f.clinic_id = ?",
        (flag_id, clinic_id),
    )
    if row is None:
        raise not_found("flag")
    return row


def flag_events(db: sqlite_utils.Database, flag_id: int) -> list[dict]:
    return rows(
        db,
        "SELECT at, actor_kind, actor_id, action, severity, reason, note FROM flag_events"
        " WHERE flag_id = ? ORDER BY id",
        (flag_id,),
    )


def act(
    db: sqlite_utils.Database,
    flag: dict,
    action: str,
    practitioner_id: int,
    note: str | None,
    now: datetime,
) -> dict:
    """Acknowledge, resolve, or record a call on a flag; every action is a flag event."""
    if flag["status"] == "resolved":
        raise ApiError(409, "already_resolved", "This flag is already resolved.")
    stamp = iso(now)
    with write(db):
        if action == "acknowledge":
            db.conn.execute(
                "UPDATE flags SET status = 'acknowledged', acknowledged_at = ?,"
                " acknowledged_by = ?, updated_at = ? WHERE id = ?",
                (stamp, practitioner_id, stamp, flag["id"]),
            )
        elif action == "called":
            db.conn.execute(
                "UPDATE flags SET called_at = ?, updated_at = ?,"
                " status = 'acknowledged', acknowledged_at = coalesce(acknowledged_at, ?),"
                " acknowledged_by = coalesce(acknowledged_by, ?) WHERE id = ?",
                (stamp, stamp, stamp, practitioner_id, flag["id"]),
            )
        elif action == "resolve":
            db.conn.execute(
                "UPDATE flags SET status = 'resolved', resolved_at = ?, resolved_by = ?,"
                " note = ?, updated_at = ? WHERE id = ?",
                (stamp, practitioner_id, note, stamp, flag["id"]),
            )
        db.conn.execute(
            "INSERT INTO flag_events (flag_id, at, actor_kind, actor_id, action, note)"
            " VALUES (?, ?, 'practitioner', ?, ?, ?)",
            (flag["id"], stamp, practitioner_id, action, note),
        )
    return one(
        db,
        "SELECT f.*, c.name AS client_name FROM flags f JOIN clients c"
        " ON c.id = f.client_id WHERE f.id = ?",
        (flag["id"],),
    )


# A client's sessions as a subquery: the timeline reads each table once for all of them.
CLIENT_SESSIONS = "SELECT id FROM treatment_sessions WHERE client_id = ?"


def _by_session(found) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in found:
        out.setdefault(r["session_id"], []).append(r)
    return out


def timeline(db: sqlite_utils.Database, client: dict) -> dict:
    """Gather a client's whole record: sessions with reminders, check-ins, flags; devices."""
    # A fixed handful of queries, however many sessions and check-ins the client has.
    cid = client["id"]
    plans = schedule.client_schedules(db, cid)
    problems: dict[int, list[dict]] = {}
    for d in rows(
        db,
        "SELECT notification_id, outcome, status_code, reason FROM deliveries"
        " WHERE notification_id IN (SELECT id FROM notifications WHERE session_id IN"
        f" ({CLIENT_SESSIONS}) AND step_key IS NOT NULL) AND outcome != 'delivered'"
        " ORDER BY id",
        (cid,),
    ):
        problems.setdefault(d["notification_id"], []).append(d)
    found = _by_session(
        checkins.checkin_dicts(
            db,
            rows(
                db,
                f"SELECT * FROM checkins WHERE session_id IN ({CLIENT_SESSIONS}) ORDER BY taken_at",
                (cid,),
            ),
        )
    )
    events: dict[int, list[dict]] = {}
    for e in rows(
        db,
        "SELECT flag_id, at, actor_kind, actor_id, action, severity, reason, note"
        " FROM flag_events WHERE flag_id IN (SELECT id FROM flags WHERE session_id IN"
        f" ({CLIENT_SESSIONS})) ORDER BY id",
        (cid,),
    ):
        events.setdefault(e.pop("flag_id"), []).append(e)
    flags = _by_session(
        dict(flag_dict(f), events=events.get(f["id"], []))
        for f in rows(
            db,
            f"SELECT * FROM flags WHERE session_id IN ({CLIENT_SESSIONS}) ORDER BY opened_at",
            (cid,),
        )
    )
    sessions = []
    for s in clinic.list_sessions(db, cid):
        plan = plans.get(s["id"], [])
        for n in plan:
            n["problems"] = problems.get(n["id"], [])
        sessions.append(
            {
                "session": clinic.session_dict(s, client["timezone"]),
                "raw": s,
                "schedule": plan,
                "checkins": found.get(s["id"], []),
                "flags": flags.get(s["id"], []),
            }
        )
    devices = rows(
        db,
        "SELECT id, endpoint, user_agent, created_at, last_success_at, gone_at"
        " FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = ?"
        " ORDER BY id",
        (cid,),
    )
    return {"sessions": sessions, "devices": devices}


SCORE_COLUMNS = (
    "id",
    "client_id",
    "session_id",
    "taken_at",
    "received_at",
    "day",
    "redness",
    "swelling",
    "pain",
)
CHECKIN_COLUMNS = [
    *SCORE_COLUMNS,
    *(f"symptoms.{k}" for k in checkins.SYMPTOMS),
    *(f"warning_signs.{k}" for k in checkins.WARNINGS),
    "note",
    "assessment_status",
    "assessment_flags",
]


def checkin_csv_rows(db: sqlite_utils.Database, where: str, params) -> list[dict]:
    out = []
    for c in checkins.checkin_dicts(
        db, rows(db, f"SELECT * FROM checkins WHERE {where} ORDER BY taken_at, id", params)
    ):
        row = {k: c.get(k) for k in (*SCORE_COLUMNS, "note")}
        row.update({f"symptoms.{k}": c["symptoms"].get(k, False) for k in checkins.SYMPTOMS})
        row.update(
            {f"warning_signs.{k}": c["warning_signs"].get(k, False) for k in checkins.WARNINGS}
        )
        row["assessment_status"] = c["assessment"]["status"]
        row["assessment_flags"] = " ".join(f["rule"] for f in c["assessment"]["flags"])
        out.append(row)
    return out


def to_csv(columns: list[str], records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        # Neutralise spreadsheet formulas in free text (CSV injection).
        writer.writerow(
            {
                k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@\t\r" else v)
                for k, v in r.items()
            }
        )
    return buf.getvalue()


FLAG_COLUMNS = [
    "id",
    "client_id",
    "session_id",
    "rule",
    "severity",
    "status",
    "reason",
    "opened_at",
    "acknowledged_at",
    "called_at",
    "resolved_at",
    "note",
]


def client_bundle(db: sqlite_utils.Database, client: dict) -> dict:
    """Everything stored about a client, as one JSON document."""
    cid = client["id"]
    data = timeline(db, client)
    return {
        "exported_at": iso(datetime.now().astimezone()),
        "client": clinic.client_dict(client),
        "sessions": [
            dict(s["session"], schedule=s["schedule"], checkins=s["checkins"], flags=s["flags"])
            for s in data["sessions"]
        ],
        "checkins_without_session": checkins.checkin_dicts(
            db,
            rows(db, "SELECT * FROM checkins WHERE client_id = ? AND session_id IS NULL", (cid,)),
        ),
        "devices": [
            {k: d[k] for k in ("id", "user_agent", "created_at", "last_success_at", "gone_at")}
            for d in data["devices"]
        ],
        "audit": rows(
            db,
            "SELECT at, actor_kind, actor_id, action, detail FROM audit_log"
            " WHERE client_id = ? ORDER BY id",
            (cid,),
        ),
    }


def erase_client(db: sqlite_utils.Database, client: dict, photos_dir: str, now: datetime) -> None:
    """Delete every row and photo about a client; keep only an anonymous record of the erasure."""
    cid = client["id"]
    with write(db):
        schedule.cancel_pending(db, "client erased", client_id=cid)
        db.conn.execute(
            "DELETE FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = ?", (cid,)
        )
        db.conn.execute(
            "DELETE FROM auth_sessions WHERE user_kind = 'client' AND user_id = ?", (cid,)
        )
        db.conn.execute(
            "DELETE FROM notifications WHERE owner_kind = 'client' AND owner_id = ?", (cid,)
        )
        db.conn.execute("DELETE FROM audit_log WHERE client_id = ?", (cid,))
        # Cascades remove invites, sessions, check-ins, photos rows, flags and their events,
        # and practitioner alerts about this client.
        db.conn.execute("DELETE FROM clients WHERE id = ?", (cid,))
    shutil.rmtree(f"{photos_dir}/{cid}", ignore_errors=True)


def parse_day(text: str | None, name: str) -> str | None:
    if not text:
        return None
    try:
        return iso(parse_iso(text if "T" in text else text + "T00:00:00+00:00"))
    except ValueError:
        raise ApiError(
            422, "invalid", "Dates must be ISO 8601, e.g. 2026-05-01.", {name: "Not a date."}
        ) from None
