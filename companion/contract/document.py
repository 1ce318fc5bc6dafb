"""The OpenAPI 3.1 document, built from the routes' @operation contracts and the models."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from companion.contract.core import ABSENT, LINK, Body, Query, Reply, Spec, timezones


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
        if spec is not None and spec.refuses_null_in_patch and "anyOf" in props[name]:
            props[name] = dict(props[name], anyOf=props[name]["anyOf"][:1])
    return dict(
        schema,
        properties=props,
        required=[],
        description=(
            "A PATCH: absent fields are unchanged. null (or empty text) clears a field only"
            " where its schema here allows null; elsewhere null is 422 with the field named."
        ),
    )


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


def _describe(op: Operation, method: str, params: list[dict], components: dict) -> dict:
    errors = set(op.errors)
    if op.body is not None and op.body_type == "application/json":
        # Any JSON body may be malformed (400), of another type (415) or break its model (422).
        errors |= {400, 415, 422}
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        # security.check_api_request, before any route: another origin (403 bad_origin), a
        # form's body type (415); a JSON body past 1 MB, an image past MAX_CONTENT_LENGTH (413).
        errors |= {403, 413, 415}
    ok: dict = {"description": "OK"}
    if op.extra.get("replies"):
        ok["content"] = {t: {"schema": _schema_of(s)} for t, s in op.extra["replies"].items()}
    elif op.reply is not None:
        ok["content"] = {op.reply_type: {"schema": _schema_of(op.reply)}}
    out: dict = {
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {
            str(code): dict(ok, description=op.extra.get("ok_words", {}).get(code, "OK"))
            for code in (op.ok, *op.extra.get("also_ok", ()))
        }
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
    params = params + op.extra.get("parameters", [])
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
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            described = _describe(op, method, params, components)
            # The view's name, as code generators name their methods: "review_api_queue".
            name = rule.endpoint.replace(".", "_")
            described["operationId"] = name if len(methods) == 1 else f"{name}_{method.lower()}"
            paths.setdefault(path, {})[method.lower()] = described
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
