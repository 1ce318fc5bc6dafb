"""Clinics and their practitioners: the records and their rules."""

from datetime import datetime

import sqlite_utils

from companion.auth import hash_password
from companion.db import iso, one
from companion.errors import ApiError
from companion.reminders import outbox as schedule
from companion.validation import Fields


def create_clinic(
    db: sqlite_utils.Database, name: str, timezone: str, phone: str | None, now: datetime
) -> int:
    """Create a clinic with the default aftercare protocol."""
    cur = db.conn.execute(
        "INSERT INTO clinics (name, phone, timezone, created_at) VALUES (?, ?, ?, ?)",
        (name, phone, timezone, iso(now)),
    )
    schedule.save_protocol(db, cur.lastrowid, None, None, now)
    return cur.lastrowid


def get_clinic(db: sqlite_utils.Database, clinic_id: int) -> dict:
    return one(db, "SELECT * FROM clinics WHERE id = ?", (clinic_id,))


def clinic_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "timezone": row["timezone"],
    }


def create_practitioner(
    db: sqlite_utils.Database, clinic_id: int, email: str, name: str, password: str, now: datetime
) -> int:
    """Add a practitioner to a clinic; the email must be new."""
    email = email.strip().lower()
    if one(db, "SELECT id FROM practitioners WHERE email = ?", (email,)):
        raise ApiError(
            409,
            "email_taken",
            "A practitioner with this email already exists.",
            {"email": "Already in use."},
        )
    return db.conn.execute(
        "INSERT INTO practitioners (clinic_id, email, name, password_hash, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (clinic_id, email, name, hash_password(password), iso(now)),
    ).lastrowid


def practitioner_fields(data: object) -> dict:
    f = Fields(data, {"email", "name", "password"})
    f.email("email")
    f.text("name", max_len=100)
    # A password is kept exactly as typed: stripping it would make it unusable at sign-in.
    password = data.get("password") if isinstance(data, dict) else None
    if not isinstance(password, str) or not password:
        f.errors["password"] = "This field is required."
    elif not 10 <= len(password) <= 200 or "\x00" in password:
        f.errors["password"] = "Use 10 to 200 characters."
    else:
        f.clean["password"] = password
    return f.done()


def practitioner_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "clinic_id": row["clinic_id"],
        "email": row["email"],
        "name": row["name"],
        "active": bool(row["active"]),
        "alert_severities": [s for s in row["alert_severities"].split(",") if s],
    }
