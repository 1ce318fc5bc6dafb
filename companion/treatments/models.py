"""The treatment-session API contract: a session's record and its planned reminders."""

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from companion.contract import Body, Choice, Moment, Number, Reply, Text, TextList

DEVICES = ("pen", "roller")
NOTIFICATION_STATUSES = Literal["pending", "leased", "sent", "skipped", "failed", "cancelled"]


class SessionInput(Body):
    performed_at: Moment(
        max_ahead=timedelta(days=1),
        ahead_message="A session cannot be more than a day in the future.",
    )
    areas: TextList(min_items=1, max_items=10, max_len=60)
    needle_depth_mm: Number(0.1, 3.0)
    device: Choice(DEVICES)
    products: TextList(required=False, max_items=10, max_len=80)
    notes: Text(4000, required=False)


class ScheduleRow(Reply):
    """A planned reminder of a session and how its delivery went."""

    id: int
    step_key: str | None
    kind: str
    title: str
    due_at: datetime
    expires_at: datetime
    status: NOTIFICATION_STATUSES
    status_reason: str | None
    attempts: int
    sent_at: datetime | None
    delivered_to: int  # push devices
    emailed: bool  # delivered by email (the client's channels, or push's fallback)


class Session(Reply):
    id: int
    client_id: int
    clinic_id: int
    practitioner_id: int | None
    performed_at: datetime
    areas: list[str]
    needle_depth_mm: float
    device: str
    products: list[str]
    notes: str | None
    protocol_id: int | None
    protocol_version: int | None
    created_at: datetime
    updated_at: datetime | None
    # Only where one session is shown (GET/POST/PATCH of a session).
    schedule: list[ScheduleRow] = Field(default=None)


class SessionList(Reply):
    sessions: list[Session]
