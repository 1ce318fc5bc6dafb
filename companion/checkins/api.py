"""The check-ins API: a client reports how the skin heals, with photos; both sides read them."""

from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, request, send_file
from flask_login import current_user

from companion import audit
from companion.accounts.api import my_client
from companion.auth import client_required, signed_in
from companion.checkins import one_tap, photos
from companion.checkins import store as checkins
from companion.checkins.models import (
    CLIENT_ID_NEEDED,
    Checkin,
    CheckinFilter,
    CheckinInput,
    CheckinList,
    Photo,
)
from companion.contract import operation, parse, parse_query
from companion.db import get_db, utcnow
from companion.errors import N_, ApiError, Invalid, NotFound
from companion.web import body

bp = Blueprint("api_checkins", __name__, url_prefix="/api")

# A phone's offline queue names the client who made each check-in; a shared phone's replay
# must not file one client's answers and photos under the next client's sign-in.
CLIENT_HEADER = "X-Companion-Client"
CLIENT_HEADER_PARAM = {
    "name": CLIENT_HEADER,
    "in": "header",
    "required": False,
    "description": "The client who made this (queued) check-in, as their id (digits); another "
    "client's id than the signed-in one answers 409 `other_client`, an empty or non-numeric "
    "value 400 `bad_header`. Without it, the signed-in client's.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _same_client() -> None:
    """Refuse a replay made by another client than the signed-in one (409 other_client).

    The header names a client by id; an empty or malformed one names nobody, so it is neither
    "another client" nor left out: a 400 that says what the header must be.
    """
    named = request.headers.get(CLIENT_HEADER)
    if named is None:
        return
    named = named.strip()
    if not (named.isascii() and named.isdigit()):
        raise ApiError(
            400,
            "bad_header",
            N_("The X-Companion-Client header must be a client's id (digits), or left out."),
        )
    if named.lstrip("0") != str(current_user.id):  # no int(): a 5,000-digit header
        raise ApiError(
            409,
            "other_client",
            N_("This check-in was made on this phone by someone else, who has signed out since."),
        )


@bp.post("/checkins")
@operation(
    "Report a check-in; a replay of the same id returns the stored answer (200)",
    tag="client",
    ok=201,
    reply=Checkin,
    body=CheckinInput,
    errors=(400, 401, 403, 404, 409, 415, 422, 429),
    extra={"also_ok": (200,), "parameters": [CLIENT_HEADER_PARAM]},
)
@client_required
def post_checkin():
    """Report how the skin is healing; a replay of the same id returns the stored answer."""
    _same_client()
    now = utcnow()
    values = parse(CheckinInput, body(), now=now)
    result, is_new = checkins.submit(
        get_db(),
        current_user.row,
        values,
        now,
        per_hour=current_app.config["CHECKIN_RATE_PER_HOUR"],
    )
    return jsonify(result), 201 if is_new else 200


@bp.post("/checkin-links/<token>")
@operation(
    "Report the check-in a reminder email's one-tap link opens (no sign-in; that session only)",
    tag="client",
    ok=201,
    reply=Checkin,
    body=CheckinInput,
    errors=(400, 403, 404, 409, 410, 415, 422, 429),
    extra={"also_ok": (200,)},
    public=True,
)
def post_checkin_by_link(token: str):
    """Report a check-in through a one-tap link: it grants this one session's check-in only."""
    now = utcnow()
    secret = current_app.config["SECRET_KEY"]
    # The link came in the client's email: its refusals are in their language, as its page.
    g.language = one_tap.language_of_link(get_db(), secret, token[:400])
    client, session, _ = one_tap.grant(get_db(), secret, token[:400], now)
    values = parse(CheckinInput, body(), now=now)
    if values.get("session_id") not in (None, session["id"]):
        raise ApiError(403, "forbidden", N_("This link is for another check-in."))
    values["session_id"] = session["id"]
    result, is_new = checkins.submit(
        get_db(), client, values, now, per_hour=current_app.config["CHECKIN_RATE_PER_HOUR"]
    )
    return jsonify(result), 201 if is_new else 200


@bp.get("/checkins")
@operation(
    "Check-ins: a client's own, or ?client_id= for a practitioner",
    tag="client",
    reply=CheckinList,
    query=CheckinFilter,
    errors=(401, 404, 422),
)
def get_checkins():
    """A client's own check-ins; a practitioner passes ?client_id= for one of their clients."""
    signed_in()
    db = get_db()
    if current_user.is_client:
        client_id = current_user.id
    else:
        wanted = parse_query(CheckinFilter, request.args)["client_id"]
        if wanted is None:
            raise Invalid({"client_id": CLIENT_ID_NEEDED})
        client_id = my_client(wanted)["id"]
        audit.record("client_read", client_id=client_id, detail="checkins")
    return jsonify({"checkins": checkins.list_for_client(db, client_id)})


@bp.post("/checkins/<checkin_id>/photos")
@operation(
    "Attach a photo (raw JPEG/PNG/WebP/HEIC body); re-encoded without EXIF; the same bytes "
    "sent again to the same check-in return the stored photo (200)",
    tag="client",
    ok=201,
    reply=Photo,
    body={"type": "string", "format": "binary"},
    body_type="image/*",
    errors=(400, 401, 403, 404, 409, 413, 415, 422, 429),
    extra={"also_ok": (200,), "parameters": [CLIENT_HEADER_PARAM]},
)
@client_required
def add_photo(checkin_id: str):
    """Attach a photo (the raw image as the body, Content-Type image/*) to your check-in;
    a retry of the same photo returns the stored one."""
    _same_client()
    if not (request.mimetype or "").startswith("image/"):
        raise ApiError(
            415,
            "unsupported_media_type",
            N_(
                "Send the photo as the body with Content-Type image/jpeg, image/png,"
                " image/webp or image/heic."
            ),
        )
    if (request.content_length or 0) > photos.MAX_BYTES:
        raise ApiError(413, "too_large", N_("A photo can be at most %(mb)s MB.", mb=15))
    photo, is_new = photos.add(
        get_db(),
        current_user.id,
        checkin_id[:40],
        request.get_data(),
        utcnow(),
        folder=Path(current_app.config["PHOTOS_DIR"]),
        per_hour=current_app.config["PHOTO_RATE_PER_HOUR"],
        guard=photos.guard_of(current_app),
    )
    return jsonify(photo), 201 if is_new else 200


@bp.get("/photos/<photo_id>")
@operation(
    "A check-in photo (its client and their clinic only)",
    tag="client",
    reply={"type": "string", "format": "binary"},
    reply_type="image/jpeg",
    errors=(401, 404),
)
def get_photo(photo_id: str):
    """A photo, only to its client and their clinic's practitioners."""
    signed_in()
    row = photos.find(get_db(), photo_id[:40])
    allowed = row is not None and (
        (current_user.is_client and row["client_id"] == current_user.id)
        or (current_user.is_practitioner and row["clinic_id"] == current_user.clinic_id)
    )
    if not allowed:
        raise NotFound("photo")
    if current_user.is_practitioner:
        audit.record("client_read", client_id=row["client_id"], detail="photo")
    resp = send_file(
        Path(current_app.config["PHOTOS_DIR"]) / row["filename"], mimetype="image/jpeg", max_age=0
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp
