"""The accounts API: first-run setup, sign-in, your own settings, colleagues, clients, invites."""

import segno
from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion import audit, auth
from companion.accounts import actions, clients, clinics
from companion.auth import practitioner_required, signed_in
from companion.clinical import SEVERITIES
from companion.converters import MAX_ID
from companion.db import get_db, iso, utcnow, write
from companion.errors import ApiError, Conflict, Invalid
from companion.treatments import store as treatments
from companion.validation import Fields, encodable
from companion.web import body, created, public_url

bp = Blueprint("api_accounts", __name__, url_prefix="/api")


# Session --------------------------------------------------------------------------------


@bp.post("/setup")
def setup():
    """Create the first clinic and practitioner; only while none exists."""
    db = get_db()
    if clinics.is_set_up(db):
        raise Conflict("This installation already has a clinic.", "already_set_up")
    data = body()
    f = Fields(data, {"clinic_name", "clinic_phone", "timezone", "email", "name", "password"})
    f.text("clinic_name", max_len=100)
    f.phone("clinic_phone")
    f.timezone("timezone", required=True)
    values = f.done()
    person = clinics.practitioner_fields(
        {k: data[k] for k in ("email", "name", "password") if k in data}
    )
    actions.set_up(db, values, person, utcnow())
    return created(me_payload())


@bp.post("/auth/login")
def login():
    data = body()
    f = Fields(data, {"email", "password"})
    for name, limit in (("email", 254), ("password", 200)):
        # No stripping here: any non-empty text up to the limit is a sign-in attempt.
        value = data.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= limit or not encodable(value):
            f.errors[name] = f"Give your {name} (1 to {limit} characters)."
        else:
            f.clean[name] = value
    values = f.done()
    row = auth.authenticate(values["email"], values["password"], request.remote_addr)
    if row is None:
        raise ApiError(401, "bad_credentials", "Email or password is incorrect.")
    with write(get_db()):
        auth.start_session("practitioner", row, "sign_in")
    return jsonify(me_payload())


@bp.post("/auth/logout")
def logout():
    if current_user.is_authenticated:
        audit.record("sign_out")
    auth.end_session()
    return "", 204


@bp.post("/auth/logout-all")
def logout_all():
    """End every session of the signed-in user, on every device."""
    signed_in()
    audit.record("sign_out_everywhere")
    auth.revoke_all(current_user.kind, current_user.id)
    auth.end_session()
    return "", 204


def me_payload() -> dict:
    db = get_db()
    user = current_user
    payload = {
        "kind": user.kind,
        "clinic": clinics.clinic_dict(clinics.get_clinic(db, user.clinic_id)),
    }
    if user.is_practitioner:
        payload["practitioner"] = clinics.practitioner_dict(user.row)
    else:
        payload["client"] = clients.client_dict(user.row)
    return payload


@bp.get("/me")
def me():
    signed_in()
    return jsonify(me_payload())


@bp.patch("/me")
def update_me():
    """Change your own settings: a client's time zone, quiet hours, discreet mode."""
    signed_in()
    db = get_db()
    data = body()
    if current_user.is_client:
        f = Fields(data, {"timezone", "quiet_hours", "discreet"}, partial=True)
        f.done()
        values = clients.client_fields(data, partial=True)
        current_user.row = clients.update_client(db, current_user.row, values, utcnow())
    else:
        f = Fields(data, {"name", "alert_severities"}, partial=True)
        f.text("name", max_len=100)
        sev = data.get("alert_severities") if isinstance(data, dict) else None
        if sev is not None and (not isinstance(sev, list) or not all(s in SEVERITIES for s in sev)):
            f.errors["alert_severities"] = "A list of: urgent, review, info."
        values = f.done()
        if sev is not None:
            values["alert_severities"] = sev
        with write(db):
            current_user.row = clinics.update_practitioner(db, current_user.id, values)
    return jsonify(me_payload())


# Practitioners --------------------------------------------------------------------------


@bp.get("/practitioners")
@practitioner_required
def list_practitioners():
    found = clinics.list_practitioners(get_db(), current_user.clinic_id)
    return jsonify({"practitioners": [clinics.practitioner_dict(r) for r in found]})


@bp.post("/practitioners")
@practitioner_required
def add_practitioner():
    """Add a colleague to your clinic."""
    values = clinics.practitioner_fields(body())
    row = actions.add_colleague(get_db(), current_user, values, utcnow())
    return created(clinics.practitioner_dict(row))


@bp.post("/practitioners/<int:practitioner_id>/disable")
@practitioner_required
def disable_practitioner(practitioner_id: int):
    """Disable a colleague: their sessions end at once."""
    row = actions.disable_colleague(get_db(), current_user, practitioner_id)
    return jsonify(clinics.practitioner_dict(row))


# Clients --------------------------------------------------------------------------------


def my_client(client_id: int) -> dict:
    """Return a client of the signed-in practitioner's clinic, or 404."""
    return clients.get_client(get_db(), client_id, current_user.clinic_id)


@bp.get("/clients")
@practitioner_required
def list_clients():
    q = request.args.get("q", "")[:100]
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
        offset = min(max(int(request.args.get("offset", 0)), 0), MAX_ID)
    except ValueError:
        raise Invalid({"limit": "Must be a whole number."}) from None
    found = clients.list_clients(get_db(), current_user.clinic_id, q or None, limit, offset)
    return jsonify(
        {
            "clients": [
                dict(clients.client_dict(r), last_session_at=r["last_session_at"]) for r in found
            ]
        }
    )


@bp.post("/clients")
@practitioner_required
def create_client():
    values = clients.client_fields(body())
    row = actions.create_client(get_db(), current_user, values, utcnow())
    return created(clients.client_dict(row))


@bp.get("/clients/<int:client_id>")
@practitioner_required
def get_client(client_id: int):
    db = get_db()
    row = my_client(client_id)
    sessions = treatments.list_sessions(db, client_id)
    audit.record("client_read", client_id=client_id)
    return jsonify(
        dict(
            clients.client_dict(row),
            sessions=[treatments.session_dict(s, row["timezone"]) for s in sessions],
        )
    )


@bp.patch("/clients/<int:client_id>")
@practitioner_required
def update_client(client_id: int):
    row = my_client(client_id)
    values = clients.client_fields(body(), partial=True)
    db = get_db()
    with write(db):
        row = clients.update_client(db, row, values, utcnow())
        audit.record("client_updated", client_id=client_id, detail=",".join(sorted(values)))
    return jsonify(clients.client_dict(row))


@bp.post("/clients/<int:client_id>/invites")
@practitioner_required
def create_invite(client_id: int):
    """Issue a one-time invite link and QR code; an earlier invite stops working."""
    row = my_client(client_id)
    token, expires = actions.invite_client(get_db(), current_user, row, utcnow())
    url = public_url("/i/" + token)
    return created(
        {
            "token": token,
            "url": url,
            "expires_at": iso(expires),
            "qr_svg": segno.make(url, error="m").svg_inline(scale=4, title="Invite QR code"),
        }
    )


@bp.post("/invites/<token>/redeem")
def redeem_invite(token: str):
    """Sign this phone in as the invited client, for about 90 days."""
    actions.sign_in_with_invite(get_db(), token, utcnow())
    return jsonify(me_payload())
