"""The team API: a practitioner lists, adds and disables the colleagues of their clinic."""

from flask import Blueprint, jsonify
from flask_login import current_user

from companion.accounts import actions, clinics
from companion.accounts.models import Practitioner, PractitionerInput, PractitionerList
from companion.auth import practitioner_required
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
    "Add a colleague",
    tag="practitioner",
    ok=201,
    reply=Practitioner,
    body=PractitionerInput,
    errors=(401, 403, 409, 415, 422),
)
@practitioner_required
def add_practitioner():
    """Add a colleague to your clinic."""
    values = parse(PractitionerInput, body())
    row = actions.add_colleague(get_db(), current_user, values, utcnow())
    return created(clinics.practitioner_dict(row))


@bp.post("/practitioners/<int:practitioner_id>/disable")
@operation(
    "Disable a colleague; their sessions end",
    tag="practitioner",
    reply=Practitioner,
    errors=(401, 403, 404, 409),
)
@practitioner_required
def disable_practitioner(practitioner_id: int):
    """Disable a colleague: their sessions end at once."""
    row = actions.disable_colleague(get_db(), current_user, practitioner_id)
    return jsonify(clinics.practitioner_dict(row))
