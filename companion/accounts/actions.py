"""What users do to accounts, shared by the API and the pages.

Each action writes in one transaction and records itself in the audit log once, for the
actor given (the signed-in User); signing in is done here too, on the current request.
"""

from datetime import datetime

import sqlite_utils

from companion import audit, auth
from companion.accounts import clients, clinics, invites
from companion.auth import User
from companion.db import write
from companion.errors import Conflict


def set_up(db: sqlite_utils.Database, values: dict, person: dict, now: datetime) -> dict:
    """First run: create the clinic and its first practitioner, and sign them in."""
    with write(db):
        if clinics.is_set_up(db):
            raise Conflict("This installation already has a clinic.", "already_set_up")
        clinic_id = clinics.create_clinic(
            db, values["clinic_name"], values["timezone"], values.get("clinic_phone"), now
        )
        pid = clinics.create_practitioner(
            db, clinic_id, person["email"], person["name"], person["password"], now
        )
        row = clinics.get_practitioner(db, pid)
        auth.start_session("practitioner", row, "setup")
    return row


def add_colleague(db: sqlite_utils.Database, actor: User, values: dict, now: datetime) -> dict:
    """Add a practitioner to the actor's clinic from a parsed PractitionerInput."""
    with write(db):
        pid = clinics.create_practitioner(
            db, actor.clinic_id, values["email"], values["name"], values["password"], now
        )
        audit.record("practitioner_added", detail=f"practitioner={pid}", actor=actor)
    return clinics.get_practitioner(db, pid)


def disable_colleague(db: sqlite_utils.Database, actor: User, practitioner_id: int) -> dict:
    """Disable a practitioner of the actor's clinic (never the actor); their sessions end."""
    with write(db):
        row = clinics.get_practitioner(db, practitioner_id, actor.clinic_id)
        clinics.disable_practitioner(db, row["id"], actor.id)
        auth.revoke_all("practitioner", row["id"])
        audit.record("practitioner_disabled", detail=f"practitioner={row['id']}", actor=actor)
    return clinics.get_practitioner(db, row["id"])


def create_client(db: sqlite_utils.Database, actor: User, values: dict, now: datetime) -> dict:
    """Add a client to the actor's clinic from a parsed ClientInput."""
    with write(db):
        row = clients.create_client(db, clinics.get_clinic(db, actor.clinic_id), values, now)
        audit.record("client_created", client_id=row["id"], actor=actor)
    return row


def invite_client(
    db: sqlite_utils.Database, actor: User, client: dict, now: datetime
) -> tuple[str, datetime]:
    """Issue a one-time invite for a client; an earlier one stops working."""
    with write(db):
        token, expires = invites.create_invite(db, client, actor.id, now)
        audit.record("invite_issued", client_id=client["id"], actor=actor)
    return token, expires


def sign_in_with_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Redeem an invite and sign this browser in as its client; return the client row."""
    with write(db):
        row = invites.redeem_invite(db, token, now)
        auth.start_session("client", row, "invite_redeemed")
    return row
