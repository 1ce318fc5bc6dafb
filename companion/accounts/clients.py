"""A clinic's clients: their details, quiet hours and time zone."""

from datetime import datetime

import sqlite_utils

from companion.db import iso, one, rows, write
from companion.errors import N_, Invalid, NotFound
from companion.reminders import calendar
from companion.reminders import channels as channel_rules
from companion.reminders import outbox as schedule


def get_client(db: sqlite_utils.Database, client_id: int, clinic_id: int) -> dict:
    """Return a client of this clinic, or raise 404 (another clinic's client does not exist)."""
    row = one(
        db,
        "SELECT * FROM clients WHERE id = :id AND clinic_id = :clinic_id",
        {"id": client_id, "clinic_id": clinic_id},
    )
    if row is None:
        raise NotFound("client")
    return row


def load_client(db: sqlite_utils.Database, client_id: int) -> dict | None:
    return one(db, "SELECT * FROM clients WHERE id = :id", {"id": client_id})


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
        "channels": channel_rules.decode(row["channels"]),
        "language": row["language"],
        "created_at": row["created_at"],
    }


def _check_channels(channels: list[str] | None, email: str | None, data: dict) -> None:
    """Email chosen as a channel needs an address (422, on the field the request changed)."""
    if channels is not None and "email" in channels and not email:
        field = "channels" if "channels" in data else "email"
        raise Invalid({field: N_("Email is one of this client's channels: give an email address.")})


def create_client(db: sqlite_utils.Database, clinic: dict, data: dict, now: datetime) -> dict:
    _check_channels(data.get("channels"), data.get("email"), data)
    quiet = data.get("quiet_hours") or {"start": clinic["quiet_start"], "end": clinic["quiet_end"]}
    client_id = (
        db["clients"]
        .insert(
            {
                "clinic_id": clinic["id"],
                "name": data["name"],
                "email": data.get("email"),
                "phone": data.get("phone"),
                "timezone": data.get("timezone") or clinic["timezone"],
                "quiet_start": quiet["start"],
                "quiet_end": quiet["end"],
                "discreet": int(data.get("discreet", False)),
                "channels": channel_rules.encode(data.get("channels")),
                "language": data.get("language") or clinic["language"],
                "calendar_token": calendar.new_token(),
                "created_at": iso(now),
                "updated_at": iso(now),
            }
        )
        .last_pk
    )
    return load_client(db, client_id)


def update_client(db: sqlite_utils.Database, client: dict, data: dict, now: datetime) -> dict:
    """Change a client's details; a new time zone or quiet hours re-plans future reminders,
    a new language rewrites the unsent ones in it."""
    changes = {k: data[k] for k in ("name", "email", "phone") if k in data}
    if data.get("timezone"):  # a PATCH refuses null and "" (contract/fields.py TimeZone)
        changes["timezone"] = data["timezone"]
    if "discreet" in data:
        changes["discreet"] = int(data["discreet"])
    if "channels" in data:
        changes["channels"] = channel_rules.encode(data["channels"])
    if data.get("language"):
        changes["language"] = data["language"]
    if {"channels", "email"} & changes.keys():
        _check_channels(
            channel_rules.decode(changes.get("channels", client["channels"])),
            changes.get("email", client["email"]),
            data,
        )
    if "quiet_hours" in data:
        changes["quiet_start"] = data["quiet_hours"]["start"]
        changes["quiet_end"] = data["quiet_hours"]["end"]
    if not changes:
        return client
    changes["updated_at"] = iso(now)
    with write(db):
        db["clients"].update(client["id"], changes)
        updated = load_client(db, client["id"])
        if {"timezone", "quiet_start", "quiet_end"} & changes.keys():
            schedule.replan_client(db, updated, now)
        if changes.get("language", client["language"]) != client["language"]:
            schedule.retext_client(db, updated)  # unsent reminders in the new language
    return updated


def list_clients(
    db: sqlite_utils.Database,
    clinic_id: int,
    query: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Return a clinic's clients by name, each with the time of their latest session."""
    pattern = None
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    return rows(
        db,
        "SELECT c.*, (SELECT max(performed_at) FROM treatment_sessions s"
        " WHERE s.client_id = c.id) AS last_session_at FROM clients c"
        " WHERE c.clinic_id = :clinic_id AND (:pattern IS NULL OR c.name LIKE :pattern ESCAPE '\\')"
        " ORDER BY c.name COLLATE NOCASE, c.id LIMIT :limit OFFSET :offset",
        {"clinic_id": clinic_id, "pattern": pattern, "limit": limit, "offset": offset},
    )
