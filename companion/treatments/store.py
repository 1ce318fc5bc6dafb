"""Treatment sessions: recording, editing and deleting one, which plans its reminders."""

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from companion.db import iso, one, parse_iso, rows, write
from companion.errors import NotFound
from companion.reminders import outbox as schedule
from companion.reminders import protocol_store
from companion.treatments.models import DEVICES  # noqa: F401 (read as treatments.DEVICES)


def get_session(db: sqlite_utils.Database, session_id: int, clinic_id: int) -> dict:
    row = one(
        db,
        "SELECT * FROM treatment_sessions WHERE id = :id AND clinic_id = :clinic_id",
        {"id": session_id, "clinic_id": clinic_id},
    )
    if row is None:
        raise NotFound("session")
    return row


def session_dict(row: dict, tz: str, schedule_rows: list[dict] | None = None) -> dict:
    performed = parse_iso(row["performed_at"]).astimezone(ZoneInfo(tz))
    out = {
        "id": row["id"],
        "client_id": row["client_id"],
        "clinic_id": row["clinic_id"],
        "practitioner_id": row["practitioner_id"],
        "performed_at": performed.isoformat(),
        "areas": json.loads(row["areas"]),
        "needle_depth_mm": row["needle_depth_mm"],
        "device": row["device"],
        "products": json.loads(row["products"]),
        "notes": row["notes"],
        "protocol_id": row["protocol_id"],
        "protocol_version": row.get("protocol_version"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if schedule_rows is not None:
        out["schedule"] = schedule_rows
    return out


def create_session(
    db: sqlite_utils.Database, client: dict, practitioner_id: int, data: dict, now: datetime
) -> dict:
    """Record a session and plan its reminders in the same transaction."""
    with write(db):
        protocol = protocol_store.current_protocol(db, client["clinic_id"])
        session_id = (
            db["treatment_sessions"]
            .insert(
                {
                    "clinic_id": client["clinic_id"],
                    "client_id": client["id"],
                    "practitioner_id": practitioner_id,
                    "protocol_id": protocol["id"],
                    "performed_at": iso(data["performed_at"]),
                    "areas": json.dumps(data["areas"]),
                    "needle_depth_mm": data["needle_depth_mm"],
                    "device": data["device"],
                    "products": json.dumps(data.get("products") or []),
                    "notes": data.get("notes") or "",
                    "created_at": iso(now),
                    "updated_at": iso(now),
                }
            )
            .last_pk
        )
        session = load_session(db, session_id)
        schedule.plan_session(db, session, client, protocol, now)
    return session


def update_session(
    db: sqlite_utils.Database, session: dict, client: dict, data: dict, now: datetime
) -> dict:
    """Edit a session; a new time re-plans the reminders not yet sent."""
    changes: dict = {}
    if "performed_at" in data:
        changes["performed_at"] = iso(data["performed_at"])
    for key in ("areas", "products"):
        if key in data:
            changes[key] = json.dumps(data[key] or [])
    for key in ("needle_depth_mm", "device", "notes"):
        if key in data:
            changes[key] = data[key] if data[key] is not None else ""
    if not changes:
        return session
    changes["updated_at"] = iso(now)
    with write(db):
        db["treatment_sessions"].update(session["id"], changes)
        updated = load_session(db, session["id"])
        if updated["performed_at"] != session["performed_at"]:
            protocol = protocol_store.protocol_by_id(db, updated["protocol_id"])
            schedule.replan_session(db, updated, client, protocol, now, "session time changed")
    return updated


def delete_session(db: sqlite_utils.Database, session: dict, now: datetime) -> None:
    """Delete a session; its reminders not yet sent are cancelled first, then removed with it."""
    with write(db):
        schedule.cancel_pending(db, "session deleted", session_id=session["id"])
        db.conn.execute("DELETE FROM treatment_sessions WHERE id = :id", {"id": session["id"]})


def load_session(db: sqlite_utils.Database, session_id: int) -> dict:
    return one(
        db,
        "SELECT s.*, p.version AS protocol_version FROM treatment_sessions s"
        " LEFT JOIN protocols p ON p.id = s.protocol_id WHERE s.id = :id",
        {"id": session_id},
    )


def list_sessions(db: sqlite_utils.Database, client_id: int) -> list[dict]:
    return rows(
        db,
        "SELECT s.*, p.version AS protocol_version FROM treatment_sessions s"
        " LEFT JOIN protocols p ON p.id = s.protocol_id WHERE s.client_id = :client_id"
        " ORDER BY s.performed_at DESC",
        {"client_id": client_id},
    )


def latest_session(db: sqlite_utils.Database, client_id: int) -> dict | None:
    return one(
        db,
        "SELECT s.*, p.version AS protocol_version FROM treatment_sessions s"
        " LEFT JOIN protocols p ON p.id = s.protocol_id WHERE s.client_id = :client_id"
        " ORDER BY s.performed_at DESC LIMIT 1",
        {"client_id": client_id},
    )
