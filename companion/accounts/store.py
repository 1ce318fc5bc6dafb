"""Clinics, practitioners, clients and invites: the records and their rules."""

import secrets
from datetime import datetime, timedelta

import sqlite_utils
from flask import current_app

from companion import audit, auth
from companion.auth import hash_password, hash_token
from companion.db import iso, one, parse_iso, rows, write
from companion.errors import ApiError, not_found
from companion.reminders import outbox as schedule

# Treatment sessions moved to companion.treatments.store; these names stay here only until
# reminders/inbox.py, review/store.py, tests/test_dispatch.py and benchmarks import them there.
from companion.treatments.store import (  # noqa: F401
    DEVICES,
    create_session,
    latest_session,
    list_sessions,
    load_session,
    session_dict,
)
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


def set_up(db: sqlite_utils.Database, values: dict, person: dict, now: datetime) -> None:
    """First run: the clinic and its first practitioner, who is signed in on this request."""
    with write(db):
        clinic_id = create_clinic(
            db, values["clinic_name"], values["timezone"], values.get("clinic_phone"), now
        )
        pid = create_practitioner(
            db, clinic_id, person["email"], person["name"], person["password"], now
        )
        auth.start_session(
            "practitioner", one(db, "SELECT * FROM practitioners WHERE id = ?", (pid,)), "setup"
        )


def add_colleague(db: sqlite_utils.Database, clinic_id: int, values: dict, now: datetime) -> int:
    """Add a practitioner from validated practitioner_fields(); record who added them."""
    pid = create_practitioner(
        db, clinic_id, values["email"], values["name"], values["password"], now
    )
    audit.record("practitioner_added", detail=f"practitioner={pid}")
    return pid


def disable_colleague(db: sqlite_utils.Database, practitioner_id: int, by_id: int) -> None:
    """Disable a practitioner of the caller's clinic (never the caller); their sessions end."""
    if practitioner_id == by_id:
        raise ApiError(409, "cannot_disable_self", "You cannot disable your own account.")
    db.conn.execute("UPDATE practitioners SET active = 0 WHERE id = ?", (practitioner_id,))
    auth.revoke_all("practitioner", practitioner_id)
    audit.record("practitioner_disabled", detail=f"practitioner={practitioner_id}")


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


def get_clinic(db: sqlite_utils.Database, clinic_id: int) -> dict:
    return one(db, "SELECT * FROM clinics WHERE id = ?", (clinic_id,))


def clinic_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "timezone": row["timezone"],
    }


# Clients ---------------------------------------------------------------------------------

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


# Invites ---------------------------------------------------------------------------------


def create_invite(
    db: sqlite_utils.Database, client: dict, practitioner_id: int, now: datetime
) -> tuple[str, datetime]:
    """Issue a one-time invite for a client, revoking any earlier one."""
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(days=current_app.config["INVITE_DAYS"])
    with write(db):
        db.conn.execute(
            "UPDATE invites SET revoked_at = ? WHERE client_id = ? AND used_at IS NULL"
            " AND revoked_at IS NULL",
            (iso(now), client["id"]),
        )
        db.conn.execute(
            "INSERT INTO invites (client_id, token_hash, created_by, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (client["id"], hash_token(token), practitioner_id, iso(now), iso(expires)),
        )
    return token, expires


def redeem_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Use an invite once; return its client or raise why it cannot be used."""
    invite = one(db, "SELECT * FROM invites WHERE token_hash = ?", (hash_token(token),))
    if invite is None:
        raise ApiError(404, "invite_unknown", "This invite link is not valid.")
    if invite["revoked_at"]:
        raise ApiError(
            410,
            "invite_revoked",
            "This invite was replaced by a newer one. Ask your clinic for a new link.",
        )
    if invite["used_at"]:
        raise ApiError(
            410, "invite_used", "This invite was already used. Ask your clinic for a new link."
        )
    if parse_iso(invite["expires_at"]) <= now:
        raise ApiError(
            410, "invite_expired", "This invite has expired. Ask your clinic for a new link."
        )
    # The WHERE makes a double tap race-free: only one redeem can flip used_at.
    cur = db.conn.execute(
        "UPDATE invites SET used_at = ? WHERE id = ? AND used_at IS NULL", (iso(now), invite["id"])
    )
    if cur.rowcount != 1:
        raise ApiError(
            410, "invite_used", "This invite was already used. Ask your clinic for a new link."
        )
    return one(db, "SELECT * FROM clients WHERE id = ?", (invite["client_id"],))


def sign_in_with_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Redeem an invite and sign this browser in as its client; return the client row."""
    with write(db):
        row = redeem_invite(db, token, now)
        auth.start_session("client", row, "invite_redeemed")
    return row
