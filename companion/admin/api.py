"""The clinic settings API: everyone of the clinic reads its face; owners change it."""

from zoneinfo import ZoneInfo

from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion.accounts import clinics
from companion.admin import actions, clinic, protocol_editor
from companion.admin.models import (
    ClinicInput,
    ClinicProfile,
    PreviewOptions,
    ProtocolPreview,
    ProtocolPreviewInput,
)
from companion.auth import owner_required, practitioner_required, signed_in
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.errors import ApiError, Invalid
from companion.i18n import DEFAULT_LANGUAGE
from companion.reminders.planning import DEFAULT_QUIET_HOURS
from companion.reminders.protocol import validate_steps
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


@bp.post("/protocol/preview")
@operation(
    "Plan a sample session with these steps, as the protocol editor previews it: each step's"
    " local time in the chosen zone, moved out of quiet hours (default 21:00-08:00; equal"
    " start and end: none). Nothing is saved. performed_at defaults to today 10:00 there;"
    " timezone to the clinic's; language (the titles' language, each step's own else its"
    " English) to en",
    tag="practitioner",
    reply=ProtocolPreview,
    body=ProtocolPreviewInput,
    errors=(400, 401, 403, 415, 422),
)
@practitioner_required
def preview_protocol():
    data = body()
    if not isinstance(data, dict):
        raise Invalid({"body": "Expected a JSON object."})
    options = parse(PreviewOptions, {k: v for k, v in data.items() if k != "steps"})
    steps, errors = validate_steps(data.get("steps"))
    if errors:
        raise Invalid(errors)
    timezone = (
        options.get("timezone") or clinics.get_clinic(get_db(), current_user.clinic_id)["timezone"]
    )
    start = options.get("performed_at") or protocol_editor.sample_start(timezone, utcnow())
    quiet = (options.get("quiet_start"), options.get("quiet_end"))
    if None in quiet:
        if quiet != (None, None):
            missing = "quiet_end" if quiet[1] is None else "quiet_start"
            raise Invalid({missing: "Give both quiet_start and quiet_end, or neither."})
        quiet = DEFAULT_QUIET_HOURS
    language = options.get("language") or DEFAULT_LANGUAGE
    return jsonify(
        {
            "timezone": timezone,
            "performed_at": start.astimezone(ZoneInfo(timezone)).isoformat(),
            "quiet_start": quiet[0],
            "quiet_end": quiet[1],
            "language": language,
            "plan": protocol_editor.preview(steps, timezone, start, quiet, language),
        }
    )
