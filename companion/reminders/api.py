"""The reminders API: the clinic's protocol, push subscriptions, and the client's aftercare."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from companion import audit
from companion.auth import client_required, practitioner_required, signed_in
from companion.db import get_db, utcnow, write
from companion.errors import Invalid
from companion.reminders import devices, push
from companion.reminders import inbox as aftercare
from companion.reminders import outbox as schedule
from companion.reminders.protocol import validate_steps
from companion.web import body, created

bp = Blueprint("api_reminders", __name__, url_prefix="/api")


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


@bp.post("/push/subscriptions")
def subscribe():
    """Store this device's push subscription (PushSubscription.toJSON())."""
    signed_in()
    sub, errors = push.validate_subscription(
        body(), allow_private=current_app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"]
    )
    if errors:
        raise Invalid(errors)
    agent = request.headers.get("User-Agent", "")[:200]
    row = devices.subscribe(get_db(), current_user.kind, current_user.id, sub, agent, utcnow())
    return created(devices.subscription_dict(row))


@bp.delete("/push/subscriptions")
def unsubscribe():
    """Forget one of your devices' subscriptions: body {"endpoint": ...} or the toJSON()."""
    signed_in()
    data = body()
    endpoint = data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 2048:
        raise Invalid({"endpoint": "Give the subscription's endpoint."})
    devices.unsubscribe(get_db(), current_user.kind, current_user.id, endpoint)
    return "", 204


@bp.get("/push/subscriptions")
def my_subscriptions():
    signed_in()
    found = devices.subscriptions(get_db(), current_user.kind, current_user.id)
    return jsonify({"subscriptions": [devices.subscription_dict(r) for r in found]})


# Aftercare ------------------------------------------------------------------------------


@bp.get("/aftercare")
@client_required
def get_aftercare():
    """Today's instructions, the next reminder, and the reminders already due."""
    db = get_db()
    now = utcnow()
    data = aftercare.overview(db, current_user.row, now)
    data["inbox"] = aftercare.inbox(db, current_user.row, now)
    return jsonify(data)
