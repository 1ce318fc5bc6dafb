"""The API contract machinery: field types with our messages, parsing into Invalid, OpenAPI 3.1.

Each feature declares its request and response bodies once, as pydantic models in its
`models.py`, and each route states its contract with `@operation(...)`. Validation
(`parse`) and the document served at /api/openapi.json (`document`) both derive from them.

A request body model subclasses `Body`. Its fields use the types below, which validate
with our plain-language messages and no coercion (true is not 1, "2" is not 2); every
field defaults to ABSENT, so one model serves a POST and its PATCH (`partial=True`:
absent means unchanged). A type decides what null means for it, as the API always has.
"""

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import PydanticCustomError

from companion.errors import Invalid

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ().-]{5,30}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
REQUIRED = "This field is required."
# What Python counts as a space or strips, spelled for JSON Schema's (ECMA) regular expressions.
SPACE = "\\s\\u0000-\\u001f\\u0085"
# Pydantic resolves "$ref"s it finds in a field's schema; ours are links until the document.
LINK = "x-companion-ref"


class _Absent:
    """The default of every body field: the key was not sent."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@cache
def timezones() -> frozenset[str]:
    """Return the IANA zone names (read once: the listing walks tzdata)."""
    return frozenset(available_timezones())


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
    # In a PATCH, null for this optional field is an error with this message.
    null_in_patch: str | None = None
    # The check itself decides about a missing or null value (e.g. a sign-in attempt).
    absent_checked: bool = False

    def __call__(self, value: Any, info) -> Any:
        context = info.context or {}
        partial = context.get("partial", False)
        if self.absent_checked:
            return self.check(value, context)
        if value is None and partial and self.null_in_patch:
            raise fail(self.null_in_patch)
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


# Field types -----------------------------------------------------------------------------------


def _clean_text(value: Any, required: bool, max_len: int, pattern, message: str) -> str | None:
    if not isinstance(value, str):
        raise fail("Must be text.")
    value = value.strip()
    if not encodable(value):
        raise fail("Must be text without NUL characters or broken Unicode.")
    if required and not value:
        raise fail(REQUIRED)
    if len(value) > max_len:
        raise fail(f"At most {max_len} characters.")
    if value and pattern is not None and not pattern.match(value):
        raise fail(message)
    return value if required else value or None


def _text_schema(required: bool, max_len: int, pattern: re.Pattern | None) -> dict:
    out: dict = {"type": "string", "maxLength": max_len}
    if pattern is not None:
        # Python's \\s (and str.strip) also covers \\x1c-\\x1f and \\x85; JSON Schema's does not.
        out["pattern"] = pattern.pattern.replace("\\s", SPACE)
    else:
        # No NUL; a required text has something besides spaces.
        out["pattern"] = f"^[^\\u0000]*[^{SPACE}][^\\u0000]*$" if required else "^[^\\u0000]*$"
    if required:
        out["minLength"] = 1
    return out


def Text(  # noqa: N802 (a type factory reads as a type in a model)
    max_len: int = 200,
    *,
    required: bool = True,
    pattern: re.Pattern | None = None,
    message: str = "Not valid.",
    after: Callable[[str], str] | None = None,
) -> Any:
    """Trimmed text; optional text sent empty or null is stored as null."""

    def check(value: Any, context: dict) -> str | None:
        clean = _clean_text(value, required, max_len, pattern, message)
        return after(clean) if after is not None and clean else clean

    spec = Spec(check, required, null=None)
    return field_type(str, spec, _text_schema(required, max_len, pattern))


def Email(*, required: bool = True) -> Any:  # noqa: N802
    return Text(
        254,
        required=required,
        pattern=EMAIL,
        message="Not a valid email address.",
        after=str.lower,
    )


def Phone(*, required: bool = False) -> Any:  # noqa: N802
    return Text(30, required=required, pattern=PHONE, message="Not a valid phone number.")


def Clock(*, required: bool = False) -> Any:  # noqa: N802
    """A 24-hour wall clock, HH:MM."""
    return Text(5, required=required, pattern=HHMM, message="Use 24-hour HH:MM, e.g. 21:00.")


def TimeZone(*, required: bool = False, null_in_patch: str | None = None) -> Any:  # noqa: N802
    """An IANA time zone name such as Europe/London."""

    def check(value: Any, context: dict) -> str | None:
        clean = _clean_text(value, required, 64, None, "")
        if clean is not None and not valid_timezone(clean):
            raise fail("Unknown time zone; use an IANA name such as Europe/London.")
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
    kind = "a whole number" if integer else "a number"

    def check(value: Any, context: dict) -> float | int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or isinstance(value, float)
            and not math.isfinite(value)
            or integer
            and value != int(value)
        ):
            raise fail(f"Must be {kind}.")
        if not lo <= value <= hi:
            raise fail(f"Must be between {lo:g} and {hi:g}.")
        return int(value) if integer else float(value)

    schema = {"type": "integer" if integer else "number", "minimum": lo, "maximum": hi}
    return field_type(int if integer else float, Spec(check, required), schema)


def Choice(options: tuple[str, ...], *, required: bool = True) -> Any:  # noqa: N802
    def check(value: Any, context: dict) -> str:
        if not isinstance(value, str) or value not in options:
            raise fail("Must be one of: " + ", ".join(options) + ".")
        return value

    return field_type(str, Spec(check, required), {"enum": list(options)})


def Boolean(*, required: bool = False) -> Any:  # noqa: N802
    def check(value: Any, context: dict) -> bool:
        if not isinstance(value, bool):
            raise fail("Must be true or false.")
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
            raise fail("Must be an ISO 8601 date-time with offset.")
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise fail(
                "Must be an ISO 8601 date-time with offset, e.g. 2026-05-01T14:30:00+01:00."
            ) from None
        if parsed.tzinfo is None:
            raise fail("Include the UTC offset, e.g. +01:00 or Z.")
        if not 2000 <= parsed.year <= 2100:
            raise fail("Must be between the years 2000 and 2100.")
        now = context.get("now")
        if now is not None and max_ahead is not None and parsed > now + max_ahead:
            raise fail(ahead_message)
        if now is not None and max_age is not None and parsed < now - max_age:
            raise fail(age_message)
        return parsed

    schema = {"type": "string", "format": "date-time", "description": "ISO 8601 with offset"}
    return field_type(datetime, Spec(check, required), schema)


def TextList(  # noqa: N802
    *, required: bool = True, max_items: int = 10, max_len: int = 80, min_items: int = 0
) -> Any:
    """A list of trimmed texts; blank items are dropped before counting."""

    def check(value: Any, context: dict) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("Must be a list of text.")
        items = [v.strip() for v in value if v.strip()]
        if len(items) < min_items:
            raise fail(f"Give at least {min_items}.")
        if len(items) > max_items:
            raise fail(f"At most {max_items} items.")
        if any(len(v) > max_len or not encodable(v) for v in items):
            raise fail(f"Each item at most {max_len} characters.")
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
            raise fail("Must be an object of true/false values.")
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise fail(
                "Unknown keys: "
                + ", ".join(map(str, unknown[:5]))
                + "; allowed: "
                + ", ".join(keys)
                + "."
            )
        bad = [k for k in keys if k in value and not isinstance(value[k], bool)]
        if bad:
            raise fail("Must be true or false: " + ", ".join(bad) + ".")
        return {k: bool(value.get(k, False)) for k in keys}

    schema = {
        "type": "object",
        "properties": {k: {"type": "boolean"} for k in keys},
        "additionalProperties": False,
    }
    spec = Spec(check, required=False, fill=lambda: dict.fromkeys(keys, False))
    return field_type(dict[str, bool], spec, schema)


def Nested(model: type["Body"], message: str, *, required: bool = False) -> Any:  # noqa: N802
    """An object validated by its own Body model; its errors are named parent.child."""

    def check(value: Any, context: dict) -> dict:
        if not isinstance(value, dict):
            raise fail(message)
        try:
            return parse(model, value)
        except Invalid as e:
            raise PydanticCustomError("nested", "nested", {"fields": e.fields}) from None

    return field_type(dict, Spec(check, required), {LINK: model.__name__})


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


# Bodies and parsing ------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: unknown fields refused, every field checked by its type."""

    # Built on first use, not at import: start-up stays fast (measured ~0.15 s for all models).
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


class Reply(BaseModel):
    """A response body as the handlers build it: every field present, nothing else."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Query(BaseModel):
    """A route's query string, for the document: each field is one parameter."""

    model_config = ConfigDict(defer_build=True)


def parse(
    model: type[Body], data: object, *, partial: bool = False, now: datetime | None = None
) -> dict:
    """Check a request body against its model; return the clean values or raise Invalid.

    The result holds the fields that were sent (and, for a full body, the ones a type
    fills in); `partial` is a PATCH: absent fields and null for a required one are left out.
    """
    if not isinstance(data, dict):
        raise Invalid({"body": "Expected a JSON object."})
    try:
        values = model.model_validate(data, context={"partial": partial, "now": now})
    except ValidationError as e:
        raise Invalid(error_fields(e)) from None
    return {k: v for k, v in values if v is not ABSENT}


def error_fields(error: ValidationError) -> dict[str, str]:
    """Translate pydantic's errors into our {field: message}: the first message per field."""
    out: dict[str, str] = {}
    for e in error.errors(include_url=False, include_input=False):
        loc = [str(part) for part in e["loc"]]
        if e["type"] == "extra_forbidden":
            out.setdefault(".".join(loc[:-1] + [loc[-1][:60]]), "Unknown field.")
        elif e["type"] == "nested":
            for key, message in e["ctx"]["fields"].items():
                out.setdefault(".".join([*loc, key]), message)
        elif e["type"] == "missing":
            out.setdefault(".".join(loc), REQUIRED)
        else:
            out.setdefault(".".join(loc) or "body", e["msg"])
    return out


# Routes and the OpenAPI document ----------------------------------------------------------------


def ref(name: str) -> str:
    return f"#/components/schemas/{name}"


@dataclass
class Operation:
    """What a route takes and answers, for the OpenAPI document."""

    summary: str
    tag: str
    ok: int
    reply: type[BaseModel] | dict | None
    body: type[BaseModel] | dict | None = None
    partial: bool = False
    errors: tuple[int, ...] = (401,)
    query: type[BaseModel] | None = None
    public: bool = False
    body_type: str = "application/json"
    reply_type: str = "application/json"
    extra: dict = field(default_factory=dict)


def operation(summary: str, *, tag: str, ok: int = 200, reply=None, **kwargs) -> Callable:
    """Attach a route's contract to its view function; it costs nothing per request."""
    op = Operation(summary, tag, ok, reply, **kwargs)

    def attach(view: Callable) -> Callable:
        view.__contract__ = op
        return view

    return attach


class ErrorDetail(Reply):
    code: str
    message: str
    fields: dict[str, str]


class Error(Reply):
    error: ErrorDetail


ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": ref("Error")}}},
}
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}
RULE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON schema without ABSENT defaults (an absent field has no default)."""

    def default_schema(self, schema):
        if schema.get("default") is ABSENT:
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _spec(info) -> Spec | None:
    return next((m for m in info.metadata if isinstance(m, Spec)), None)


def _patch(model: type[Body], schema: dict) -> dict:
    """Describe a model's PATCH body: nothing required; null only where it is not refused."""
    props = dict(schema["properties"])
    for name, info in model.model_fields.items():
        spec = _spec(info)
        if spec is not None and spec.null_in_patch and "anyOf" in props[name]:
            props[name] = dict(props[name], anyOf=props[name]["anyOf"][:1])
    return dict(schema, properties=props, required=[])


def schemas() -> dict[str, dict]:
    """Return the JSON schema of every declared model, by name, plus each PATCH variant."""
    models = _subclasses(Body) + _subclasses(Reply) + _subclasses(Query)
    _, top = models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schema,
    )
    out = top["$defs"]
    for model in _subclasses(Body):
        schema = out[model.__name__]
        schema["required"] = [
            name
            for name, info in model.model_fields.items()
            if (_spec(info) or Spec(None)).required
        ]
        out[model.__name__ + "Patch"] = _patch(model, schema)
    out = _links(out)
    out["TimeZone"] = {
        "type": "string",
        "description": "IANA time zone, e.g. Europe/London",
        "enum": sorted(timezones()),
    }
    return out


def _links(node: Any) -> Any:
    """Turn our {LINK: name} placeholders into JSON references."""
    if isinstance(node, dict):
        if LINK in node:
            return {"$ref": ref(node[LINK])}
        return {k: _links(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_links(v) for v in node]
    return node


def _schema_of(thing, partial: bool = False) -> dict:
    if isinstance(thing, type) and issubclass(thing, BaseModel):
        return {"$ref": ref(thing.__name__ + ("Patch" if partial else ""))}
    return thing


def _describe(op: Operation, params: list[dict], components: dict) -> dict:
    errors = set(op.errors)
    if op.body is not None and op.body_type == "application/json":
        # Any JSON body may be malformed (400), of another type (415) or break its model (422).
        errors |= {400, 415, 422}
    ok: dict = {"description": "OK"}
    if op.extra.get("replies"):
        ok["content"] = {t: {"schema": _schema_of(s)} for t, s in op.extra["replies"].items()}
    elif op.reply is not None:
        ok["content"] = {op.reply_type: {"schema": _schema_of(op.reply)}}
    out: dict = {
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {str(code): ok for code in (op.ok, *op.extra.get("also_ok", ()))}
        | {str(code): ERROR for code in sorted(errors)},
    }
    if op.query is not None:
        schema = components[op.query.__name__]
        params = params + [
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
            }
            for name, prop in schema["properties"].items()
        ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = _schema_of(op.body, op.partial)
        out["requestBody"] = {"required": True, "content": {op.body_type: {"schema": schema}}}
    if op.public:
        out["security"] = []
    return out


def document(app) -> dict:
    """Build the OpenAPI 3.1 document from the routes' contracts (once per app)."""
    if "openapi" in app.extensions:
        return app.extensions["openapi"]
    components = schemas()
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        op = getattr(app.view_functions[rule.endpoint], "__contract__", None)
        if not rule.rule.startswith("/api/") or op is None:
            continue
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": ID_SCHEMA if converter == "int" else {"type": "string"},
            }
            for converter, name in RULE_PARAM.findall(rule.rule)
        ]
        path = RULE_PARAM.sub(r"{\2}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _describe(op, params, components)
    # Keep the PATCH variants that some route takes.
    text = str(paths)
    for name in [n for n in components if n.endswith("Patch") and ref(n) not in text]:
        del components[name]
    app.extensions["openapi"] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Companion API",
            "version": "1",
            "description": "Session-cookie auth. Writes need Content-Type: application/json"
            " and a same-origin Origin. Errors: {error: {code, message, fields}}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"cookie": {"type": "apiKey", "in": "cookie", "name": "session"}},
        },
        "security": [{"cookie": []}],
    }
    return app.extensions["openapi"]
