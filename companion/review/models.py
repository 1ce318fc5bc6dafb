"""The review API contract: the flag queue, a flag's history, notes, exports and the audit log."""

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from companion.clinical import FLAG_STATUSES, RULES, FlagStatus, Severity
from companion.contract import Body, Query, Reply, Text

RuleId = Literal[tuple(RULES)]  # type: ignore[valid-type]
QueueStatus = Literal[("active", *FLAG_STATUSES, "all")]  # type: ignore[valid-type]
POSITIVE = {"type": "string", "pattern": "^0*[1-9][0-9]{0,17}$"}


class NoteInput(Body):
    note: Text(2000, required=False)


class Latest(Reply):
    taken_at: datetime
    redness: int
    swelling: int


class FlagEvent(Reply):
    at: datetime
    actor_kind: str
    actor_id: int | None
    action: str
    severity: Severity | None
    reason: str | None
    note: str | None


class Flag(Reply):
    id: int
    rule: RuleId
    severity: Severity
    status: FlagStatus
    client_id: int
    session_id: int | None
    checkin_id: str | None
    reason: str
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    called_at: datetime | None
    resolved_at: datetime | None
    note: str | None
    client_name: str = Field(default=None)
    # In the queue only: the session and the latest check-in at a glance.
    performed_at: datetime = Field(default=None)
    hours_since_session: float | None = Field(default=None)
    latest: Latest | None = Field(default=None)
    photo_url: str | None = Field(default=None)


class FlagWithEvents(Flag):
    events: list[FlagEvent]


class Counts(Reply):
    urgent: int
    review: int
    info: int


class FlagQueue(Reply):
    flags: list[Flag]
    counts: Counts


class AuditEntry(Reply):
    id: int
    at: datetime
    clinic_id: int | None
    actor_kind: str | None
    actor_id: int | None
    action: str
    client_id: int | None
    detail: str | None
    address: str | None


class AuditLog(Reply):
    entries: list[AuditEntry]


class FlagFilter(Query):
    status: QueueStatus = "active"
    severity: Severity = Field(default=None)
    practitioner_id: int = Field(default=None, ge=1, le=10**18 - 1)
    client_id: int = Field(default=None, ge=1, le=10**18 - 1)
    limit: int = Field(default=None, ge=1, le=10**18 - 1)


class ExportFormat(Query):
    format: Literal["json", "csv", "fhir"] = "json"


class DayRange(Query):
    from_: date = Field(default=None, alias="from", description="Inclusive")
    to: date = Field(default=None, description="Exclusive")


class AuditFilter(Query):
    client_id: int = Field(default=None, ge=1, le=10**18 - 1)
    before: int = Field(default=None, ge=1, le=10**18 - 1)
