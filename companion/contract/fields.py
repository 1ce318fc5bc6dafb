"""Field types for request bodies, each with today's plain-language messages and its schema.

Past 300 lines on purpose: each type keeps its check, its messages and its schema together.
"""

import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import PydanticCustomError

from companion.contract.core import (
    LINK,
    REQUIRED,
    Body,
    Spec,
    encodable,
    fail,
    field_type,
    parse,
    valid_timezone,
)
from companion.errors import N_, Invalid

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ().-]{5,30}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
# What Python counts as a space or strips, spelled for JSON Schema's (ECMA) regular expressions.
SPACE = "\\s\\u0000-\\u001f\\u0085"


# The invisible controls that reorder text (embeddings, overrides, isolates): in a name they
# would turn the rest of its line around on someone else's screen ("Hello, <name>. Your...").
DIRECTION_CONTROLS = "\\u202a-\\u202e\\u2066-\\u2069"  # spelled for JSON Schema
_NO_DIRECTION_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _clean_text(value: Any, required: bool, max_len: int, pattern, message: str) -> str | None:
    if not isinstance(value, str):
        raise fail(N_("Must be text."))
    value = value.strip()
    if not encodable(value):
        raise fail(N_("Must be text without NUL characters or broken Unicode."))
    if required and not value:
        raise fail(REQUIRED)
    if len(value) > max_len:
        raise fail(N_("At most %(max)s characters.", max=max_len))
    if value and pattern is not None and not pattern.match(value):
        raise fail(message)
    return value if required else value or None


def _text_schema(
    required: bool, max_len: int, pattern: re.Pattern | None, invisible: str = ""
) -> dict:
    out: dict = {"type": "string", "maxLength": max_len}
    if pattern is not None:
        # Python's \\s (and str.strip) also covers \\x1c-\\x1f and \\x85; JSON Schema's does not.
        out["pattern"] = pattern.pattern.replace("\\s", SPACE)
    else:
        # No NUL; a required text has something besides spaces (and what is dropped unseen).
        visible = f"[^{SPACE}{invisible}]"
        out["pattern"] = f"^[^\\u0000]*{visible}[^\\u0000]*$" if required else "^[^\\u0000]*$"
    if required:
        out["minLength"] = 1
    return out


def Text(  # noqa: N802 (a type factory reads as a type in a model)
    max_len: int = 200,
    *,
    required: bool = True,
    pattern: re.Pattern | None = None,
    message: str = N_("Not valid."),
    after: Callable[[str], str] | None = None,
) -> Any:
    """Trimmed text; optional text sent empty or null is stored as null."""

    def check(value: Any, context: dict) -> str | None:
        clean = _clean_text(value, required, max_len, pattern, message)
        return after(clean) if after is not None and clean else clean

    spec = Spec(check, required, null=None)
    return field_type(str, spec, _text_schema(required, max_len, pattern))


def Name(max_len: int = 100, *, required: bool = True) -> Any:  # noqa: N802
    """A person's or a clinic's name: trimmed text, stored without the invisible controls that
    reorder text (DIRECTION_CONTROLS; nothing a reader sees is lost)."""

    def check(value: Any, context: dict) -> str | None:
        if isinstance(value, str):
            value = value.translate(_NO_DIRECTION_CONTROLS)
        return _clean_text(value, required, max_len, None, "")

    spec = Spec(check, required, null=None)
    return field_type(str, spec, _text_schema(required, max_len, None, DIRECTION_CONTROLS))


def Email(*, required: bool = True) -> Any:  # noqa: N802
    return Text(
        254,
        required=required,
        pattern=EMAIL,
        message=N_("Not a valid email address."),
        after=str.lower,
    )


def Phone(*, required: bool = False) -> Any:  # noqa: N802
    return Text(30, required=required, pattern=PHONE, message=N_("Not a valid phone number."))


def Clock(*, required: bool = False) -> Any:  # noqa: N802
    """A 24-hour wall clock, HH:MM."""
    return Text(5, required=required, pattern=HHMM, message=N_("Use 24-hour HH:MM, e.g. 21:00."))


def TimeZone(*, required: bool = False, null_in_patch: str | None = None) -> Any:  # noqa: N802
    """An IANA time zone name such as Europe/London."""

    def check(value: Any, context: dict) -> str | None:
        clean = _clean_text(value, required, 64, None, "")
        if clean is None and null_in_patch and context.get("partial"):
            raise fail(null_in_patch)  # "" in a PATCH: as null, not a silent "unchanged"
        if clean is not None and not valid_timezone(clean):
            raise fail(N_("Unknown time zone; use an IANA name such as Europe/London."))
        return clean

    spec = Spec(check, required, null=None, null_in_patch=null_in_patch)
    return field_type(str, spec, {LINK: "TimeZone"})


def Uuid(message: str) -> Any:  # noqa: N802
    """A UUID as text, returned in its canonical lower-case form."""

    def check(value: Any, context: dict) -> str:
        clean = _clean_text(value, True, 36, None, "")
        try:
            return str(uuid.UUID(clean))
        except ValueError:
            raise fail(message) from None

    return field_type(str, Spec(check), {"type": "string", "format": "uuid"})


def Number(lo: float, hi: float, *, integer: bool = False, required: bool = True) -> Any:  # noqa: N802
    """A JSON number within [lo, hi]; true and "2" are not numbers."""

    def check(value: Any, context: dict) -> float | int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or isinstance(value, float)
            and not math.isfinite(value)
            or integer
            and value != int(value)
        ):
            raise fail(N_("Must be a whole number.") if integer else N_("Must be a number."))
        if not lo <= value <= hi:
            raise fail(
                N_("Must be between %(lo)s and %(hi)s.", lo=format(lo, "g"), hi=format(hi, "g"))
            )
        return int(value) if integer else float(value)

    schema = {"type": "integer" if integer else "number", "minimum": lo, "maximum": hi}
    return field_type(int if integer else float, Spec(check, required), schema)


def Choice(options: tuple[str, ...], *, required: bool = True) -> Any:  # noqa: N802
    def check(value: Any, context: dict) -> str:
        if not isinstance(value, str) or value not in options:
            raise fail(N_("Must be one of: %(options)s.", options=", ".join(options)))
        return value

    return field_type(str, Spec(check, required), {"enum": list(options)})


def ChoiceList(options: tuple[str, ...], *, message: str) -> Any:  # noqa: N802
    """A list of distinct options (optional; null means the default, stored as None)."""

    def check(value: Any, context: dict) -> list[str]:
        if not isinstance(value, list) or not all(
            isinstance(v, str) and v in options for v in value
        ):
            raise fail(message)
        if len(set(value)) < len(value):
            raise fail(N_("Give each one at most once."))
        return [option for option in options if option in value]

    schema = {"type": "array", "items": {"enum": list(options)}, "uniqueItems": True}
    return field_type(list[str], Spec(check, required=False, null=None), schema)


def Boolean(*, required: bool = False) -> Any:  # noqa: N802
    def check(value: Any, context: dict) -> bool:
        if not isinstance(value, bool):
            raise fail(N_("Must be true or false."))
        return value

    return field_type(bool, Spec(check, required), {"type": "boolean"})


def Moment(  # noqa: N802
    *,
    required: bool = True,
    max_ahead: timedelta | None = None,
    ahead_message: str = "",
    max_age: timedelta | None = None,
    age_message: str = "",
) -> Any:
    """An ISO 8601 date-time that states its UTC offset; limits are checked against `now`."""

    def check(value: Any, context: dict) -> datetime:
        if not isinstance(value, str) or len(value) > 40:
            raise fail(N_("Must be an ISO 8601 date-time with offset."))
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise fail(
                N_("Must be an ISO 8601 date-time with offset, e.g. 2026-05-01T14:30:00+01:00.")
            ) from None
        if parsed.tzinfo is None:
            raise fail(N_("Include the UTC offset, e.g. +01:00 or Z."))
        if not 2000 <= parsed.year <= 2100:
            raise fail(N_("Must be between the years 2000 and 2100."))
        now = context.get("now")
        if now is not None and max_ahead is not None and parsed > now + max_ahead:
            raise fail(ahead_message)
        if now is not None and max_age is not None and parsed < now - max_age:
            raise fail(age_message)
        return parsed

    schema = {
        "type": "string",
        "format": "date-time",
        "pattern": "^(20[0-9]{2}|2100)-",
        "description": "ISO 8601 with offset, years 2000 to 2100",
    }
    return field_type(datetime, Spec(check, required), schema)


def TextList(  # noqa: N802
    *, required: bool = True, max_items: int = 10, max_len: int = 80, min_items: int = 0
) -> Any:
    """A list of trimmed texts; blank items are dropped before counting."""

    def check(value: Any, context: dict) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(N_("Must be a list of text."))
        items = [v.strip() for v in value if v.strip()]
        if len(items) < min_items:
            raise fail(N_("Give at least %(min)s.", min=min_items))
        if len(items) > max_items:
            raise fail(N_("At most %(max)s items.", max=max_items))
        if not all(encodable(v) for v in items):
            raise fail(N_("Must be text without NUL characters or broken Unicode."))
        if any(len(v) > max_len for v in items):
            raise fail(N_("Each item at most %(max)s characters.", max=max_len))
        return items

    item = {"type": "string", "maxLength": max_len, "pattern": "^[^\\u0000]*$"}
    if min_items:
        item["pattern"] = f"^[^\\u0000]*[^{SPACE}][^\\u0000]*$"
    schema = {"type": "array", "items": item, "minItems": min_items, "maxItems": max_items}
    return field_type(list[str], Spec(check, required), schema)


def FlagSet(keys: tuple[str, ...]) -> Any:  # noqa: N802
    """An object of booleans with known keys; a missing key is false, a missing object all false."""

    def check(value: Any, context: dict) -> dict[str, bool]:
        if not isinstance(value, dict):
            raise fail(N_("Must be an object of true/false values."))
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise fail(
                N_(
                    "Unknown keys: %(unknown)s; allowed: %(allowed)s.",
                    unknown=", ".join(map(str, unknown[:5])),
                    allowed=", ".join(keys),
                )
            )
        bad = [k for k in keys if k in value and not isinstance(value[k], bool)]
        if bad:
            raise fail(N_("Must be true or false: %(keys)s.", keys=", ".join(bad)))
        return {k: bool(value.get(k, False)) for k in keys}

    schema = {
        "type": "object",
        "properties": {k: {"type": "boolean"} for k in keys},
        "additionalProperties": False,
    }
    spec = Spec(check, required=False, fill=lambda: dict.fromkeys(keys, False))
    return field_type(dict[str, bool], spec, schema)


def Nested(  # noqa: N802
    model: type["Body"], message: str, *, required: bool = False, null_in_patch: str | None = None
) -> Any:
    """An object validated by its own Body model; its errors are named parent.child."""

    def check(value: Any, context: dict) -> dict:
        if not isinstance(value, dict):
            raise fail(message)
        try:
            return parse(model, value)
        except Invalid as e:
            raise PydanticCustomError("nested", "nested", {"fields": e.fields}) from None

    spec = Spec(check, required, null_in_patch=null_in_patch)
    return field_type(dict, spec, {LINK: model.__name__})


def Custom(  # noqa: N802
    check: Callable[[Any], Any],
    schema: dict,
    *,
    required: bool = True,
    base: Any = Any,
    absent_checked: bool = False,
) -> Any:
    """A field with its own check(value) -> clean value, raising fail(message) when bad."""
    spec = Spec(lambda value, context: check(value), required, absent_checked=absent_checked)
    return field_type(base, spec, schema)
