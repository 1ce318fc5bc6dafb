"""Aftercare protocols as data: checking a clinic's own steps (the default is default_protocol.py).

A step's title and body are either one text for every language or {"en": ..., "es": ...}
("en" required; a language for both or neither); a client gets theirs, else the English one.
Source of the validity rules: docs/clinical.md, "Default protocol".
Planning a session's reminders from these steps is in reminders/planning.py.
Past 300 lines on purpose: the step's request model, each field's check beside its schema.
"""

import math
import re
from collections.abc import Callable
from datetime import time
from typing import Annotated, Any

from babel import Locale
from pydantic import Field, PlainValidator, ValidationError, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from companion.contract.core import ABSENT, LINK, Body, Spec, encodable, fail
from companion.i18n import LANGUAGES  # a step's text may be written in these ("en" required)
from companion.reminders.default_protocol import (  # noqa: F401 - imported from here too
    DEFAULT_STEPS,
    DEFAULT_VALID_HOURS,
)

KINDS = ("instruction", "checkin", "recall")
MAX_STEPS = 100
MAX_DAY = 120
MAX_HOURS = 24 * MAX_DAY

_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")


def text_in(text: str | dict, language: str | None) -> str:
    """A step's text for a client: theirs when the protocol has it (an empty one is not
    written yet), else English (or plain)."""
    if isinstance(text, str):
        return text
    return text.get(language or "en") or text["en"]


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


# The request model of a protocol's steps: the validator of PUT /api/protocol and the
# protocol page, and the schema in the OpenAPI document. Each field type checks a value
# with today's messages and carries its JSON schema; errors name paths like steps[2].at.time.
AT_SHAPE = (
    'must be {"offset_hours": n} or {"day": n, "time": "HH:MM"}'
    ' (or in words: "+24 h", "day 2, 18:00")'
)
AT_UNKNOWN = "unknown field (use offset_hours alone, or day and time)"
_HOURS = {"type": "number", "maximum": MAX_HOURS}


# A read-only field of GET's answer, taken back and ignored (any value).
_IGNORED = {"description": "read-only: ignored"}


def _field(check: Callable[[Any], Any], schema: dict, *, required: bool = True, missing: str = ""):
    """A step field: check(value) returns the clean value or raises fail(message)."""

    def run(value: Any, context: dict) -> Any:
        if value is ABSENT:
            if required:
                raise fail(missing or "is required")
            return ABSENT
        return check(value)

    spec = Spec(run, required, absent_checked=True)
    return Annotated[Any, PlainValidator(spec), WithJsonSchema(schema), Field(default=ABSENT), spec]


def _text(max_len: int, *, empty: bool = False) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise fail("must be a string")
        if not (value := value.strip()) and not empty:
            raise fail("must not be empty")
        if len(value) > max_len:
            raise fail(f"must be at most {max_len} characters")
        if (
            "\x00" in value
            or not value.isprintable()
            and any(ord(c) < 0x20 and c not in "\n\t" for c in value)
        ):
            raise fail("must not contain control characters")
        if not encodable(value):
            raise fail("must be valid Unicode text")
        return value

    return check


def _hours(low: float, *, open_low: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        # bool is an int subclass; True as "1 hour" is almost certainly a client bug.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail("must be a number")
        if not math.isfinite(value):
            raise fail("must be a finite number")
        if value < low or (open_low and value == low) or value > MAX_HOURS:
            low_text = f"more than {low:g}" if open_low else f"at least {low:g}"
            raise fail(f"must be {low_text} and at most {MAX_HOURS}")
        return value

    return check


def _day(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail("must be a whole number")
    if not 0 <= value <= MAX_DAY:
        raise fail(f"must be between 0 and {MAX_DAY}")
    return value


def _clock(value: Any) -> str:
    clock = _text(5)(value)
    try:
        parse_hhmm(clock)
    except ValueError as error:
        raise fail(str(error)) from None
    return clock


def _key(value: Any) -> str:
    key = _text(40)(value)
    if not _KEY.fullmatch(key):
        raise fail("use lowercase letters, digits and hyphens")
    return key


def _kind(value: Any) -> str:
    kind = _text(20)(value)
    if kind not in KINDS:
        raise fail(f"must be one of {', '.join(KINDS)}")
    return kind


class AfterHours(Body):
    offset_hours: _field(_hours(0), _HOURS | {"minimum": 0})


class OnDay(Body):
    day: _field(_day, {"type": "integer", "minimum": 0, "maximum": MAX_DAY})
    time: _field(_clock, {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"})


# The issue's, GET's and the preview's words for a time, accepted for "at" too: "+24 h",
# "day 2, 18:00", "24 h after the session", "same day, 19:00", "day 1 at 08:30", "right after".
_AT_WORDS = (
    (re.compile(r"\+\s*(\d{1,4}(?:\.\d+)?)\s*h(?:ours?)?"), "offset"),
    (re.compile(r"(\d{1,4}(?:\.\d+)?)\s*h(?:ours?)? after(?: the session)?"), "offset"),
    (re.compile(r"right after(?: the session)?"), "now"),
    (re.compile(r"day\s+(\d{1,3}),?\s*(?:at\s+)?(\d{1,2}:\d{2})"), "day"),
    (re.compile(r"same day,?\s*(?:at\s+)?(\d{1,2}:\d{2})"), "same day"),
)


def _at_words(text: str) -> dict:
    """Read a time written in words ("+24 h", "day 2, 18:00") as the object it stands for."""
    text = " ".join(text.lower().split())
    for pattern, shape in _AT_WORDS:
        if match := pattern.fullmatch(text):
            if shape == "offset":
                hours = float(match[1])
                return {"offset_hours": int(hours) if hours.is_integer() else hours}
            if shape == "now":
                return {"offset_hours": 0}
            if shape == "day":
                return {"day": int(match[1]), "time": match[2].zfill(5)}
            return {"day": 0, "time": match[1].zfill(5)}
    raise fail(AT_SHAPE)


def _at(value: Any) -> dict:
    if isinstance(value, str):
        value = _at_words(value)
    if not isinstance(value, dict):
        raise fail(AT_SHAPE)
    model = AfterHours if "offset_hours" in value else OnDay
    try:
        return dict(model.model_validate(value))
    except ValidationError as error:
        raise PydanticCustomError(
            "nested", "nested", {"fields": step_errors(error, unknown=AT_UNKNOWN)}
        ) from None


_AT_SCHEMA = {
    "anyOf": [
        {LINK: "AfterHours"},
        {LINK: "OnDay"},
        {
            "type": "string",
            "description": 'in words: "+24 h" (hours after the session), "day 2, 18:00"'
            " (the client's wall-clock time on day N, the session's day being day 0)",
        },
    ]
}
_TITLE = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^\\u0000-\\u001f]*\\S"}
_BODY = {"type": "string", "maxLength": 300, "pattern": "^[^\\u0000-\\u0008\\u000b-\\u001f]*$"}
TEXTS_SHAPE = 'must be a text, or texts by language: {"en": "...", "es": "..."}'


def _per_language(check: Callable[[Any], str]) -> Callable[[Any], str | dict]:
    """One text for every language, or {"en": ..., "es": ...}: "en" required, no other keys."""

    def run(value: Any) -> str | dict:
        if isinstance(value, str):
            return check(value)
        if not isinstance(value, dict):
            raise fail(TEXTS_SHAPE)
        errors = {
            _as_typed(language)[:20]: f"unknown language (use {', '.join(LANGUAGES)})"
            for language in value
            if language not in LANGUAGES
        }
        if "en" not in value:
            errors["en"] = "is required: the English text, for clients in any other language"
        clean = {}
        for language in LANGUAGES:
            if language in value:
                try:
                    clean[language] = check(value[language])
                except PydanticCustomError as error:
                    errors[language] = error.context["message"]
        if errors:
            raise PydanticCustomError("nested", "nested", {"fields": errors})
        return clean

    return run


def _texts_schema(text: dict) -> dict:
    by_language = {
        "type": "object",
        "description": "The text by language; English is required and used for the others."
        " A language given in a step's title is given in its body too, and the reverse"
        " (unless that English text is empty)",
        "properties": {language: text for language in LANGUAGES},
        "required": ["en"],
        "additionalProperties": False,
    }
    return {"anyOf": [text, by_language]}


class StepInput(Body):
    key: _field(
        _key,
        {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9-]{0,39}$",
            "description": "optional: made from the English title when missing",
        },
        required=False,
    )
    title: _field(_per_language(_text(60)), _texts_schema(_TITLE))
    body: _field(_per_language(_text(300, empty=True)), _texts_schema(_BODY))
    kind: _field(_kind, {"type": "string", "enum": list(KINDS)})
    at: _field(_at, _AT_SCHEMA, missing=AT_SHAPE)
    valid_hours: _field(_hours(0, open_low=True), _HOURS | {"exclusiveMinimum": 0}, required=False)
    min_gap_hours: _field(_hours(0), _HOURS | {"minimum": 0}, required=False)
    when: _field(
        lambda v: ABSENT, _IGNORED | {"description": "GET's words for at; ignored"}, required=False
    )

    @model_validator(mode="before")
    @classmethod
    def _when_for_at(cls, data: Any) -> Any:
        """A step written with only "when" ("+24 h", "day 2, 18:00") is timed by it; with both,
        "at" is the time and "when" (GET's words for it) is ignored."""
        if isinstance(data, dict) and "at" not in data and isinstance(data.get("when"), str):
            return {**data, "at": data["when"]}
        return data

    @model_validator(mode="after")
    def _whole_translations(self) -> "StepInput":
        """A language gives both texts or neither, else its clients read half in English (an
        empty English text needs none; an empty translation is one not written yet)."""
        texts = {"title": self.title, "body": self.body}
        missing = {}
        for language in set(LANGUAGES) - {"en"}:
            given = {n for n, t in texts.items() if isinstance(t, dict) and t.get(language)}
            for name in sorted(texts.keys() - given) if given else ():
                if text_in(texts[name], "en"):
                    word = "text" if name == "body" else name  # as the editor labels them
                    what = f"{Locale(language).english_name} {word}"
                    missing[f"{name}.{language}"] = f"write the {what} too, or neither"
        if missing:
            raise PydanticCustomError("nested", "nested", {"fields": missing})
        return self


class ProtocolInput(Body):
    steps: list[StepInput] = Field(min_length=1, max_length=MAX_STEPS)
    # The protocol as GET /api/protocol answers it (or its JSON download) can be PUT back as is:
    # its read-only fields are accepted and ignored, like each step's "when".
    id: _field(lambda v: ABSENT, _IGNORED, required=False)
    version: _field(lambda v: ABSENT, _IGNORED, required=False)
    created_at: _field(lambda v: ABSENT, _IGNORED, required=False)

    @model_validator(mode="after")
    def _unique_keys(self) -> "ProtocolInput":
        first_index: dict[str, int] = {}
        duplicates: dict[str, str] = {}
        for index, step in enumerate(self.steps):
            if step.key is ABSENT:
                continue
            if step.key in first_index:
                duplicates[f"steps[{index}].key"] = (
                    f"duplicate key {step.key!r} (also steps[{first_index[step.key]}])"
                )
            first_index.setdefault(step.key, index)
        if duplicates:
            raise PydanticCustomError("nested", "nested", {"fields": duplicates})
        return self


# Messages for what pydantic itself checks (the list of steps, a step's shape).
_MESSAGES = {
    "list_type": "must be a list of steps",
    "too_short": "add at least one step",
    "too_long": f"must have at most {MAX_STEPS} steps",
    "model_type": "must be an object",
}


def _as_typed(name: object) -> str:
    """A key the sender chose, fit to show: JSON may spell a lone surrogate ("\\ud800"), which
    no page or log can encode (it was a 500 on the protocol page); it reads as typed."""
    return str(name).encode("utf-8", "backslashreplace").decode("utf-8")


def step_errors(error: ValidationError, unknown: str = "unknown field") -> dict[str, str]:
    """Translate a protocol's validation errors into {path: message}, e.g. steps[2].at.time."""
    out: dict[str, str] = {}
    for e in error.errors(include_url=False, include_input=False):
        path = ""
        for part in e["loc"]:
            part = part if isinstance(part, int) else _as_typed(part)
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
        if e["type"] == "nested":
            for key, message in e["ctx"]["fields"].items():
                out.setdefault(f"{path}.{key}" if path else key, message)
        elif e["type"] == "extra_forbidden":
            out.setdefault(path, unknown)
        else:
            out.setdefault(path, _MESSAGES.get(e["type"], e["msg"]))
    return out


def validate_steps(steps: object) -> tuple[list[dict], dict[str, str]]:
    """Check and normalise a protocol's steps with ProtocolInput; return them and errors.

    Errors are by field path. When there are errors the returned list is empty, so a
    caller cannot use half of a bad protocol by mistake.
    """
    try:
        valid = ProtocolInput.model_validate({"steps": steps})
    except ValidationError as error:
        return [], step_errors(error)
    clean = []
    taken = {step.key for step in valid.steps if step.key is not ABSENT}
    for step in valid.steps:
        values = {k: v for k, v in step if v is not ABSENT}
        if "key" not in values:  # a step given without one gets a key from its title
            values = {"key": slug(text_in(values["title"], "en"), taken), **values}
            taken.add(values["key"])
        values.setdefault("valid_hours", DEFAULT_VALID_HOURS[values["kind"]])
        clean.append(values)
    return clean, {}


def slug(title: str, taken: set[str]) -> str:
    """A step key made from its title, unlike any in taken: "Day 2: skin?" -> "day-2-skin"."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:32] or "step"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key
