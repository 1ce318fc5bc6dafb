"""The review API contract: the flag queue, a flag's history, notes, exports and the audit log."""

from datetime import UTC, date, datetime
from typing import Literal

from pydantic import Field

from companion.clinical import FLAG_STATUSES, RULES, SEVERITIES_DESC, FlagStatus, Severity
from companion.contract import Body, Custom, Id, OneOf, Param, Query, Reply, Text, fail
from companion.converters import MAX_ID

RuleId = Literal[tuple(RULES)]  # type: ignore[valid-type]
# The review queue's ?status=: "active" (open or acknowledged), one status, or all of them.
QUEUE_STATUSES = ("active", *FLAG_STATUSES, "all")


class NoteInput(Body):
    note: Text(2000, required=False)


class ResolveInput(Body):
    """A resolution says how it was resolved: the next person reads it, not a blank."""

    note: Text(2000)


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
    hours_since_session: float | None = Field(
        default=None, description="Hours from the session to now, to one decimal."
    )
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


class Person(Reply):
    id: int
    name: str


class Resolution(Reply):
    note: str | None
    by: Person | None
    at: datetime


class Recovery(Reply):
    """A client's session with its flags: the unit a practitioner reviews."""

    session_id: int | None
    client_id: int
    client_name: str
    severity: Severity
    status: FlagStatus
    flags: list[Flag]
    waiting_since: datetime
    handled_by: Person | None
    handled_since: datetime | None
    called_at: datetime | None
    performed_at: datetime | None
    days_since_session: int | None
    latest: Latest | None
    photo_url: str | None
    resolution: Resolution | None


class RecoveryQueue(Reply):
    recoveries: list[Recovery]
    counts: Counts


class QueueSummary(Reply):
    counts: Counts
    version: str


def _flag_id(v) -> bool:
    """A whole number in range: JSON's 7.0 is the integer 7 (as Number(integer=True) reads it)."""
    whole = type(v) is int or type(v) is float and v.is_integer()
    return whole and 1 <= v <= MAX_ID


def _flag_ids(value) -> list[int]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 50
        or not all(_flag_id(v) for v in value)
    ):
        raise fail("Must be a list of 1 to 50 flag ids.")
    return [int(v) for v in value]


# The flags the practitioner saw: a flag that arrived since is left open, not acted on unseen.
FlagIds = Custom(
    _flag_ids,
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "minItems": 1,
        "maxItems": 50,
    },
    required=False,
    base=list[int],
)


class RecoveryInput(Body):
    note: Text(2000, required=False)
    flag_ids: FlagIds


class RecoveryResolveInput(Body):
    note: Text(2000)
    flag_ids: FlagIds


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
    status: OneOf(QUEUE_STATUSES, default="active")
    severity: OneOf(SEVERITIES_DESC, blank=True)
    practitioner_id: Id()
    client_id: Id()
    limit: Id(cap=1000, default=200, description="At most 1000")


class ExportFormat(Query):
    format: OneOf(("json", "csv", "fhir"), default="json")


def stored_moment(moment: datetime) -> str:
    """A moment as stored text (UTC). isoformat pads the year to four digits (strftime's %Y
    does not), so text order holds; OverflowError past the years 1-9999 in UTC."""
    utc = moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _day_bound(text: str) -> date | datetime | None:
    """Read an export's bound: a date, or a date-time (with its offset, or without: the clinic's
    wall clock). review/api.py places them in the clinic's time zone. None when empty."""
    if not text:
        return None
    try:
        if "T" not in text:
            return datetime.fromisoformat(text + "T00:00:00").date()
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail("Not a date.") from None


_DAY = {"type": "string", "format": "date"}
_DAY_WORDS = (
    "a date is that day's midnight in the clinic's time zone; a date-time with an offset is"
    " that moment, one without is the clinic's wall clock"
)


class DayRange(Query):
    invalid_message = "Dates must be ISO 8601, e.g. 2026-05-01."
    from_: Param(_day_bound, _DAY, alias="from", description=f"Inclusive; {_DAY_WORDS}")
    to: Param(_day_bound, _DAY, description=f"Exclusive; {_DAY_WORDS}")


class AuditFilter(Query):
    client_id: Id()
    before: Id()
