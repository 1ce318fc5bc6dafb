"""The phones API: invites that sign a client's phone in, and the phones signed in as a client
(seen and signed out by the clinic)."""

import segno
from flask import Blueprint, current_app, jsonify
from flask_login import current_user

from companion import audit
from companion.accounts import actions, clients, phones
from companion.accounts.api import me_payload
from companion.accounts.models import DeviceList, Invite, InviteInput, Me, SignedOut
from companion.auth import practitioner_required
from companion.contract import operation, parse
from companion.db import get_db, iso, utcnow
from companion.web import body, created, public_url

bp = Blueprint("api_phones", __name__, url_prefix="/api")


@bp.post("/clients/<int:client_id>/invites")
@operation(
    "Issue a one-time invite (revokes earlier ones); optionally sign the client's phones out",
    tag="practitioner",
    ok=201,
    reply=Invite,
    body=InviteInput,
    errors=(400, 401, 403, 404, 409, 415, 422),
)
@practitioner_required
def create_invite(client_id: int):
    """Issue a one-time invite link and QR code; an earlier invite stops working."""
    db = get_db()
    row = clients.get_client(db, client_id, current_user.clinic_id)
    values = parse(InviteInput, body())
    now = utcnow()
    url_for_token = public_url("/i/")  # before anything is written: 409 without PUBLIC_URL
    token, expires = actions.invite_client(
        db,
        current_user,
        row,
        now,
        current_app.config["INVITE_DAYS"],
        bool(values.get("sign_out_devices")),
    )
    url = url_for_token + token
    left = phones.live_devices(db, client_id, now, current_app.config["CLIENT_IDLE_DAYS"])
    return created(
        {
            "token": token,
            "url": url,
            "expires_at": iso(expires),
            "qr_svg": segno.make(url, error="m").svg_inline(scale=4, title="Invite QR code"),
            "devices_signed_in": len(left),
        }
    )


@bp.post("/invites/<token>/redeem")
@operation(
    "Sign this phone in as the invited client",
    tag="client",
    reply=Me,
    errors=(404, 410),
    public=True,
)
def redeem_invite(token: str):
    """Sign this phone in as the invited client, for about 90 days."""
    actions.sign_in_with_invite(get_db(), token, utcnow())
    return jsonify(me_payload())


@bp.get("/clients/<int:client_id>/devices")
@operation(
    "The phones signed in as a client: device, first and last seen",
    tag="practitioner",
    reply=DeviceList,
    errors=(401, 403, 404),
)
@practitioner_required
def list_devices(client_id: int):
    db = get_db()
    clients.get_client(db, client_id, current_user.clinic_id)
    audit.record("client_read", client_id=client_id, detail="devices")
    found = phones.live_devices(db, client_id, utcnow(), current_app.config["CLIENT_IDLE_DAYS"])
    return jsonify({"devices": [phones.device_dict(d) for d in found]})


@bp.delete("/clients/<int:client_id>/devices/<device_id>")
@operation("Sign one of a client's phones out", tag="practitioner", ok=204, errors=(401, 403, 404))
@practitioner_required
def sign_out_device(client_id: int, device_id: str):
    db = get_db()
    client = clients.get_client(db, client_id, current_user.clinic_id)
    actions.sign_out_phones(db, current_user, client, device_id[:64], utcnow())
    return "", 204


@bp.delete("/clients/<int:client_id>/devices")
@operation(
    "Sign every phone of a client out", tag="practitioner", reply=SignedOut, errors=(401, 403, 404)
)
@practitioner_required
def sign_out_all_devices(client_id: int):
    db = get_db()
    client = clients.get_client(db, client_id, current_user.clinic_id)
    ended = actions.sign_out_phones(db, current_user, client, None, utcnow())
    return jsonify({"signed_out": ended})
