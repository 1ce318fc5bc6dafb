"""The JSON API (/api/...): the contract for the PWA and for integrations."""

import segno
from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from companion import audit, auth
from companion.accounts import store as clinic
from companion.auth import client_required, practitioner_required
from companion.converters import MAX_ID, parse_id
from companion.db import get_db, iso, one, rows, utcnow, write
from companion.errors import ApiError, Invalid, not_found
from companion.openapi import document
from companion.reminders import outbox as schedule
from companion.reminders import push
from companion.validation import Fields, encodable

bp = Blueprint("api", __name__, url_prefix="/api")


def body() -> object:
    """Return the parsed JSON body ({} when empty); a malformed body is a 400."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser's stack
        data = None
    if data is None:
        raise ApiError(400, "bad_json", "The body is not valid JSON.")
    return data


def created(payload: dict, status: int = 201):
    return jsonify(payload), status


@bp.get("/openapi.json")
def openapi():
    resp = jsonify(document())
    resp.headers["Cache-Control"] = "no-cache"
    return resp


# Session --------------------------------------------------------------------------------


@bp.post("/setup")
def setup():
    """Create the first clinic and practitioner; only while none exists."""
    db = get_db()
    if one(db, "SELECT id FROM clinics LIMIT 1"):
        raise ApiError(409, "already_set_up", "This installation already has a clinic.")
    data = body()
    f = Fields(data, {"clinic_name", "clinic_phone", "timezone", "email", "name", "password"})
    f.text("clinic_name", max_len=100)
    f.phone("clinic_phone")
    f.timezone("timezone", required=True)
    values = f.done()
    person = clinic.practitioner_fields(
        {k: data[k] for k in ("email", "name", "password") if k in data}
    )
    clinic.set_up(db, values, person, utcnow())
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
    try:
        row = auth.authenticate(values["email"], values["password"])
    except auth.TooManyAttempts as e:
        raise ApiError(
            429,
            "too_many_attempts",
            "Too many failed sign-ins. Try again later.",
            headers={"Retry-After": str(e.retry_after)},
        ) from None
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
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in first.")
    audit.record("sign_out_everywhere")
    auth.revoke_all(current_user.kind, current_user.id)
    auth.end_session()
    return "", 204


def me_payload() -> dict:
    db = get_db()
    user = current_user
    payload = {
        "kind": user.kind,
        "clinic": clinic.clinic_dict(clinic.get_clinic(db, user.clinic_id)),
    }
    if user.is_practitioner:
        payload["practitioner"] = clinic.practitioner_dict(user.row)
    else:
        payload["client"] = clinic.client_dict(user.row)
    return payload


@bp.get("/me")
def me():
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in first.")
    return jsonify(me_payload())


@bp.patch("/me")
def update_me():
    """Change your own settings: a client's time zone, quiet hours, discreet mode."""
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in first.")
    db = get_db()
    data = body()
    if current_user.is_client:
        f = Fields(data, {"timezone", "quiet_hours", "discreet"}, partial=True)
        f.done()
        values = clinic.client_fields(data, partial=True)
        current_user.row = clinic.update_client(db, current_user.row, values, utcnow())
    else:
        f = Fields(data, {"name", "alert_severities"}, partial=True)
        f.text("name", max_len=100)
        sev = data.get("alert_severities") if isinstance(data, dict) else None
        if sev is not None and (
            not isinstance(sev, list) or not all(s in ("urgent", "review", "info") for s in sev)
        ):
            f.errors["alert_severities"] = "A list of: urgent, review, info."
        values = f.done()
        with write(db):
            if "name" in values:
                db.conn.execute(
                    "UPDATE practitioners SET name = ? WHERE id = ?",
                    (values["name"], current_user.id),
                )
            if sev is not None:
                db.conn.execute(
                    "UPDATE practitioners SET alert_severities = ? WHERE id = ?",
                    (
                        ",".join(s for s in ("urgent", "review", "info") if s in sev),
                        current_user.id,
                    ),
                )
        current_user.row = one(db, "SELECT * FROM practitioners WHERE id = ?", (current_user.id,))
    return jsonify(me_payload())


# Practitioners --------------------------------------------------------------------------


@bp.get("/practitioners")
@practitioner_required
def list_practitioners():
    found = rows(
        get_db(),
        "SELECT * FROM practitioners WHERE clinic_id = ? ORDER BY name",
        (current_user.clinic_id,),
    )
    return jsonify({"practitioners": [clinic.practitioner_dict(r) for r in found]})


@bp.post("/practitioners")
@practitioner_required
def add_practitioner():
    """Add a colleague to your clinic."""
    values = clinic.practitioner_fields(body())
    db = get_db()
    with write(db):
        pid = clinic.add_colleague(db, current_user.clinic_id, values, utcnow())
    return created(
        clinic.practitioner_dict(one(db, "SELECT * FROM practitioners WHERE id = ?", (pid,)))
    )


@bp.post("/practitioners/<int:practitioner_id>/disable")
@practitioner_required
def disable_practitioner(practitioner_id: int):
    """Disable a colleague: their sessions end at once."""
    db = get_db()
    row = one(
        db,
        "SELECT * FROM practitioners WHERE id = ? AND clinic_id = ?",
        (practitioner_id, current_user.clinic_id),
    )
    if row is None:
        raise not_found("practitioner")
    with write(db):
        clinic.disable_colleague(db, row["id"], current_user.id)
    return jsonify(
        clinic.practitioner_dict(one(db, "SELECT * FROM practitioners WHERE id = ?", (row["id"],)))
    )


# Clients --------------------------------------------------------------------------------


def my_client(client_id: int) -> dict:
    """Return a client of the signed-in practitioner's clinic, or 404."""
    return clinic.get_client(get_db(), client_id, current_user.clinic_id)


@bp.get("/clients")
@practitioner_required
def list_clients():
    q = request.args.get("q", "")[:100]
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
        offset = min(max(int(request.args.get("offset", 0)), 0), MAX_ID)
    except ValueError:
        raise Invalid({"limit": "Must be a whole number."}) from None
    found = clinic.list_clients(get_db(), current_user.clinic_id, q or None, limit, offset)
    return jsonify(
        {
            "clients": [
                dict(clinic.client_dict(r), last_session_at=r["last_session_at"]) for r in found
            ]
        }
    )


@bp.post("/clients")
@practitioner_required
def create_client():
    values = clinic.client_fields(body())
    db = get_db()
    with write(db):
        row = clinic.create_client(
            db, clinic.get_clinic(db, current_user.clinic_id), values, utcnow()
        )
        audit.record("client_created", client_id=row["id"])
    return created(clinic.client_dict(row))


@bp.get("/clients/<int:client_id>")
@practitioner_required
def get_client(client_id: int):
    db = get_db()
    row = my_client(client_id)
    sessions = clinic.list_sessions(db, client_id)
    audit.record("client_read", client_id=client_id)
    return jsonify(
        dict(
            clinic.client_dict(row),
            sessions=[clinic.session_dict(s, row["timezone"]) for s in sessions],
        )
    )


@bp.patch("/clients/<int:client_id>")
@practitioner_required
def update_client(client_id: int):
    row = my_client(client_id)
    values = clinic.client_fields(body(), partial=True)
    db = get_db()
    with write(db):
        row = clinic.update_client(db, row, values, utcnow())
        audit.record("client_updated", client_id=client_id, detail=",".join(sorted(values)))
    return jsonify(clinic.client_dict(row))


@bp.post("/clients/<int:client_id>/invites")
@practitioner_required
def create_invite(client_id: int):
    """Issue a one-time invite link and QR code; an earlier invite stops working."""
    row = my_client(client_id)
    db = get_db()
    token, expires = clinic.create_invite(db, row, current_user.id, utcnow())
    url = invite_url(token)
    audit.record("invite_issued", client_id=client_id)
    return created(
        {
            "token": token,
            "url": url,
            "expires_at": iso(expires),
            "qr_svg": segno.make(url, error="m").svg_inline(scale=4, title="Invite QR code"),
        }
    )


def invite_url(token: str) -> str:
    base = current_app.config["PUBLIC_URL"] or request.host_url
    return base.rstrip("/") + "/i/" + token


@bp.post("/invites/<token>/redeem")
def redeem_invite(token: str):
    """Sign this phone in as the invited client, for about 90 days."""
    if len(token) > 100:
        raise ApiError(404, "invite_unknown", "This invite link is not valid.")
    clinic.sign_in_with_invite(get_db(), token, utcnow())
    return jsonify(me_payload())


# Treatment sessions ---------------------------------------------------------------------


@bp.get("/clients/<int:client_id>/sessions")
@practitioner_required
def list_sessions(client_id: int):
    row = my_client(client_id)
    audit.record("client_read", client_id=client_id, detail="sessions")
    return jsonify(
        {
            "sessions": [
                clinic.session_dict(s, row["timezone"])
                for s in clinic.list_sessions(get_db(), client_id)
            ]
        }
    )


@bp.post("/clients/<int:client_id>/sessions")
@practitioner_required
def create_session(client_id: int):
    row = my_client(client_id)
    now = utcnow()
    values = clinic.session_fields(body(), now)
    db = get_db()
    with write(db):
        session = clinic.create_session(db, row, current_user.id, values, now)
        audit.record("session_created", client_id=client_id, detail=f"session={session['id']}")
    return created(session_payload(session, row))


def session_payload(session: dict, client: dict) -> dict:
    return clinic.session_dict(
        session, client["timezone"], schedule.session_schedule(get_db(), session["id"])
    )


def my_session(session_id: int) -> tuple[dict, dict]:
    db = get_db()
    session = clinic.get_session(db, session_id, current_user.clinic_id)
    return clinic.load_session(db, session["id"]), my_client(session["client_id"])


@bp.get("/sessions/<int:session_id>")
@practitioner_required
def get_session(session_id: int):
    session, client = my_session(session_id)
    audit.record("client_read", client_id=client["id"], detail=f"session={session_id}")
    return jsonify(session_payload(session, client))


@bp.patch("/sessions/<int:session_id>")
@practitioner_required
def update_session(session_id: int):
    session, client = my_session(session_id)
    now = utcnow()
    values = clinic.session_fields(body(), now, partial=True)
    db = get_db()
    with write(db):
        session = clinic.update_session(db, session, client, values, now)
        audit.record("session_updated", client_id=client["id"], detail=f"session={session_id}")
    return jsonify(session_payload(session, client))


@bp.delete("/sessions/<int:session_id>")
@practitioner_required
def delete_session(session_id: int):
    session, client = my_session(session_id)
    db = get_db()
    with write(db):
        clinic.delete_session(db, session, utcnow())
        audit.record("session_deleted", client_id=client["id"], detail=f"session={session_id}")
    return "", 204


# Protocol -------------------------------------------------------------------------------


@bp.get("/protocol")
@practitioner_required
def get_protocol():
    return jsonify(
        schedule.protocol_dict(schedule.current_protocol(get_db(), current_user.clinic_id))
    )


@bp.put("/protocol")
@practitioner_required
def put_protocol():
    """Replace the clinic's protocol with a new version; sessions keep the version they used."""
    from companion.reminders.protocol import validate_steps

    data = body()
    if not isinstance(data, dict) or set(data) - {"steps"}:
        raise Invalid({"body": 'Expected {"steps": [...]}.'})
    raw = data.get("steps")
    if isinstance(raw, list):
        # "when" is the read-only description GET adds; a GET body can be PUT back as is.
        raw = [
            {k: v for k, v in step.items() if k != "when"} if isinstance(step, dict) else step
            for step in raw
        ]
    steps, errors = validate_steps(raw)
    if errors:
        raise Invalid(errors)
    db = get_db()
    with write(db):
        row = schedule.save_protocol(db, current_user.clinic_id, steps, current_user.id, utcnow())
        audit.record("protocol_changed", detail=f"version={row['version']}")
    return jsonify(schedule.protocol_dict(row))


# Push subscriptions ---------------------------------------------------------------------


@bp.get("/push/vapid-public-key")
def vapid_public_key():
    resp = jsonify({"public_key": current_app.config["VAPID_PUBLIC_KEY"]})
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def signed_in():
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in first.")


@bp.post("/push/subscriptions")
def subscribe():
    """Store this device's push subscription (PushSubscription.toJSON())."""
    signed_in()
    sub, errors = push.validate_subscription(
        body(), allow_private=current_app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"]
    )
    if errors:
        raise Invalid(errors)
    db = get_db()
    now = iso(utcnow())
    agent = request.headers.get("User-Agent", "")[:200]
    with write(db):
        # The same endpoint re-posted (new keys, or a new owner on a shared device)
        # replaces the old row rather than duplicating it.
        db.conn.execute(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " user_agent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(endpoint) DO UPDATE SET owner_kind = excluded.owner_kind,"
            " owner_id = excluded.owner_id, p256dh = excluded.p256dh, auth = excluded.auth,"
            " user_agent = excluded.user_agent, gone_at = NULL",
            (
                current_user.kind,
                current_user.id,
                sub["endpoint"],
                sub["p256dh"],
                sub["auth"],
                agent,
                now,
            ),
        )
        row = one(db, "SELECT * FROM push_subscriptions WHERE endpoint = ?", (sub["endpoint"],))
    return created(subscription_dict(row))


def subscription_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "endpoint": row["endpoint"],
        "created_at": row["created_at"],
        "last_success_at": row["last_success_at"],
        "gone": row["gone_at"] is not None,
        "user_agent": row["user_agent"],
    }


@bp.delete("/push/subscriptions")
def unsubscribe():
    """Forget one of your devices' subscriptions: body {"endpoint": ...} or the toJSON()."""
    signed_in()
    data = body()
    endpoint = data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 2048:
        raise Invalid({"endpoint": "Give the subscription's endpoint."})
    db = get_db()
    with write(db):
        cur = db.conn.execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ? AND owner_kind = ? AND owner_id = ?",
            (endpoint, current_user.kind, current_user.id),
        )
    if cur.rowcount == 0:
        raise not_found("subscription")
    return "", 204


@bp.get("/push/subscriptions")
def my_subscriptions():
    signed_in()
    found = rows(
        get_db(),
        "SELECT * FROM push_subscriptions WHERE owner_kind = ? AND owner_id = ? ORDER BY id",
        (current_user.kind, current_user.id),
    )
    return jsonify({"subscriptions": [subscription_dict(r) for r in found]})


# Aftercare ------------------------------------------------------------------------------


@bp.get("/aftercare")
@client_required
def get_aftercare():
    """Today's instructions, the next reminder, and the reminders already due."""
    from companion.reminders import inbox as aftercare

    db = get_db()
    now = utcnow()
    data = aftercare.overview(db, current_user.row, now)
    data["inbox"] = aftercare.inbox(db, current_user.row, now)
    return jsonify(data)


# Check-ins ------------------------------------------------------------------------------


@bp.post("/checkins")
@client_required
def post_checkin():
    """Report how the skin is healing; a replay of the same id returns the stored answer."""
    from companion.checkins import store as checkins

    now = utcnow()
    values = checkins.checkin_fields(body(), now)
    result, is_new = checkins.submit(get_db(), current_user.row, values, now)
    return jsonify(result), 201 if is_new else 200


@bp.get("/checkins")
def get_checkins():
    """A client's own check-ins; a practitioner passes ?client_id= for one of their clients."""
    from companion.checkins import store as checkins

    signed_in()
    db = get_db()
    if current_user.is_client:
        client_id = current_user.id
    else:
        wanted = parse_id(request.args.get("client_id"))
        if wanted is None:
            raise Invalid({"client_id": "Give the client's id."})
        client_id = my_client(wanted)["id"]
        audit.record("client_read", client_id=client_id, detail="checkins")
    return jsonify({"checkins": checkins.list_for_client(db, client_id)})


@bp.post("/checkins/<checkin_id>/photos")
@client_required
def add_photo(checkin_id: str):
    """Attach a photo (the raw image as the body, Content-Type image/*) to your check-in."""
    from companion.checkins import photos

    if not (request.mimetype or "").startswith("image/"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the photo as the body with Content-Type image/jpeg, image/png, image/webp or image/heic.",
        )
    if (request.content_length or 0) > photos.MAX_BYTES:
        raise ApiError(413, "too_large", "A photo can be at most 15 MB.")
    db = get_db()
    checkin = one(
        db,
        "SELECT id FROM checkins WHERE id = ? AND client_id = ?",
        (checkin_id[:40], current_user.id),
    )
    if checkin is None:
        raise not_found("check-in")
    jpeg, width, height = photos.process(request.get_data())
    with write(db):
        count = one(db, "SELECT count(*) AS n FROM photos WHERE checkin_id = ?", (checkin["id"],))[
            "n"
        ]
        if count >= photos.PER_CHECKIN:
            raise ApiError(409, "too_many_photos", "A check-in can have at most 3 photos.")
        photo_id, rel = photos.save(current_user.id, jpeg)
        db.conn.execute(
            "INSERT INTO photos (id, checkin_id, client_id, filename, width, height,"
            " bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                photo_id,
                checkin["id"],
                current_user.id,
                rel,
                width,
                height,
                len(jpeg),
                iso(utcnow()),
            ),
        )
    return created(
        {
            "id": photo_id,
            "url": f"/api/photos/{photo_id}",
            "width": width,
            "height": height,
            "bytes": len(jpeg),
        }
    )


@bp.get("/photos/<photo_id>")
def get_photo(photo_id: str):
    """A photo, only to its client and their clinic's practitioners."""
    from flask import send_file

    from companion.checkins import photos

    signed_in()
    db = get_db()
    row = one(
        db,
        "SELECT p.*, c.clinic_id FROM photos p JOIN clients c ON c.id = p.client_id WHERE p.id = ?",
        (photo_id[:40],),
    )
    allowed = row is not None and (
        (current_user.is_client and row["client_id"] == current_user.id)
        or (current_user.is_practitioner and row["clinic_id"] == current_user.clinic_id)
    )
    if not allowed:
        raise not_found("photo")
    if current_user.is_practitioner:
        audit.record("client_read", client_id=row["client_id"], detail="photo")
    resp = send_file(photos.folder() / row["filename"], mimetype="image/jpeg", max_age=0)
    resp.headers["Cache-Control"] = "no-store"
    return resp
