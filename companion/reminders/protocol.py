"""Aftercare protocols as data, and planning one session's reminders from them.

Source of the default protocol, quiet hours and validity rules:
clinical/aftercare.md, "Default protocol". Everything here is pure: time is an
argument, and results are plain dicts with aware UTC datetimes.
"""

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("instruction", "checkin", "recall")
# Product defaults (not from the literature): how long after its due time a step
# is still worth sending. Used for the push TTL and to skip steps planned too late.
DEFAULT_VALID_HOURS = {"instruction": 12, "checkin": 24, "recall": 72}
DEFAULT_QUIET_HOURS = ("21:00", "08:00")
MAX_STEPS = 100
MAX_DAY = 120
MAX_HOURS = 24 * MAX_DAY
STEP_FIELDS = {"key", "title", "body", "kind", "at", "valid_hours", "min_gap_hours"}

SKIP_BEFORE_SESSION = "before the session"
SKIP_PAST_VALIDITY = "past its validity window when planned"

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


_CHECKIN = "How is your skin? Tap to rate redness and swelling. It takes under 2 minutes."
_SUNSCREEN = (
    "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or peeling "
    "can happen; it is usually mild and passes. Keep moisturising."
)
# clinical/aftercare.md, "Default protocol", expanded into one step per reminder.
# fmt: off
_DEFAULT_TABLE = [
    # key, kind, when, title, body
    ("after-session", "instruction", {"offset_hours": 0}, "Caring for your skin today",
     "Redness and slight swelling, like a mild sunburn, are normal and usually settle within "
     "a few days. No makeup for at least 24 hours. Cleanse gently and keep your skin "
     "moisturised. Contact your clinic about any signs of infection."),
    ("evening-routine", "instruction", {"day": 0, "time": "19:00"}, "Your evening skin routine",
     "Cleanse gently with a mild, hydrating cleanser, then apply your moisturiser and the "
     "soothing serum your practitioner gave you."),
    ("day1-morning", "instruction", {"day": 1, "time": "08:30"}, "Good morning: sunscreen today",
     "Put on a broad-spectrum sunscreen and avoid direct sun. No makeup until a full 24 hours "
     "have passed since your session."),
    ("24h-checkin", "checkin", {"offset_hours": 24}, "How is your skin today?", _CHECKIN),
    *((f"day{day}-checkin", "checkin", {"day": day, "time": "18:00"},
       f"Day {day}: how is your skin?", _CHECKIN) for day in (2, 3, 5, 7)),
    *((f"day{day}-sunscreen", "instruction", {"day": day, "time": "08:30"},
       "Sunscreen reminder", _SUNSCREEN) for day in range(2, 8)),
    ("book-next-session", "recall", {"day": 28, "time": "10:00"}, "Time to book your next session",
     "Results build over weeks as new collagen forms. A course is usually 3-6 sessions, 4-6 "
     "weeks apart. Contact your clinic to book your next one."),
]
# fmt: on
DEFAULT_STEPS: list[dict] = [
    {"key": key, "title": title, "body": body, "kind": kind, "at": at}
    | {"valid_hours": DEFAULT_VALID_HOURS[kind]}
    # Skip the same-day evening routine when the session ran late (reference table).
    | ({"min_gap_hours": 1} if key == "evening-routine" else {})
    for key, kind, at, title, body in _DEFAULT_TABLE
]


def parse_hhmm(text: str) -> time:
    """Parse a 24-hour "HH:MM" into a time, or raise ValueError with a message."""
    match = _HHMM.fullmatch(text)
    if not match:
        raise ValueError("use HH:MM, 24-hour, e.g. 18:00")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError("must be a time between 00:00 and 23:59")
    return time(hour, minute)


def _hours(value: float) -> str:
    return f"{value:g} h"


def describe_at(at: dict) -> str:
    """Describe when a step is due, for the UI."""
    if "offset_hours" in at:
        hours = at["offset_hours"]
        return "right after the session" if hours == 0 else f"{_hours(hours)} after the session"
    if at["day"] == 0:
        return f"same day, {at['time']}"
    return f"day {at['day']}, {at['time']}"


def _number(value: object, path: str, errors: dict, low: float, *, open_low: bool = False):
    # bool is an int subclass; True as "1 hour" is almost certainly a client bug.
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors[path] = "must be a number"
    elif not math.isfinite(value):
        errors[path] = "must be a finite number"
    elif value < low or (open_low and value == low) or value > MAX_HOURS:
        low_text = f"more than {low:g}" if open_low else f"at least {low:g}"
        errors[path] = f"must be {low_text} and at most {MAX_HOURS}"
    else:
        return value
    return None


def _text(raw: dict, field: str, path: str, errors: dict, max_len: int, *, empty: bool = False):
    value = raw.get(field)
    if field not in raw:
        errors[path] = "is required"
    elif not isinstance(value, str):
        errors[path] = "must be a string"
    elif not (value := value.strip()) and not empty:
        errors[path] = "must not be empty"
    elif len(value) > max_len:
        errors[path] = f"must be at most {max_len} characters"
    elif (
        "\x00" in value
        or not value.isprintable()
        and any(ord(c) < 0x20 and c not in "\n\t" for c in value)
    ):
        errors[path] = "must not contain control characters"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors[path] = "must be valid Unicode text"
            return None
        return value
    return None


def _validate_at(at: object, path: str, errors: dict) -> dict | None:
    if not isinstance(at, dict):
        errors[path] = 'must be {"offset_hours": n} or {"day": n, "time": "HH:MM"}'
        return None
    allowed = {"offset_hours"} if "offset_hours" in at else {"day", "time"}
    for field in sorted(map(str, at.keys() - allowed)):
        errors[f"{path}.{field}"] = "unknown field (use offset_hours alone, or day and time)"
    if "offset_hours" in at:
        hours = _number(at["offset_hours"], f"{path}.offset_hours", errors, 0)
        return {"offset_hours": hours}
    day = at.get("day")
    if "day" not in at:
        errors[f"{path}.day"] = "is required"
    elif isinstance(day, bool) or not isinstance(day, int):
        errors[f"{path}.day"] = "must be a whole number"
    elif not 0 <= day <= MAX_DAY:
        errors[f"{path}.day"] = f"must be between 0 and {MAX_DAY}"
    clock = _text(at, "time", f"{path}.time", errors, 5)
    if clock is not None:
        try:
            parse_hhmm(clock)
        except ValueError as error:
            errors[f"{path}.time"] = str(error)
    return {"day": day, "time": clock}


def _validate_step(raw: object, path: str, errors: dict) -> dict | None:
    if not isinstance(raw, dict):
        errors[path] = "must be an object"
        return None
    before = len(errors)
    for field in sorted(map(str, raw.keys() - STEP_FIELDS)):
        errors[f"{path}.{field}"] = "unknown field"
    key = _text(raw, "key", f"{path}.key", errors, 40)
    if key is not None and not _KEY.fullmatch(key):
        errors[f"{path}.key"] = "use lowercase letters, digits and hyphens"
    step = {
        "key": key,
        "title": _text(raw, "title", f"{path}.title", errors, 60),
        "body": _text(raw, "body", f"{path}.body", errors, 300, empty=True),
        "kind": _text(raw, "kind", f"{path}.kind", errors, 20),
        "at": _validate_at(raw.get("at"), f"{path}.at", errors),
    }
    if step["kind"] is not None and step["kind"] not in KINDS:
        errors[f"{path}.kind"] = f"must be one of {', '.join(KINDS)}"
    if "valid_hours" in raw:
        step["valid_hours"] = _number(
            raw["valid_hours"], f"{path}.valid_hours", errors, 0, open_low=True
        )
    else:
        step["valid_hours"] = DEFAULT_VALID_HOURS.get(step["kind"])
    if "min_gap_hours" in raw:
        step["min_gap_hours"] = _number(raw["min_gap_hours"], f"{path}.min_gap_hours", errors, 0)
    return step if len(errors) == before else None


def validate_steps(steps: object) -> tuple[list[dict], dict[str, str]]:
    """Check and normalise a protocol's steps; return them and errors by field path.

    When there are errors the returned list is empty, so a caller cannot use half
    of a bad protocol by mistake.
    """
    if not isinstance(steps, list):
        return [], {"steps": "must be a list of steps"}
    if not steps:
        return [], {"steps": "add at least one step"}
    if len(steps) > MAX_STEPS:
        return [], {"steps": f"must have at most {MAX_STEPS} steps"}
    errors: dict[str, str] = {}
    clean: list[dict] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(steps):
        step = _validate_step(raw, f"steps[{index}]", errors)
        if step is None:
            continue
        if step["key"] in first_index:
            errors[f"steps[{index}].key"] = (
                f"duplicate key {step['key']!r} (also steps[{first_index[step['key']]}])"
            )
        first_index.setdefault(step["key"], index)
        clean.append(step)
    return ([] if errors else clean), errors


def local_time(dt_utc: datetime, tz: str) -> datetime:
    """Convert an aware datetime to the wall clock of a time zone."""
    return dt_utc.astimezone(ZoneInfo(tz))


def _wall_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """Return the instant a wall clock shows `clock` on `day`, DST-safe.

    An ambiguous time (the repeated hour when clocks go back) takes its first
    occurrence (fold=0). A nonexistent time (the hour skipped when clocks go
    forward) becomes the first valid instant after the gap, the moment of the
    jump: 02:30 in New York on a spring-forward day is 03:00 EDT.
    """
    local = datetime.combine(day, clock, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In the gap fold=0 reads the time with the old offset (after the jump) and
    # fold=1 with the new one (before it); the jump lies between: bisect it.
    low = int(local.replace(fold=1).astimezone(UTC).timestamp())
    high = int(instant.timestamp())
    after = instant.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _in_quiet(clock: time, start: time, end: time) -> bool:
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # the window wraps midnight


def _out_of_quiet(due: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> datetime:
    if quiet is None:
        return due
    start, end = quiet
    # Twice is enough in practice; the third pass covers a window end that falls
    # in a DST gap and lands back inside a near-24 h window.
    for _ in range(3):
        local = due.astimezone(zone)
        if not _in_quiet(local.time(), start, end):
            break
        end_day = local.date()
        if start > end and local.time() >= start:
            end_day += timedelta(days=1)
        moved = _wall_to_utc(end_day, end, zone)
        if moved <= due:
            # Due in the second pass of a repeated hour: the window ends at the
            # second occurrence of `end`, never earlier than the step.
            moved = datetime.combine(end_day, end, zone).replace(fold=1).astimezone(UTC)
        due = moved
    return due


def plan(
    performed_at: datetime,
    steps: list[dict],
    tz: str,
    quiet_start: str | None,
    quiet_end: str | None,
    now: datetime,
) -> list[dict]:
    """Plan one session's notification rows from a protocol's steps, in due order.

    Wall-clock steps use the client's zone `tz` (see _wall_to_utc for DST gaps and
    repeats). A step due before the session, or sooner than its min_gap_hours after
    it, is skipped; a step inside quiet hours moves to the end of the window; a
    step whose validity has already run out at `now` is skipped, not sent late.
    """
    if performed_at.utcoffset() is None or now.utcoffset() is None:
        raise ValueError("performed_at and now must be timezone-aware")
    zone = ZoneInfo(tz)
    quiet = None
    if quiet_start is not None and quiet_end is not None and quiet_start != quiet_end:
        quiet = (parse_hhmm(quiet_start), parse_hhmm(quiet_end))
    session = performed_at.astimezone(UTC)
    session_day = session.astimezone(zone).date()
    rows = []
    for step in steps:
        at = step["at"]
        if "offset_hours" in at:
            due = session + timedelta(hours=at["offset_hours"])
        else:
            day = session_day + timedelta(days=at["day"])
            due = _wall_to_utc(day, parse_hhmm(at["time"]), zone)
        min_gap = step.get("min_gap_hours") or 0
        reason = None
        if due < session:
            reason = SKIP_BEFORE_SESSION
        elif due - session < timedelta(hours=min_gap):
            reason = f"less than {_hours(min_gap)} after the session"
        else:
            due = _out_of_quiet(due, zone, quiet)
        valid_hours = step.get("valid_hours") or DEFAULT_VALID_HOURS[step["kind"]]
        expires = due + timedelta(hours=valid_hours)
        if reason is None and expires <= now:
            reason = SKIP_PAST_VALIDITY
        rows.append(
            {
                "step_key": step["key"],
                "kind": step["kind"],
                "title": step["title"],
                "body": step["body"],
                "due_at": due,
                "expires_at": expires,
                "status": "pending" if reason is None else "skipped",
                "skip_reason": reason,
            }
        )
    rows.sort(key=lambda row: row["due_at"])  # stable: ties keep protocol order
    return rows
