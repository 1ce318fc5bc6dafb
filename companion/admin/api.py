"""The clinic settings API: everyone of the clinic reads its face; owners change it."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion.accounts import clinics
from companion.admin import actions, clinic
from companion.admin.models import ClinicInput, ClinicProfile
from companion.auth import owner_required, signed_in
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.errors import ApiError
from companion.web import body

bp = Blueprint("api_admin", __name__, url_prefix="/api")


@bp.get("/clinic")
@operation(
    "Your clinic's settings as clients see them (anyone signed in to the clinic)",
    tag="clinic",
    reply=ClinicProfile,
)
def get_clinic():
    signed_in()
    return jsonify(clinic.face(clinics.get_clinic(get_db(), current_user.clinic_id)))


@bp.patch("/clinic")
@operation(
    "Change the clinic's settings (owners only); null or empty text clears one",
    tag="clinic",
    reply=ClinicProfile,
    body=ClinicInput,
    partial=True,
    errors=(400, 401, 403, 415, 422),
)
@owner_required
def patch_clinic():
    values = parse(ClinicInput, body(), partial=True)
    return jsonify(actions.change_clinic(get_db(), current_user, values))


@bp.put("/clinic/logo")
@operation(
    "Upload the clinic's logo (owners only; raw JPEG/PNG/WebP/HEIC body, at most 5 MB);"
    " re-encoded without metadata, at most 512 px a side",
    tag="clinic",
    reply=ClinicProfile,
    body={"type": "string", "format": "binary"},
    body_type="image/*",
    errors=(401, 403, 413, 415, 422, 429),
)
@owner_required
def put_logo():
    if not (request.mimetype or "").startswith("image/"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the logo as the body with Content-Type image/jpeg, image/png, image/webp"
            " or image/heic.",
        )
    if (request.content_length or 0) > clinic.LOGO_MAX_BYTES:
        raise ApiError(413, "too_large", "A logo can be at most 5 MB.")
    return jsonify(actions.change_logo(get_db(), current_user, request.get_data(), utcnow()))


@bp.delete("/clinic/logo")
@operation(
    "Remove the clinic's logo (owners only)", tag="clinic", reply=ClinicProfile, errors=(401, 403)
)
@owner_required
def delete_logo():
    return jsonify(actions.remove_logo(get_db(), current_user))
