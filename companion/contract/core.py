"""The contract's core: a field's Spec, the Body/Reply/Query bases, parse() into Invalid.

Each feature declares its request and response bodies once, as pydantic models in its
`models.py`, and each route states its contract with `@operation(...)` (document.py).
Validation (`parse`) and the document served at /api/openapi.json both derive from them.

A request body model subclasses `Body`. Its fields use the types in fields.py, which
validate with our plain-language messages and no coercion (true is not 1, "2" is not 2);
every field defaults to ABSENT, so one model serves a POST and its PATCH (`partial=True`:
absent means unchanged). A type decides what null means for it, as the API always has.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, ClassVar
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from companion.errors import N_, Invalid

REQUIRED = N_("This field is required.")
# A PATCH that sends null for a field whose null means nothing (it neither clears nor resets).
NOT_NULL = N_("Cannot be null: give a value, or leave the field out to keep it as it is.")
# Pydantic resolves "$ref"s it finds in a field's schema; ours are links until the document.
LINK = "x-companion-ref"


class _Absent:
    """The default of every body field: the key was not sent."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


# Files in the system's zoneinfo folder that are not places: `localtime` is this server's own
# zone under another name, `Factory` a placeholder whose abbreviation reads "-00", and
# `posixrules` a template for POSIX TZ strings.
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def timezones() -> frozenset[str]:
    """Return the IANA zone names (read once: the listing walks tzdata)."""
    return frozenset(available_timezones()) - NOT_ZONES


def valid_timezone(name: str) -> bool:
    return name in timezones()


def encodable(text: str) -> bool:
    """Tell whether text can be stored: no NUL, no lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fail(message: str) -> PydanticCustomError:
    """A field's error; mark its English with N_ so a client sees it in their language."""
    # The message goes through the context: pydantic would read braces in it as a template.
    return PydanticCustomError("invalid", "{message}", {"message": message})


@dataclass(frozen=True)
class Spec:
    """What a field type knows about itself: required, and how to check a present value."""

    check: Callable[[Any, dict], Any]
    required: bool = True
    # What null means when the field is optional: None (cleared) or ABSENT (ignored).
    null: Any = ABSENT
    # The value an absent field takes in a full (non-PATCH) body, if any.
    fill: Callable[[], Any] | None = None
    # In a PATCH, null for this field is an error with this message (NOT_NULL if not given;
    # a PATCH takes null only where it clears or resets a field: `null` not ABSENT).
    null_in_patch: str | None = None
    # The check itself decides about a missing or null value (e.g. a sign-in attempt).
    absent_checked: bool = False

    @property
    def refuses_null_in_patch(self) -> bool:
        """In a PATCH, null is refused unless it clears or resets the field (silently keeping
        the stored value would answer 200 for a change that was not made)."""
        return bool(self.null_in_patch) or self.required or self.null is ABSENT

    def __call__(self, value: Any, info) -> Any:
        context = info.context or {}
        partial = context.get("partial", False)
        if self.absent_checked:
            return self.check(value, context)
        if value is None and partial and self.refuses_null_in_patch:
            raise fail(self.null_in_patch or NOT_NULL)
        if value is ABSENT or value is None:
            if self.required:
                if partial:
                    return ABSENT
                raise fail(REQUIRED)
            if value is None and self.null is not ABSENT:
                return self.null
            return self.fill() if self.fill is not None and not partial else ABSENT
        return self.check(value, context)


def field_type(base: Any, spec: Spec, schema: dict) -> Any:
    """Build an annotated field type from a Spec and its JSON schema."""
    nullable = not spec.required
    shown = {"anyOf": [schema, {"type": "null"}]} if nullable else schema
    return Annotated[base, PlainValidator(spec), WithJsonSchema(shown), Field(default=ABSENT), spec]


# Bodies and parsing ------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: unknown fields refused, every field checked by its type."""

    # Built on first use, not at import: start-up stays fast (measured ~0.15 s for all models).
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


class Reply(BaseModel):
    """A response body as the handlers build it: every field present, nothing else."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Query(BaseModel):
    """A route's query string: each field is one parameter (types in query.py)."""

    model_config = ConfigDict(defer_build=True)
    # The error's message when a parameter is bad (its fields say which).
    invalid_message: ClassVar[str] = N_("Some fields are not valid.")


def parse(
    model: type[Body],
    data: object,
    *,
    partial: bool = False,
    now: datetime | None = None,
    context: dict | None = None,
) -> dict:
    """Check a request body against its model; return the clean values or raise Invalid.

    The result holds the fields that were sent (and, for a full body, the ones a type
    fills in); `partial` is a PATCH: absent fields are left out; null is refused where it would mean nothing.
    `context` passes settings a field's check needs (e.g. allow_private for an endpoint).
    """
    if not isinstance(data, dict):
        raise Invalid({"body": N_("Expected a JSON object.")})
    try:
        values = model.model_validate(
            data, context={**(context or {}), "partial": partial, "now": now}
        )
    except ValidationError as e:
        raise Invalid(error_fields(e)) from None
    return {k: v for k, v in values if v is not ABSENT}


def error_fields(error: ValidationError) -> dict[str, str]:
    """Translate pydantic's errors into our {field: message}: the first message per field."""
    out: dict[str, str] = {}
    for e in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in e["loc"]]
        if e["type"] == "extra_forbidden":
            out.setdefault(".".join(loc[:-1] + [loc[-1][:60]]), N_("Unknown field."))
        elif e["type"] == "nested":
            for key, message in e["ctx"]["fields"].items():
                out.setdefault(".".join([*loc, key]), message)
        elif e["type"] == "missing":
            out.setdefault(".".join(loc), REQUIRED)
        else:
            # fail()'s message as raised (an N_ keeps its msgid for translating); else pydantic's.
            message = (e.get("ctx") or {}).get("message", e["msg"])
            out.setdefault(".".join(loc) or "body", message)
    return out
