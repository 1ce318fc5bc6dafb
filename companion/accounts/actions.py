"""What users do to accounts, shared by the API and the pages."""

from datetime import datetime

import sqlite_utils

from companion import audit, auth
from companion.accounts.clinics import create_clinic, create_practitioner
from companion.accounts.invites import redeem_invite
from companion.db import one, write
from companion.errors import ApiError


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


def sign_in_with_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Redeem an invite and sign this browser in as its client; return the client row."""
    with write(db):
        row = redeem_invite(db, token, now)
        auth.start_session("client", row, "invite_redeemed")
    return row
