"""The reminders API contract: the clinic's protocol, push subscriptions, the client's aftercare.

A protocol's steps and a push subscription are checked by their domain validators
(`protocol.validate_steps`, `push.validate_subscription`), whose errors name nested paths
such as steps[2].at.time; the models here describe the same rules for the document.
"""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from companion.contract import Reply
from companion.reminders.protocol import KINDS, MAX_DAY, MAX_HOURS, MAX_STEPS
from companion.reminders.push import MAX_ENDPOINT_LENGTH
from companion.treatments.models import Session

StepKind = Literal[KINDS]  # type: ignore[valid-type]
HHMM = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


class AfterHours(Reply):
    offset_hours: float = Field(ge=0, le=MAX_HOURS)


class OnDay(Reply):
    day: int = Field(ge=0, le=MAX_DAY)
    time: str = Field(pattern=HHMM)


class StepInput(Reply):
    key: str = Field(pattern="^[a-z0-9][a-z0-9-]{0,39}$")
    title: str = Field(min_length=1, max_length=60, pattern="^[^\\u0000-\\u001f]*\\S")
    body: str = Field(max_length=300, pattern="^[^\\u0000-\\u0008\\u000b-\\u001f]*$")
    kind: StepKind
    at: AfterHours | OnDay
    valid_hours: float = Field(default=None, gt=0, le=MAX_HOURS)
    min_gap_hours: float = Field(default=None, ge=0, le=MAX_HOURS)


class ProtocolInput(Reply):
    steps: list[StepInput] = Field(min_length=1, max_length=MAX_STEPS)


class Step(StepInput):
    # Read-only: a GET body can be PUT back as it is (the route drops "when").
    when: str = Field(default=None, description="The step's timing in words")
    valid_hours: float | None = Field(default=None)


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
