"""Aftercare protocols as data: the default protocol, and checking a clinic's own steps.

Source of the default protocol and validity rules: docs/clinical.md, "Default protocol".
Planning a session's reminders from these steps is in reminders/planning.py.
"""

import math
import re
from datetime import time

KINDS = ("instruction", "checkin", "recall")
# Product defaults (not from the literature): how long after its due time a step
# is still worth sending. Used for the push TTL and to skip steps planned too late.
DEFAULT_VALID_HOURS = {"instruction": 12, "checkin": 24, "recall": 72}
MAX_STEPS = 100
MAX_DAY = 120
MAX_HOURS = 24 * MAX_DAY
STEP_FIELDS = {"key", "title", "body", "kind", "at", "valid_hours", "min_gap_hours"}

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


_CHECKIN = "How is your skin? Tap to rate redness and swelling. It takes under 2 minutes."
_SUNSCREEN = (
    "Put on a broad-spectrum sunscreen and avoid direct sun. Dryness, flaking or peeling "
    "can happen; it is usually mild and passes. Keep moisturising."
)
# docs/clinical.md, "Default protocol", expanded into one step per reminder.
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


def hours_text(value: float) -> str:
    """Write a number of hours for people: 1.5 -> \"1.5 h\"."""
    return f"{value:g} h"


def describe_at(at: dict) -> str:
    """Describe when a step is due, for the UI."""
    if "offset_hours" in at:
        hours = at["offset_hours"]
        return "right after the session" if hours == 0 else f"{hours_text(hours)} after the session"
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
