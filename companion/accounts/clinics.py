"""Clinics and their practitioners: the records and their rules."""

from datetime import datetime

import sqlite_utils

from companion.clinical import SEVERITIES_DESC
from companion.credentials import hash_password
from companion.db import iso, one, rows
from companion.errors import Conflict, NotFound
from companion.reminders import protocol_store


def create_clinic(
    db: sqlite_utils.Database, name: str, timezone: str, phone: str | None, now: datetime
) -> int:
    """Create a clinic with the default aftercare protocol."""
    clinic_id = (
        db["clinics"]
        .insert({"name": name, "phone": phone, "timezone": timezone, "created_at": iso(now)})
        .last_pk
    )
    protocol_store.save_protocol(db, clinic_id, None, None, now)
    return clinic_id


def is_set_up(db: sqlite_utils.Database) -> bool:
    """Tell whether this installation has its first clinic."""
    return one(db, "SELECT id FROM clinics LIMIT 1") is not None


def find_clinic_by_name(db: sqlite_utils.Database, name: str) -> dict | None:
    return one(db, "SELECT * FROM clinics WHERE name = :name", {"name": name})


def get_clinic(db: sqlite_utils.Database, clinic_id: int) -> dict:
    return one(db, "SELECT * FROM clinics WHERE id = :id", {"id": clinic_id})


def clinic_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "timezone": row["timezone"],
    }


def create_practitioner(
    db: sqlite_utils.Database,
    clinic_id: int,
    email: str,
    name: str,
    password: str,
    now: datetime,
    role: str | None = None,
) -> int:
    """Add a practitioner to a clinic; the email must be new. Without a role given, the
    clinic's first practitioner (or the first since it lost its last owner) is its owner."""
    email = email.strip().lower()
    if one(db, "SELECT id FROM practitioners WHERE email = :email", {"email": email}):
        raise Conflict(
            "A practitioner with this email already exists.",
            "email_taken",
            {"email": "Already in use."},
        )
    if role is None:
        role = "practitioner" if active_owners(db, clinic_id) else "owner"
    return (
        db["practitioners"]
        .insert(
            {
                "clinic_id": clinic_id,
                "email": email,
                "name": name,
                "password_hash": hash_password(password),
                "role": role,
                "created_at": iso(now),
            }
        )
        .last_pk
    )


def find_practitioner_by_email(db: sqlite_utils.Database, email: str) -> dict | None:
    return one(
        db, "SELECT * FROM practitioners WHERE email = :email", {"email": email.strip().lower()}
    )


def reset_password(db: sqlite_utils.Database, practitioner_id: int, password: str) -> None:
    """Give a practitioner a new password and make them active again."""
    db["practitioners"].update(
        practitioner_id, {"password_hash": hash_password(password), "active": 1}
    )


def get_practitioner(
    db: sqlite_utils.Database, practitioner_id: int, clinic_id: int | None = None
) -> dict:
    """Return a practitioner (of this clinic, when given), or raise NotFound."""
    row = one(
        db,
        "SELECT * FROM practitioners WHERE id = :id"
        " AND (:clinic_id IS NULL OR clinic_id = :clinic_id)",
        {"id": practitioner_id, "clinic_id": clinic_id},
    )
    if row is None:
        raise NotFound("practitioner")
    return row


def list_practitioners(db: sqlite_utils.Database, clinic_id: int) -> list[dict]:
    return rows(
        db,
        "SELECT * FROM practitioners WHERE clinic_id = :clinic_id ORDER BY name",
        {"clinic_id": clinic_id},
    )


def update_practitioner(db: sqlite_utils.Database, practitioner_id: int, values: dict) -> dict:
    """Change a practitioner's own settings: name, and which flag severities alert them."""
    changes = {}
    if "name" in values:
        changes["name"] = values["name"]
    if values.get("alert_severities") is not None:
        wanted = values["alert_severities"]
        changes["alert_severities"] = ",".join(s for s in SEVERITIES_DESC if s in wanted)
    if changes:
        db["practitioners"].update(practitioner_id, changes)
    return get_practitioner(db, practitioner_id)


def active_owners(db: sqlite_utils.Database, clinic_id: int) -> int:
    """Count the clinic's active owners."""
    return one(
        db,
        "SELECT count(*) AS n FROM practitioners WHERE clinic_id = :clinic_id"
        " AND role = 'owner' AND active = 1",
        {"clinic_id": clinic_id},
    )["n"]


def _keep_an_owner(db: sqlite_utils.Database, row: dict) -> None:
    """Refuse a change that would leave the clinic without an active owner."""
    if row["role"] == "owner" and row["active"] and active_owners(db, row["clinic_id"]) <= 1:
        raise Conflict(
            "A clinic keeps at least one active owner: make someone else an owner first.",
            "last_owner",
        )


def disable_practitioner(db: sqlite_utils.Database, practitioner_id: int, by_id: int) -> None:
    """Disable a practitioner (never the one asking, never the last active owner); their
    sign-ins, devices and queued alerts are ended by the caller."""
    # The clinic's only owner asking is told about the owner first (the README's
    # 409 last_owner); with another owner, disabling yourself is still refused.
    _keep_an_owner(db, get_practitioner(db, practitioner_id))
    if practitioner_id == by_id:
        raise Conflict("You cannot disable your own account.", "cannot_disable_self")
    db["practitioners"].update(practitioner_id, {"active": 0})


def enable_practitioner(db: sqlite_utils.Database, practitioner_id: int) -> None:
    """Let a disabled practitioner sign in again (with the password they had)."""
    db["practitioners"].update(practitioner_id, {"active": 1})


def set_role(db: sqlite_utils.Database, practitioner_id: int, role: str) -> None:
    """Make a practitioner an owner or a practitioner; a clinic keeps one active owner."""
    row = get_practitioner(db, practitioner_id)
    if role != "owner":
        _keep_an_owner(db, row)
    db["practitioners"].update(practitioner_id, {"role": role})


def set_password(db: sqlite_utils.Database, practitioner_id: int, password: str) -> None:
    """Store a practitioner's new password (hashed)."""
    db["practitioners"].update(practitioner_id, {"password_hash": hash_password(password)})


def practitioner_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "clinic_id": row["clinic_id"],
        "email": row["email"],
        "name": row["name"],
        "active": bool(row["active"]),
        "role": row["role"],
        "alert_severities": [s for s in row["alert_severities"].split(",") if s],
        "two_factor": bool(row.get("totp_secret")),
    }
