"""The reminders API contract: the clinic's protocol, push subscriptions, the client's aftercare.

A protocol's steps are validated by ProtocolInput, declared with the protocol in
reminders/protocol.py (its errors name paths such as steps[2].at.time) and used here for
the document. A push subscription is validated by PushSubscriptionInput below (the
endpoint's address check stays in push.py; whether private addresses are allowed comes
through the validation context).
"""

from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ConfigDict, Field
from pydantic_core import PydanticCustomError

from companion.contract import ABSENT, Body, Custom, Reply, fail, parse
from companion.contract.core import LINK, Spec, field_type
from companion.errors import N_, Invalid
from companion.reminders.protocol import KINDS, AfterHours, OnDay, ProtocolInput, StepInput
from companion.reminders.push import MAX_ENDPOINT_LENGTH, _b64url_decode, _check_endpoint, b64url
from companion.treatments.models import Session

# The request models are declared with the protocol they validate; the API imports them here.
__all__ = ["AfterHours", "OnDay", "ProtocolInput", "StepInput"]

StepKind = Literal[KINDS]  # type: ignore[valid-type]
HHMM = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


class StepTexts(Reply):
    """A step's text by language; a client in a language not given gets the English."""

    en: str
    es: str = Field(default=None)


class Step(Reply):
    """A step as GET answers it: the stored StepInput plus "when" (read-only; PUT drops it)."""

    key: str
    title: str | StepTexts = Field(description="One text for every language, or one per language")
    body: str | StepTexts = Field(description="One text for every language, or one per language")
    kind: StepKind
    at: AfterHours | OnDay
    valid_hours: float | None = Field(default=None)
    min_gap_hours: float = Field(default=None)
    when: str = Field(default=None, description="The step's timing in words")


class Protocol(Reply):
    id: int
    version: int
    created_at: datetime
    steps: list[Step]


def _p256dh(value: Any, context: dict) -> str:
    point = _b64url_decode(value) if isinstance(value, str) else None
    if point is None:
        raise fail(N_("keys.p256dh must be a base64url string"))
    if len(point) != 65 or point[0] != 4:
        raise fail(N_("keys.p256dh must be a 65-byte uncompressed P-256 point"))
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise fail(N_("keys.p256dh is not a point on the P-256 curve")) from None
    return b64url(point)


def _auth(value: Any, context: dict) -> str:
    secret = _b64url_decode(value) if isinstance(value, str) else None
    if secret is None:
        raise fail(N_("keys.auth must be a base64url string"))
    if len(secret) != 16:
        raise fail(N_("keys.auth must decode to exactly 16 bytes"))
    return b64url(secret)


def _key_field(check, description: str) -> Any:
    # A missing key gets the same message as a wrong one, as the browser's toJSON() has both.
    spec = Spec(check, absent_checked=True)
    return field_type(str, spec, {"type": "string", "description": description})


class SubscriptionKeys(Body):
    """The subscription's keys; both are returned re-encoded as unpadded base64url."""

    model_config = ConfigDict(extra="allow")

    p256dh: _key_field(_p256dh, "base64url, a 65-byte uncompressed P-256 point")
    auth: _key_field(_auth, "base64url, 16 bytes")


def _endpoint(value: Any, context: dict) -> str:
    # Private addresses are refused unless the app allows them: parse(context=allow_private).
    problem = _check_endpoint(
        None if value is ABSENT else value, context.get("allow_private", False)
    )
    if problem:
        raise fail(problem)
    return value


def _expiration(value: Any, context: dict) -> float | None:
    if value is ABSENT or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(N_("expirationTime must be null or a number"))
    return value


def _keys(value: Any, context: dict) -> dict:
    if not isinstance(value, dict):
        raise fail(N_("keys must be an object with p256dh and auth"))
    try:
        return parse(SubscriptionKeys, value)
    except Invalid as error:
        raise PydanticCustomError("nested", "nested", {"fields": error.fields}) from None


class PushSubscriptionInput(Body):
    """PushSubscription.toJSON() as the browser gives it (fields a browser adds are ignored)."""

    model_config = ConfigDict(extra="allow")

    endpoint: field_type(
        str,
        Spec(_endpoint, absent_checked=True),
        {"type": "string", "maxLength": MAX_ENDPOINT_LENGTH, "format": "uri"},
    )
    expirationTime: field_type(  # noqa: N815 (the browser's name)
        float, Spec(_expiration, required=False, absent_checked=True), {"type": "number"}
    )
    keys: field_type(dict, Spec(_keys, absent_checked=True), {LINK: "SubscriptionKeys"})


def _endpoint_given(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ENDPOINT_LENGTH:
        raise fail(N_("Give the subscription's endpoint."))
    return value


class EndpointInput(Body):
    """{"endpoint": ...}, or the whole PushSubscription.toJSON()."""

    model_config = ConfigDict(extra="allow")

    endpoint: Custom(
        _endpoint_given,
        {"type": "string", "minLength": 1, "maxLength": MAX_ENDPOINT_LENGTH},
        base=str,
        absent_checked=True,
    )


class Subscription(Reply):
    id: int
    endpoint: str
    created_at: datetime
    last_success_at: datetime | None
    gone: bool
    user_agent: str | None


class SubscriptionList(Reply):
    subscriptions: list[Subscription]


class VapidKey(Reply):
    public_key: str


class Reminder(Reply):
    id: int
    kind: str
    title: str
    body: str
    url: str
    due_at: datetime
    status: str
    session_id: int | None


class CalendarLinks(Reply):
    """A client's private calendar feed: null when this installation's address is not known
    (set COMPANION_PUBLIC_URL)."""

    calendar_url: str | None
    webcal_url: str | None
    google_calendar_url: str | None


class Aftercare(Reply):
    session: Session | None
    day: int | None
    today: list[Reminder]
    next: Reminder | None
    upcoming: list[Reminder]
    past: list[Reminder]
    inbox: list[Reminder]
    calendar_url: str | None
    webcal_url: str | None
    google_calendar_url: str | None
