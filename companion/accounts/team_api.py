"""The team API: practitioners list their clinic's colleagues; owners add, disable, re-enable
and promote them."""

from flask import Blueprint, jsonify
from flask_login import current_user

from companion.accounts import actions, clinics
from companion.accounts.models import ColleagueInput, Practitioner, PractitionerList, RoleInput
from companion.auth import owner_required, practitioner_required
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.web import body, created

bp = Blueprint("api_team", __name__, url_prefix="/api")


@bp.get("/practitioners")
@operation(
    "Practitioners of your clinic", tag="practitioner", reply=PractitionerList, errors=(401, 403)
)
@practitioner_required
def list_practitioners():
    found = clinics.list_practitioners(get_db(), current_user.clinic_id)
    return jsonify({"practitioners": [clinics.practitioner_dict(r) for r in found]})


@bp.post("/practitioners")
@operation(
    "Add a colleague (owners only); role is practitioner unless given as owner",
    tag="practitioner",
    ok=201,
    reply=Practitioner,
    body=ColleagueInput,
    errors=(401, 403, 409, 415, 422),
)
@owner_required
def add_practitioner():
    """Add a colleague to your clinic."""
    values = parse(ColleagueInput, body())
    row = actions.add_colleague(get_db(), current_user, values, utcnow())
    return created(clinics.practitioner_dict(row))


@bp.post("/practitioners/<int:practitioner_id>/disable")
@operation(
    "Disable a colleague (owners only); their sessions, devices and queued alerts end",
    tag="practitioner",
    reply=Practitioner,
    errors=(401, 403, 404, 409),
)
@owner_required
def disable_practitioner(practitioner_id: int):
    """Disable a colleague: their sessions end at once."""
    row = actions.disable_colleague(get_db(), current_user, practitioner_id)
    return jsonify(clinics.practitioner_dict(row))


@bp.post("/practitioners/<int:practitioner_id>/enable")
@operation(
    "Re-enable a disabled colleague (owners only)",
    tag="practitioner",
    reply=Practitioner,
    errors=(401, 403, 404),
)
@owner_required
def enable_practitioner(practitioner_id: int):
    row = actions.enable_colleague(get_db(), current_user, practitioner_id)
    return jsonify(clinics.practitioner_dict(row))


@bp.put("/practitioners/<int:practitioner_id>/role")
@operation(
    "Make a colleague an owner or a practitioner (owners only; one active owner stays)",
    tag="practitioner",
    reply=Practitioner,
    body=RoleInput,
    errors=(400, 401, 403, 404, 409, 415, 422),
)
@owner_required
def change_role(practitioner_id: int):
    db = get_db()
    # Another clinic's id is 404 whatever the body says.
    clinics.get_practitioner(db, practitioner_id, current_user.clinic_id)
    values = parse(RoleInput, body())
    row = actions.change_role(db, current_user, practitioner_id, values["role"])
    return jsonify(clinics.practitioner_dict(row))
