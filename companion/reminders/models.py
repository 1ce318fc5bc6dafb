"""The reminders API contract: the clinic's protocol, push subscriptions, the client's aftercare.

A protocol's steps are validated by ProtocolInput, declared with the protocol in
reminders/protocol.py (its errors name paths such as steps[2].at.time) and used here for
the document. A push subscription is checked by `push.validate_subscription`; the models
here describe the same rules for the document.
"""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from companion.contract import Reply
from companion.reminders.protocol import KINDS, AfterHours, OnDay, ProtocolInput, StepInput
from companion.reminders.push import MAX_ENDPOINT_LENGTH
from companion.treatments.models import Session

# The request models are declared with the protocol they validate; the API imports them here.
__all__ = ["AfterHours", "OnDay", "ProtocolInput", "StepInput"]

StepKind = Literal[KINDS]  # type: ignore[valid-type]
HHMM = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Step(Reply):
    """A step as GET answers it: the stored StepInput plus "when" (read-only; PUT drops it)."""

    key: str
    title: str
    body: str
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


class SubscriptionKeys(Reply):
    p256dh: str = Field(description="base64url, a 65-byte uncompressed P-256 point")
    auth: str = Field(description="base64url, 16 bytes")


class PushSubscriptionInput(Reply):
    """PushSubscription.toJSON() as the browser gives it (fields a browser adds are ignored)."""

    model_config = ConfigDict(extra="allow")

    endpoint: str = Field(max_length=MAX_ENDPOINT_LENGTH, json_schema_extra={"format": "uri"})
    expirationTime: float | None = Field(default=None)  # noqa: N815 (the browser's name)
    keys: SubscriptionKeys


class EndpointInput(Reply):
    """{"endpoint": ...}, or the whole PushSubscription.toJSON()."""

    model_config = ConfigDict(extra="allow")
    endpoint: str = Field(min_length=1, max_length=MAX_ENDPOINT_LENGTH)


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


class Aftercare(Reply):
    session: Session | None
    day: int | None
    today: list[Reminder]
    next: Reminder | None
    past: list[Reminder]
    inbox: list[Reminder]
