"""The reminders API: the clinic's protocol, push subscriptions, and the client's aftercare."""

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user

from companion.accounts.clients import get_client
from companion.auth import client_required, owner_required, practitioner_required, signed_in
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.errors import Invalid
from companion.reminders import actions, calendar, devices, protocol_store, push
from companion.reminders import inbox as aftercare
from companion.reminders.models import (
    Aftercare,
    CalendarLinks,
    EndpointInput,
    Protocol,
    ProtocolInput,
    PushSubscriptionInput,
    Subscription,
    SubscriptionList,
    VapidKey,
)
from companion.reminders.protocol import validate_steps
from companion.sessions import hash_token
from companion.web import body, created, installation_url

bp = Blueprint("api_reminders", __name__, url_prefix="/api")


# Protocol -------------------------------------------------------------------------------


@bp.get("/protocol")
@operation(
    "Your clinic's aftercare protocol", tag="practitioner", reply=Protocol, errors=(401, 403)
)
@practitioner_required
def get_protocol():
    return jsonify(
        protocol_store.protocol_dict(
            protocol_store.current_protocol(get_db(), current_user.clinic_id)
        )
    )


@bp.put("/protocol")
@operation(
    "Replace the protocol with a new version (owners only)",
    tag="practitioner",
    reply=Protocol,
    body=ProtocolInput,
    errors=(400, 401, 403, 415, 422),
)
@owner_required
def put_protocol():
    """Replace the clinic's protocol with a new version; sessions keep the version they used."""
    data = body()
    # GET's read-only id, version and created_at (and each step's "when") are ignored, so a
    # protocol as GET answers it can be PUT back as is.
    if not isinstance(data, dict) or set(data) - {"steps", "id", "version", "created_at"}:
        raise Invalid({"body": 'Expected {"steps": [...]}.'})
    steps, errors = validate_steps(data.get("steps"))
    if errors:
        raise Invalid(errors)
    row = actions.change_protocol(get_db(), current_user, steps, utcnow())
    return jsonify(protocol_store.protocol_dict(row))


# Push subscriptions ---------------------------------------------------------------------


@bp.get("/push/vapid-public-key")
@operation("The VAPID application server key", tag="push", reply=VapidKey, errors=(), public=True)
def vapid_public_key():
    resp = jsonify({"public_key": current_app.config["VAPID_PUBLIC_KEY"]})
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.post("/push/subscriptions")
@operation(
    "Store this device's PushSubscription.toJSON()",
    tag="push",
    ok=201,
    reply=Subscription,
    body=PushSubscriptionInput,
    errors=(400, 401, 415, 422),
    extra={
        "also_ok": (200,),
        "ok_words": {201: "Stored a new endpoint", 200: "The endpoint was already stored: updated"},
    },
)
def subscribe():
    """Store this device's push subscription (PushSubscription.toJSON()): 201 when the endpoint
    is new; 200 when it was already stored (the browser posts it again on every page that checks
    it, and after pushsubscriptionchange): the same row, with these keys and this owner."""
    signed_in()
    sub, errors = push.validate_subscription(
        body(), allow_private=current_app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"]
    )
    if errors:
        raise Invalid(errors)
    agent = request.headers.get("User-Agent", "")[:200]
    signed_in_as = hash_token(current_user.session_id) if current_user.is_client else None
    row, new = devices.subscribe(
        get_db(), current_user.kind, current_user.id, sub, agent, utcnow(), signed_in_as
    )
    return created(devices.subscription_dict(row), 201 if new else 200)


@bp.delete("/push/subscriptions")
@operation(
    "Forget a subscription by endpoint",
    tag="push",
    ok=204,
    body=EndpointInput,
    errors=(400, 401, 404, 415, 422),
)
def unsubscribe():
    """Forget one of your devices' subscriptions: body {"endpoint": ...} or the toJSON()."""
    signed_in()
    data = body()
    # Anything but an object has no endpoint: the same answer as a missing one.
    endpoint = parse(EndpointInput, data if isinstance(data, dict) else {})["endpoint"]
    devices.unsubscribe(get_db(), current_user.kind, current_user.id, endpoint)
    return "", 204


@bp.get("/push/subscriptions")
@operation("Your devices' subscriptions", tag="push", reply=SubscriptionList)
def my_subscriptions():
    signed_in()
    found = devices.subscriptions(get_db(), current_user.kind, current_user.id)
    return jsonify({"subscriptions": [devices.subscription_dict(r) for r in found]})


# Aftercare ------------------------------------------------------------------------------


@bp.get("/aftercare")
@operation(
    "Today's instructions, the next reminder and all upcoming ones (due order), the latest"
    " session's past ones, and the inbox of due reminders",
    tag="client",
    reply=Aftercare,
    errors=(401, 403),
)
@client_required
def get_aftercare():
    """Today's instructions, the next reminder, and the reminders already due."""
    db = get_db()
    now = utcnow()
    data = aftercare.overview(db, current_user.row, now)
    data["inbox"] = aftercare.inbox(db, current_user.row, now)
    data |= calendar.client_links(db, current_user.row, installation_url())
    return jsonify(data)


# Calendar feed --------------------------------------------------------------------------


@bp.post("/calendar/reset")
@operation(
    "Give your calendar feed a new address; the old one stops working",
    tag="client",
    reply=CalendarLinks,
    errors=(401, 403),
)
@client_required
def reset_my_calendar():
    db = get_db()
    token = actions.reset_calendar(db, current_user, current_user.row)
    current_user.row["calendar_token"] = token
    return jsonify(calendar.client_links(db, current_user.row, installation_url()))


@bp.post("/clients/<int:client_id>/calendar/reset")
@operation(
    "Give a client's calendar feed a new address (a lost or shared phone)",
    tag="practitioner",
    reply=CalendarLinks,
    errors=(401, 403, 404),
)
@practitioner_required
def reset_client_calendar(client_id: int):
    db = get_db()
    client = get_client(db, client_id, current_user.clinic_id)
    client["calendar_token"] = actions.reset_calendar(db, current_user, client)
    return jsonify(calendar.client_links(db, client, installation_url()))
