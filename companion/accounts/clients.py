"""A clinic's clients: their details, quiet hours and time zone."""

from datetime import datetime

import sqlite_utils

from companion.db import iso, one, rows, write
from companion.errors import not_found
from companion.reminders import outbox as schedule
from companion.validation import Fields

CLIENT_FIELDS = {"name", "email", "phone", "timezone", "quiet_hours", "discreet"}


def client_fields(data: object, partial: bool = False) -> dict:
    f = Fields(data, CLIENT_FIELDS, partial=partial)
    f.text("name", max_len=100)
    f.email("email", required=False)
    f.phone("phone")
    f.timezone("timezone")
    if partial and isinstance(data, dict) and "timezone" in data and data["timezone"] is None:
        f.errors["timezone"] = "Give an IANA time zone such as Europe/London."
    f.boolean("discreet")
    quiet = data.get("quiet_hours") if isinstance(data, dict) else None
    if quiet is not None and not isinstance(quiet, dict):
        f.errors["quiet_hours"] = 'Must be an object like {"start": "21:00", "end": "08:00"}.'
    elif quiet is not None:
        q = Fields(quiet, {"start", "end"})
        q.clock("start", required=True)
        q.clock("end", required=True)
        f.errors.update({f"quiet_hours.{k}": v for k, v in q.errors.items()})
        if not q.errors:
            f.clean["quiet_hours"] = q.clean
    return f.done()


def get_client(db: sqlite_utils.Database, client_id: int, clinic_id: int) -> dict:
    """Return a client of this clinic, or raise 404 (another clinic's client does not exist)."""
    row = one(db, "SELECT * FROM clients WHERE id = ? AND clinic_id = ?", (client_id, clinic_id))
    if row is None:
        raise not_found("client")
    return row


def client_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "clinic_id": row["clinic_id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "timezone": row["timezone"],
        "quiet_hours": {"start": row["quiet_start"], "end": row["quiet_end"]},
        "discreet": bool(row["discreet"]),
        "created_at": row["created_at"],
    }


def create_client(db: sqlite_utils.Database, clinic: dict, data: dict, now: datetime) -> dict:
    quiet = data.get("quiet_hours") or {"start": "21:00", "end": "08:00"}
    cur = db.conn.execute(
        "INSERT INTO clients (clinic_id, name, email, phone, timezone, quiet_start, quiet_end,"
        " discreet, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            clinic["id"],
            data["name"],
            data.get("email"),
            data.get("phone"),
            data.get("timezone") or clinic["timezone"],
            quiet["start"],
            quiet["end"],
            int(data.get("discreet", False)),
            iso(now),
            iso(now),
        ),
    )
    return one(db, "SELECT * FROM clients WHERE id = ?", (cur.lastrowid,))


def update_client(db: sqlite_utils.Database, client: dict, data: dict, now: datetime) -> dict:
    """Change a client's details; a new time zone or quiet hours re-plans future reminders."""
    changes = {k: data[k] for k in ("name", "email", "phone") if k in data}
    if data.get("timezone"):  # null keeps the current zone
        changes["timezone"] = data["timezone"]
    if "discreet" in data:
        changes["discreet"] = int(data["discreet"])
    if "quiet_hours" in data:
        changes["quiet_start"] = data["quiet_hours"]["start"]
        changes["quiet_end"] = data["quiet_hours"]["end"]
    if not changes:
        return client
    changes["updated_at"] = iso(now)
    sets = ", ".join(f"{k} = ?" for k in changes)
    with write(db):
        db.conn.execute(
            f"UPDATE clients SET {sets} WHERE id = ?", (*changes.values(), client["id"])
        )
        updated = one(db, "SELECT * FROM clients WHERE id = ?", (client["id"],))
        if {"timezone", "quiet_start", "quiet_end"} & changes.keys():
            schedule.replan_client(db, updated, now)
    return updated


def list_clients(
    db: sqlite_utils.Database,
    clinic_id: int,
    query: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    sql = (
        "SELECT c.*, (SELECT max(performed_at) FROM treatment_sessions s"
        " WHERE s.client_id = c.id) AS last_session_at FROM clients c WHERE c.clinic_id = ?"
    )
    params: list = [clinic_id]
    if query:
        sql += " AND c.name LIKE ? ESCAPE '\\'"
        params.append(
            "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
    sql += " ORDER BY c.name COLLATE NOCASE, c.id LIMIT ? OFFSET ?"
    return rows(db, sql, (*params, limit, offset))
