"""What users do to accounts, shared by the API and the pages.

Each action writes in one transaction and records itself in the audit log once, for the
actor given (the signed-in User); signing in is done here too, on the current request.
Managing colleagues is for owners: the routes and pages check that (auth.owner_required).
Past 300 lines on purpose: one short audited function per account action, side by side.
"""

from datetime import datetime

import sqlite_utils

from companion import audit, auth, credentials, throttle, twofactor
from companion.accounts import clients, clinics, invites, passwords, phones
from companion.auth import User
from companion.db import utcnow, write
from companion.errors import Conflict, Invalid, NotFound
from companion.reminders import channels, devices, outbox


def set_up(db: sqlite_utils.Database, values: dict, person: dict, now: datetime) -> dict:
    """First run: create the clinic and its first practitioner, and sign them in."""
    with write(db):
        if clinics.is_set_up(db):
            raise Conflict("This installation already has a clinic.", "already_set_up")
        clinic_id = clinics.create_clinic(
            db, values["clinic_name"], values["timezone"], values.get("clinic_phone"), now
        )
        passwords.require_good(
            person["password"], (person["email"], person["name"], values["clinic_name"])
        )
        pid = clinics.create_practitioner(
            db, clinic_id, person["email"], person["name"], person["password"], now, "owner"
        )
        row = clinics.get_practitioner(db, pid)
        auth.start_session("practitioner", row, "setup")
    return row


def _clinic_words(db: sqlite_utils.Database, actor: User) -> tuple[str | None, ...]:
    """The clinic's names, which the password policy counts as known to an attacker."""
    clinic = clinics.get_clinic(db, actor.clinic_id)
    return clinic["name"], clinic.get("display_name")


def add_colleague(db: sqlite_utils.Database, actor: User, values: dict, now: datetime) -> dict:
    """Add a practitioner (or, when asked, an owner) to the actor's clinic from a parsed
    PractitionerInput; only an owner may."""
    passwords.require_good(
        values["password"], (values["email"], values["name"], *_clinic_words(db, actor))
    )
    role = values.get("role") or "practitioner"
    with write(db):
        pid = clinics.create_practitioner(
            db, actor.clinic_id, values["email"], values["name"], values["password"], now, role
        )
        audit.record("practitioner_added", detail=f"practitioner={pid} role={role}", actor=actor)
    return clinics.get_practitioner(db, pid)


def disable_colleague(db: sqlite_utils.Database, actor: User, practitioner_id: int) -> dict:
    """Disable a practitioner of the actor's clinic (never the actor, never the last active
    owner): their sessions end, their devices are forgotten and their queued alerts cancelled."""
    with write(db):
        row = clinics.get_practitioner(db, practitioner_id, actor.clinic_id)
        clinics.disable_practitioner(db, row["id"], actor.id)
        auth.revoke_all("practitioner", row["id"])
        devices.forget_devices(db, "practitioner", row["id"])
        outbox.cancel_alerts_to(db, row["id"], "practitioner disabled")
        audit.record("practitioner_disabled", detail=f"practitioner={row['id']}", actor=actor)
    return clinics.get_practitioner(db, row["id"])


def enable_colleague(db: sqlite_utils.Database, actor: User, practitioner_id: int) -> dict:
    """Re-enable a disabled practitioner of the actor's clinic."""
    with write(db):
        row = clinics.get_practitioner(db, practitioner_id, actor.clinic_id)
        clinics.enable_practitioner(db, row["id"])
        audit.record("practitioner_enabled", detail=f"practitioner={row['id']}", actor=actor)
    return clinics.get_practitioner(db, row["id"])


def change_role(db: sqlite_utils.Database, actor: User, practitioner_id: int, role: str) -> dict:
    """Promote a practitioner of the actor's clinic to owner, or make an owner a practitioner
    again; the clinic keeps at least one active owner."""
    with write(db):
        row = clinics.get_practitioner(db, practitioner_id, actor.clinic_id)
        clinics.set_role(db, row["id"], role)
        audit.record(
            "practitioner_role_changed",
            detail=f"practitioner={row['id']} role={role}",
            actor=actor,
        )
    row = clinics.get_practitioner(db, row["id"])
    if row["id"] == actor.id:
        actor.row = row
    return row


def change_password(
    db: sqlite_utils.Database, actor: User, current: str, new: str, address: str | None
) -> None:
    """Change the actor's own password (the current one required) and end every other
    session of theirs; a wrong current password counts as a failed sign-in."""
    now = utcnow()
    email = actor.row["email"]
    address = address or "unknown"
    throttle.check_throttle(db, email, address, now)
    row = clinics.get_practitioner(db, actor.id)
    if not credentials.password_matches(row, current):
        throttle.record_failure(db, email, address, actor.clinic_id, now)
        raise Invalid({"current_password": "This is not your current password."})
    passwords.require_good(new, (email, row["name"], *_clinic_words(db, actor)))
    if credentials.password_matches(row, new):
        raise Invalid({"password": "Choose a password different from your current one."})
    with write(db):
        clinics.set_password(db, actor.id, new)
        ended = auth.revoke_others("practitioner", actor.id, actor.session_id)
        audit.record("password_changed", detail=f"other_sessions_ended={ended}", actor=actor)


def create_client(db: sqlite_utils.Database, actor: User, values: dict, now: datetime) -> dict:
    """Add a client to the actor's clinic from a parsed ClientInput."""
    with write(db):
        row = clients.create_client(db, clinics.get_clinic(db, actor.clinic_id), values, now)
        audit.record("client_created", client_id=row["id"], actor=actor)
    return row


def change_own_settings(
    db: sqlite_utils.Database, actor: User, values: dict, now: datetime
) -> dict:
    """A client changes their own settings (the API's PATCH /api/me, the Settings page): audited
    as a change of their record, naming the fields, never their values."""
    with write(db):
        row = clients.update_client(db, actor.row, values, now)
        if row is not actor.row:  # something changed
            audit.record(
                "client_updated", client_id=actor.id, detail=",".join(sorted(values)), actor=actor
            )
    return row


def invite_client(
    db: sqlite_utils.Database,
    actor: User,
    client: dict,
    now: datetime,
    days: int,
    sign_out_devices: bool = False,
) -> tuple[str, datetime]:
    """Issue a one-time invite for a client, valid `days`; an earlier one stops working. With
    `sign_out_devices`, the phones signed in as the client now are signed out (a new phone)."""
    with write(db):
        token, expires = invites.create_invite(db, client, actor.id, now, days)
        audit.record("invite_issued", client_id=client["id"], actor=actor)
        if sign_out_devices:
            ended = phones.sign_out(db, client["id"], now)
            audit.record(
                "client_signed_out", client_id=client["id"], detail=f"all={ended}", actor=actor
            )
    return token, expires


def sign_in_with_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Redeem an invite and sign this browser in as its client; return the client row."""
    with write(db):
        row = invites.redeem_invite(db, token, now)
        auth.start_session("client", row, "invite_redeemed")
    return row


def stop_email(db: sqlite_utils.Database, client: dict, now: datetime) -> dict:
    """Switch email off for a client (a reminder email's one-click unsubscribe; no sign-in)."""
    with write(db):
        row = clients.update_client(
            db,
            client,
            {"channels": channels.without(channels.decode(client["channels"]), "email")},
            now,
        )
        audit.record(
            "email_unsubscribed",
            client_id=client["id"],
            clinic_id=client["clinic_id"],
            actor_kind="client",
            actor_id=client["id"],
        )
    return row


# Two-factor sign-in -------------------------------------------------------------------------


def start_two_factor(db: sqlite_utils.Database, actor: User, fresh: bool = True) -> dict:
    """Begin setting up two-factor sign-in: a new secret (or, unless `fresh`, the one being
    set up already) for the actor's authenticator app; nothing changes until it is confirmed."""
    row = clinics.get_practitioner(db, actor.id)
    if twofactor.enabled(row):
        raise Conflict(
            "Two-factor sign-in is on already: turn it off first to move to a new app.",
            "two_factor_on",
        )
    pending = None if fresh else twofactor.pending_setup(row)
    if pending is not None:
        return pending
    secret = twofactor.new_secret()
    with write(db):
        db["practitioners"].update(actor.id, {"totp_pending": twofactor.seal(secret)})
        audit.record("two_factor_setup_started", actor=actor)
    return twofactor.provisioning(secret, row["email"])


def confirm_two_factor(db: sqlite_utils.Database, actor: User, code: str, now: datetime) -> list:
    """Turn two-factor sign-in on with a code from the app just set up; return the new
    recovery codes (shown once, stored hashed)."""
    row = clinics.get_practitioner(db, actor.id)
    if twofactor.enabled(row):
        raise Conflict("Two-factor sign-in is on already.", "two_factor_on")
    if not row["totp_pending"]:
        raise Conflict("Start the set-up first: scan a new QR code.", "two_factor_not_started")
    pending = twofactor.unseal(row["totp_pending"])
    step = None if pending is None else twofactor.totp_step(pending, code, 0, now)
    if step is None:
        raise Invalid({"code": "This code is not right: type the 6 digits your app shows now."})
    with write(db):
        db["practitioners"].update(
            actor.id,
            {"totp_secret": row["totp_pending"], "totp_pending": None, "totp_last_step": step},
        )
        codes = twofactor.new_recovery_codes(db, actor.id, now)
        audit.record("two_factor_enabled", actor=actor)
    actor.row = clinics.get_practitioner(db, actor.id)
    return codes


def _require_password(db: sqlite_utils.Database, actor: User, password: str, address) -> None:
    """Refuse (and count as a failed sign-in) a wrong password for the actor, throttled."""
    now = utcnow()
    address = address or "unknown"
    throttle.check_throttle(db, actor.row["email"], address, now)
    if not credentials.password_matches(clinics.get_practitioner(db, actor.id), password):
        throttle.record_failure(db, actor.row["email"], address, actor.clinic_id, now)
        raise Invalid({"password": "This is not your password."})


def disable_two_factor(
    db: sqlite_utils.Database, actor: User, password: str, address: str | None
) -> None:
    """Turn the actor's two-factor sign-in off (their password required); the recovery codes
    go too. Where the clinic requires it, they are asked to set it up again at once."""
    _require_password(db, actor, password, address)
    with write(db):
        twofactor.turn_off(db, actor.id)
        audit.record("two_factor_disabled", actor=actor)
    actor.row = clinics.get_practitioner(db, actor.id)


def renew_recovery_codes(
    db: sqlite_utils.Database, actor: User, password: str, address: str | None, now: datetime
) -> list:
    """Replace the actor's recovery codes (their password required); the old ones stop working."""
    _require_password(db, actor, password, address)
    if not twofactor.enabled(clinics.get_practitioner(db, actor.id)):
        raise Conflict("Turn two-factor sign-in on first.", "two_factor_off")
    with write(db):
        codes = twofactor.new_recovery_codes(db, actor.id, now)
        audit.record("recovery_codes_renewed", actor=actor)
    return codes


def require_two_factor(db: sqlite_utils.Database, actor: User, required: bool) -> bool:
    """Require two-factor sign-in of everyone in the actor's clinic, or stop requiring it
    (owners only); an owner turns it on for themselves first."""
    if required and not twofactor.enabled(clinics.get_practitioner(db, actor.id)):
        raise Conflict(
            "Set up two-factor sign-in for yourself first, then require it of everyone.",
            "two_factor_off",
        )
    with write(db):
        db["clinics"].update(actor.clinic_id, {"two_factor_required": int(required)})
        audit.record("clinic_two_factor_required", detail=f"required={int(required)}", actor=actor)
    actor.two_factor_required = required
    return required


def reset_two_factor(db: sqlite_utils.Database, actor: User, practitioner_id: int) -> dict:
    """Turn a colleague's two-factor sign-in off (owners, for a lost phone without recovery
    codes); their sessions end and they set it up again at their next sign-in."""
    with write(db):
        row = clinics.get_practitioner(db, practitioner_id, actor.clinic_id)
        twofactor.turn_off(db, row["id"])  # also a set-up begun and never confirmed
        # Nothing was on (as `companion reset-two-factor` says): their sessions go on.
        if twofactor.enabled(row):
            if row["id"] != actor.id:
                auth.revoke_all("practitioner", row["id"])
            audit.record("two_factor_reset", detail=f"practitioner={row['id']}", actor=actor)
    return clinics.get_practitioner(db, row["id"])


# Clients' phones ----------------------------------------------------------------------------


def sign_out_phones(
    db: sqlite_utils.Database, actor: User, client: dict, device_id: str | None, now: datetime
) -> int:
    """Sign one of a client's phones out, or all of them; return how many were signed out
    (a device id that is not a live phone of this client is a 404)."""
    with write(db):
        ended = phones.sign_out(db, client["id"], now, device_id)
        if device_id is not None and not ended:
            raise NotFound("signed-in phone")
        audit.record(
            "client_signed_out",
            client_id=client["id"],
            detail=f"device={device_id}" if device_id else f"all={ended}",
            actor=actor,
        )
    return ended
