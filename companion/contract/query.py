"""Query strings: a route's Query model both documents its parameters and parses them.

A query field takes the parameter's text (the first value when repeated) and returns the
clean value, or raises fail(message); an absent parameter takes the field's default
unchecked. Unknown parameters are ignored, as browsers and caches add their own.
"""

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import Field, PlainValidator, ValidationError, WithJsonSchema

from companion.contract.core import Query, error_fields, fail
from companion.converters import MAX_ID, parse_id
from companion.errors import Invalid

POSITIVE = "Must be a positive whole number."


def Param(  # noqa: N802 (a type factory reads as a type in a model)
    check: Callable[[str], Any], schema: dict, *, default: Any = None, **field: Any
) -> Any:
    """A query parameter: check(text) -> clean value; `field` goes to pydantic's Field."""
    return Annotated[
        Any, PlainValidator(check), WithJsonSchema(schema), Field(default=default, **field)
    ]


def Id(message: str = POSITIVE, *, cap: int | None = None, **field: Any) -> Any:  # noqa: N802
    """A positive id of at most 18 digits; `cap` lowers a larger value (a page size) to it."""

    def check(text: str) -> int:
        value = parse_id(text)
        if value is None:
            raise fail(message)
        return value if cap is None else min(value, cap)

    return Param(check, {"type": "integer", "minimum": 1, "maximum": MAX_ID}, **field)


def Whole(lo: int, hi: int, schema: dict, **field: Any) -> Any:  # noqa: N802
    """A whole number as int() reads it (" 7", "+7"), moved into [lo, hi] rather than refused."""

    def check(text: str) -> int:
        try:
            return min(max(int(text), lo), hi)
        except ValueError:
            raise fail("Must be a whole number.") from None

    return Param(check, {"type": "integer"} | schema, **field)


def Truncated(max_len: int, **field: Any) -> Any:  # noqa: N802
    """Free text cut to max_len characters; empty is the same as none (None)."""
    return Param(lambda text: text[:max_len] or None, {"type": "string"}, **field)


def OneOf(options: tuple[str, ...], *, blank: bool = False, **field: Any) -> Any:  # noqa: N802
    """One of a few words; with `blank`, an empty parameter is the same as none (None)."""

    def check(text: str) -> str | None:
        if blank and not text:
            return None
        if text not in options:
            raise fail(f"One of: {', '.join(options)}.")
        return text

    return Param(check, {"type": "string", "enum": list(options)}, **field)


def parse_query(model: type[Query], args: Mapping[str, str]) -> dict:
    """Read a query string (Flask's request.args) with its model; raise Invalid when bad."""
    values = args.to_dict() if hasattr(args, "to_dict") else dict(args)
    try:
        parsed = model.model_validate(values)
    except ValidationError as error:
        raise Invalid(error_fields(error), model.invalid_message) from None
    return parsed.model_dump()
