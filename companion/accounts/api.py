"""The accounts API: first-run setup, sign-in, your own settings, clients and their invites."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion import audit, auth, credentials, throttle, twofactor
from companion.accounts import actions, clients, clinics
from companion.accounts.models import (
    Client,
    ClientFilter,
    ClientInput,
    ClientList,
    ClientSettingsInput,
    ClientWithSessions,
    LoginInput,
    Me,
    PasswordChangeInput,
    PractitionerSettingsInput,
    SetupInput,
)
from companion.auth import open_during_enrolment, practitioner_required, signed_in
from companion.contract import operation, parse, parse_query
from companion.db import get_db, utcnow, write
from companion.errors import ApiError, Conflict
from companion.treatments import store as treatments
from companion.web import body, created

bp = Blueprint("api_accounts", __name__, url_prefix="/api")


# Session --------------------------------------------------------------------------------


@bp.post("/setup")
@operation(
    "Create the first clinic and practitioner (first run only)",
    tag="session",
    ok=201,
    reply=Me,
    body=SetupInput,
    errors=(400, 409, 415, 422),
    public=True,
)
def setup():
    """Create the first clinic and practitioner; only while none exists."""
    db = get_db()
    if clinics.is_set_up(db):
        raise Conflict("This installation already has a clinic.", "already_set_up")
    values = parse(SetupInput, body())
    actions.set_up(db, values, values, utcnow())
    return created(me_payload())


@bp.post("/auth/login")
@operation(
    "Sign a practitioner in; with two-factor sign-in on, `code` too (else 401 code_required)",
    tag="session",
    reply=Me,
    body=LoginInput,
    errors=(400, 401, 415, 422, 429),
    public=True,
)
def login():
    values = parse(LoginInput, body())
    row = credentials.authenticate(values["email"], values["password"], request.remote_addr)
    if row is None:
        raise ApiError(401, "bad_credentials", "Email or password is incorrect.")
    db = get_db()
    second = None
    if twofactor.enabled(row):
        if not values.get("code"):
            message = "Give the code from your authenticator app (or a recovery code)."
            raise ApiError(401, "code_required", message, {"code": message})
        second = twofactor.check_code(db, row, values["code"], request.remote_addr, utcnow())
    with write(db):
        auth.start_session("practitioner", row, "sign_in", second and f"second_factor={second}")
        throttle.forget_failures(db, row["email"])
    return jsonify(me_payload())


@bp.post("/auth/logout")
@operation(
    'Sign out of this session; the answer carries `Clear-Site-Data: "cache", "storage"`, so'
    " the browser drops the app's caches, storage and service worker",
    tag="session",
    ok=204,
    errors=(),
    public=True,
)
@open_during_enrolment
def logout():
    if current_user.is_authenticated:
        audit.record("sign_out")
    auth.end_session()
    return "", 204


@bp.post("/auth/logout-all")
@operation("Sign out everywhere", tag="session", ok=204)
@open_during_enrolment
def logout_all():
    """End every session of the signed-in user, on every device."""
    signed_in()
    audit.record("sign_out_everywhere")
    auth.revoke_all(current_user.kind, current_user.id)
    auth.end_session()
    return "", 204


@bp.post("/auth/password")
@operation(
    "Change your own password (practitioners); every other session of yours ends",
    tag="session",
    ok=204,
    body=PasswordChangeInput,
    errors=(400, 401, 403, 415, 422, 429),
)
@practitioner_required
def change_password():
    """Change your password, giving the current one; your other sessions end."""
    values = parse(PasswordChangeInput, body())
    actions.change_password(
        get_db(),
        current_user,
        values["current_password"],
        values["new_password"],
        request.remote_addr,
    )
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
@operation("Who is signed in", tag="session", reply=Me)
@open_during_enrolment
def me():
    signed_in()
    return jsonify(me_payload())


@bp.patch("/me")
@operation(
    "Change your own settings (client: timezone, quiet_hours, discreet, channels;"
    " practitioner: name, alert_severities)",
    tag="session",
    reply=Me,
    body={
        "anyOf": [
            {"$ref": "#/components/schemas/ClientSettingsInputPatch"},
            {"$ref": "#/components/schemas/PractitionerSettingsInputPatch"},
        ]
    },
    errors=(400, 401, 415, 422),
)
def update_me():
    """Change your own settings: a client's time zone, quiet hours, discreet mode."""
    signed_in()
    db = get_db()
    data = body()
    if current_user.is_client:
        values = parse(ClientSettingsInput, data, partial=True)
        current_user.row = actions.change_own_settings(db, current_user, values, utcnow())
    else:
        values = parse(PractitionerSettingsInput, data, partial=True)
        with write(db):
            current_user.row = clinics.update_practitioner(db, current_user.id, values)
    return jsonify(me_payload())


# Clients --------------------------------------------------------------------------------


def my_client(client_id: int) -> dict:
    """Return a client of the signed-in practitioner's clinic, or 404."""
    return clients.get_client(get_db(), client_id, current_user.clinic_id)


@bp.get("/clients")
@operation(
    "Clients of your clinic",
    tag="practitioner",
    reply=ClientList,
    query=ClientFilter,
    errors=(401, 403, 422),
)
@practitioner_required
def list_clients():
    query = parse_query(ClientFilter, request.args)
    q = query["q"]
    found = clients.list_clients(
        get_db(), current_user.clinic_id, q, query["limit"], query["offset"]
    )
    # One entry per read that shows anyone; never the search text (a name or a phone).
    if found:
        audit.record("clients_listed", detail="search" if q else None)
    return jsonify(
        {
            "clients": [
                dict(clients.client_dict(r), last_session_at=r["last_session_at"]) for r in found
            ]
        }
    )


@bp.post("/clients")
@operation(
    "Add a client",
    tag="practitioner",
    ok=201,
    reply=Client,
    body=ClientInput,
    errors=(400, 401, 403, 415, 422),
)
@practitioner_required
def create_client():
    values = parse(ClientInput, body())
    row = actions.create_client(get_db(), current_user, values, utcnow())
    return created(clients.client_dict(row))


@bp.get("/clients/<int:client_id>")
@operation(
    "A client with their sessions",
    tag="practitioner",
    reply=ClientWithSessions,
    errors=(401, 403, 404),
)
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
@operation(
    "Change a client",
    tag="practitioner",
    reply=Client,
    body=ClientInput,
    partial=True,
    errors=(400, 401, 403, 404, 415, 422),
)
@practitioner_required
def update_client(client_id: int):
    row = my_client(client_id)
    values = parse(ClientInput, body(), partial=True)
    db = get_db()
    with write(db):
        row = clients.update_client(db, row, values, utcnow())
        audit.record("client_updated", client_id=client_id, detail=",".join(sorted(values)))
    return jsonify(clients.client_dict(row))
