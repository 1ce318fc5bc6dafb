"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json."""

from functools import cache

ERR = {"$ref": "#/components/schemas/Error"}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
ID_INT = {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}
PHONE = {"type": ["string", "null"], "pattern": "^\\+?[0-9 ().-]{5,30}$"}
EMAIL = {
    "type": ["string", "null"],
    "pattern": "^[^@\\s]{1,64}@[^@\\s]+\\.[^@\\s]{2,}$",
    "maxLength": 254,
}
TEXT = {"type": "string", "minLength": 1, "pattern": "\\S"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict, required: tuple = (), extra: bool = True) -> dict:
    out = {"type": "object", "properties": props, "required": list(required)}
    if not extra:
        out["additionalProperties"] = False
    return out


def arr(items: dict) -> dict:
    return {"type": "array", "items": items}


SYMPTOMS = ("bruising", "peeling", "itching", "oozing", "bumps", "patches")
WARNINGS = ("spreading_redness", "fever", "pus", "eye_or_breathing", "blisters")
QUIET = obj(
    {
        "start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
        "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
    },
    ("start", "end"),
    extra=False,
)

SCHEMAS = {
    "TimeZone": {"type": "string", "description": "IANA time zone, e.g. Europe/London"},
    "Error": obj(
        {
            "error": obj(
                {"code": STR, "message": STR, "fields": {"type": "object"}},
                ("code", "message", "fields"),
            )
        },
        ("error",),
    ),
    "Clinic": obj({"id": INT, "name": STR, "phone": NSTR, "timezone": STR}),
    "Practitioner": obj(
        {
            "id": INT,
            "clinic_id": INT,
            "email": STR,
            "name": STR,
            "active": BOOL,
            "alert_severities": arr(STR),
        }
    ),
    "Client": obj(
        {
            "id": INT,
            "clinic_id": INT,
            "name": STR,
            "email": NSTR,
            "phone": NSTR,
            "timezone": STR,
            "quiet_hours": QUIET,
            "discreet": BOOL,
            "created_at": TIME,
        },
        ("id", "name", "timezone"),
    ),
    "Me": obj(
        {
            "kind": {"enum": ["practitioner", "client"]},
            "clinic": ref("Clinic"),
            "practitioner": ref("Practitioner"),
            "client": ref("Client"),
        },
        ("kind", "clinic"),
    ),
    "ScheduleRow": obj(
        {
            "id": INT,
            "step_key": NSTR,
            "kind": STR,
            "title": STR,
            "due_at": TIME,
            "expires_at": TIME,
            "status": {"enum": ["pending", "leased", "sent", "skipped", "failed", "cancelled"]},
            "status_reason": NSTR,
            "attempts": INT,
            "sent_at": NTIME,
            "delivered_to": INT,
        }
    ),
    "Session": obj(
        {
            "id": INT,
            "client_id": INT,
            "clinic_id": INT,
            "performed_at": TIME,
            "areas": arr(STR),
            "needle_depth_mm": {"type": "number"},
            "device": STR,
            "products": arr(STR),
            "notes": STR,
            "protocol_id": {"type": ["integer", "null"]},
            "protocol_version": {"type": ["integer", "null"]},
            "schedule": arr(ref("ScheduleRow")),
        },
        (
            "id",
            "client_id",
            "performed_at",
            "areas",
            "needle_depth_mm",
            "device",
            "products",
            "notes",
        ),
    ),
    "SessionInput": obj(
        {
            "performed_at": {
                "type": "string",
                "format": "date-time",
                "description": "ISO 8601 with offset",
            },
            "areas": arr({"type": "string", "minLength": 1, "maxLength": 60}),
            "needle_depth_mm": {"type": "number", "minimum": 0.1, "maximum": 3.0},
            "device": {"enum": ["pen", "roller"]},
            "products": arr({"type": "string", "maxLength": 80}),
            "notes": {"type": "string", "maxLength": 4000},
        },
        ("performed_at", "areas", "needle_depth_mm", "device"),
        extra=False,
    ),
    "ClientInput": obj(
        {
            "name": dict(TEXT, maxLength=100),
            "email": EMAIL,
            "phone": PHONE,
            "timezone": {"$ref": "#/components/schemas/TimeZone"},
            "quiet_hours": QUIET,
            "discreet": BOOL,
        },
        ("name",),
        extra=False,
    ),
    "Invite": obj(
        {"token": STR, "url": STR, "expires_at": TIME, "qr_svg": STR},
        ("token", "url", "expires_at", "qr_svg"),
    ),
    "Step": obj(
        {
            "key": STR,
            "title": STR,
            "body": STR,
            "kind": {"enum": ["instruction", "checkin", "recall"]},
            "at": {
                "type": "object",
                "description": '{"offset_hours": n} or {"day": n, "time": "HH:MM"}',
            },
            "valid_hours": {"type": "number"},
            "min_gap_hours": {"type": "number"},
        },
        ("key", "title", "body", "kind", "at"),
    ),
    "Protocol": obj({"id": INT, "version": INT, "created_at": TIME, "steps": arr(ref("Step"))}),
    "PushSubscription": obj(
        {
            "endpoint": {"type": "string", "format": "uri"},
            "expirationTime": {"type": ["number", "null"]},
            "keys": obj({"p256dh": STR, "auth": STR}, ("p256dh", "auth")),
        },
        ("endpoint", "keys"),
        extra=False,
    ),
    "Subscription": obj(
        {
            "id": INT,
            "endpoint": STR,
            "created_at": TIME,
            "last_success_at": NTIME,
            "gone": BOOL,
            "user_agent": NSTR,
        }
    ),
    "Assessment": obj(
        {
            "status": {"enum": ["expected", "review", "urgent"]},
            "message": STR,
            "flags": arr(
                obj(
                    {
                        "rule": STR,
                        "severity": {"enum": ["info", "review", "urgent"]},
                        "reason": STR,
                    },
                    ("rule", "severity"),
                )
            ),
        },
        ("status", "message", "flags"),
    ),
    "CheckinInput": obj(
        {
            "id": {"type": "string", "format": "uuid"},
            "session_id": {"type": ["integer", "null"]},
            "taken_at": {"type": "string", "format": "date-time"},
            "redness": {"type": "integer", "minimum": 0, "maximum": 4},
            "swelling": {"type": "integer", "minimum": 0, "maximum": 4},
            "pain": {"type": "integer", "minimum": 0, "maximum": 10},
            "symptoms": obj({k: BOOL for k in SYMPTOMS}, extra=False),
            "warning_signs": obj({k: BOOL for k in WARNINGS}, extra=False),
            "note": {"type": ["string", "null"], "maxLength": 2000},
        },
        ("id", "taken_at", "redness", "swelling", "pain"),
        extra=False,
    ),
    "Checkin": obj(
        {
            "id": STR,
            "client_id": INT,
            "session_id": {"type": ["integer", "null"]},
            "taken_at": TIME,
            "received_at": TIME,
            "redness": INT,
            "swelling": INT,
            "pain": INT,
            "symptoms": {"type": "object"},
            "warning_signs": {"type": "object"},
            "note": STR,
            "day": {"type": ["integer", "null"]},
            "assessment": ref("Assessment"),
            "photos": arr(ref("Photo")),
        },
        ("id", "taken_at", "redness", "swelling", "pain", "assessment"),
    ),
    "Photo": obj({"id": STR, "url": STR, "width": INT, "height": INT, "bytes": INT}),
    "Flag": obj(
        {
            "id": INT,
            "rule": STR,
            "severity": {"enum": ["urgent", "review", "info"]},
            "status": {"enum": ["open", "acknowledged", "resolved"]},
            "client_id": INT,
            "client_name": STR,
            "session_id": {"type": ["integer", "null"]},
            "reason": STR,
            "opened_at": TIME,
            "updated_at": TIME,
            "acknowledged_at": NTIME,
            "called_at": NTIME,
            "resolved_at": NTIME,
            "note": NSTR,
        },
        ("id", "rule", "severity", "status", "client_id", "session_id", "reason", "opened_at"),
    ),
    "Reminder": obj(
        {
            "id": INT,
            "kind": STR,
            "title": STR,
            "body": STR,
            "url": STR,
            "due_at": TIME,
            "status": STR,
        }
    ),
}


def op(
    summary: str,
    ok: tuple[int, dict | None],
    *,
    errors: tuple = (401,),
    body: dict | None = None,
    tag: str = "api",
    params: tuple = (),
    body_type: str = "application/json",
    public: bool = False,
) -> dict:
    status, schema = ok
    responses = {str(status): {"description": "OK"}}
    if schema is not None:
        responses[str(status)]["content"] = {"application/json": {"schema": schema}}
    for code in errors:
        responses[str(code)] = {
            "description": "Error",
            "content": {"application/json": {"schema": ERR}},
        }
    out = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        out["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if params:
        out["parameters"] = list(params)
    if public:
        out["security"] = []
    return out


def zones() -> dict:
    from zoneinfo import available_timezones

    return {
        "type": "string",
        "description": "IANA time zone",
        "enum": sorted(available_timezones()),
    }


def path_param(name: str, schema: dict = ID_INT) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


ID = path_param("id")


def paths() -> dict:
    P, C = "practitioner", "client"
    v = (401, 404, 415, 422)
    return {
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                },
            }
        },
        "/api/setup": {
            "post": op(
                "Create the first clinic and practitioner (first run only)",
                (201, ref("Me")),
                errors=(400, 409, 415, 422),
                tag="session",
                public=True,
                body=obj(
                    {
                        "clinic_name": STR,
                        "clinic_phone": NSTR,
                        "timezone": STR,
                        "email": STR,
                        "name": STR,
                        "password": STR,
                    },
                    ("clinic_name", "timezone", "email", "name", "password"),
                    extra=False,
                ),
            )
        },
        "/api/auth/login": {
            "post": op(
                "Sign a practitioner in",
                (200, ref("Me")),
                errors=(400, 401, 415, 422, 429),
                tag="session",
                public=True,
                body=obj(
                    {
                        "email": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 254,
                            "pattern": "^[^\\u0000]*$",
                        },
                        "password": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 200,
                            "pattern": "^[^\\u0000]*$",
                        },
                    },
                    ("email", "password"),
                    extra=False,
                ),
            )
        },
        "/api/auth/logout": {
            "post": op(
                "Sign out of this session", (204, None), errors=(), tag="session", public=True
            )
        },
        "/api/auth/logout-all": {"post": op("Sign out everywhere", (204, None), tag="session")},
        "/api/me": {
            "get": op("Who is signed in", (200, ref("Me")), tag="session"),
            "patch": op(
                "Change your own settings (client: timezone, quiet_hours, discreet;"
                " practitioner: name, alert_severities)",
                (200, ref("Me")),
                errors=(400, 401, 415, 422),
                tag="session",
                body=obj(
                    {
                        "timezone": STR,
                        "quiet_hours": QUIET,
                        "discreet": BOOL,
                        "name": STR,
                        "alert_severities": arr({"enum": ["urgent", "review", "info"]}),
                    },
                    extra=False,
                ),
            ),
        },
        "/api/practitioners": {
            "get": op(
                "Practitioners of your clinic",
                (200, obj({"practitioners": arr(ref("Practitioner"))})),
                errors=(401, 403),
                tag=P,
            ),
            "post": op(
                "Add a colleague",
                (201, ref("Practitioner")),
                errors=(401, 403, 409, 415, 422),
                tag=P,
                body=obj(
                    {"email": STR, "name": STR, "password": STR},
                    ("email", "name", "password"),
                    extra=False,
                ),
            ),
        },
        "/api/practitioners/{id}/disable": {
            "post": op(
                "Disable a colleague; their sessions end",
                (200, ref("Practitioner")),
                errors=(401, 403, 404, 409),
                tag=P,
                params=(ID,),
            )
        },
        "/api/clients": {
            "get": op(
                "Clients of your clinic",
                (200, obj({"clients": arr(ref("Client"))})),
                errors=(401, 403, 422),
                tag=P,
                params=(
                    {"name": "q", "in": "query", "schema": STR},
                    {"name": "limit", "in": "query", "schema": INT},
                    {"name": "offset", "in": "query", "schema": INT},
                ),
            ),
            "post": op(
                "Add a client",
                (201, ref("Client")),
                errors=(400, 401, 403, 415, 422),
                tag=P,
                body=ref("ClientInput"),
            ),
        },
        "/api/clients/{id}": {
            "get": op(
                "A client with their sessions",
                (200, ref("Client")),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            ),
            "patch": op(
                "Change a client",
                (200, ref("Client")),
                errors=(400, 401, 403, *v),
                tag=P,
                params=(ID,),
                body=ref("ClientInput"),
            ),
            "delete": op(
                "Erase everything about a client",
                (204, None),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            ),
        },
        "/api/clients/{id}/invites": {
            "post": op(
                "Issue a one-time invite (revokes earlier ones)",
                (201, ref("Invite")),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            )
        },
        "/api/invites/{token}/redeem": {
            "post": op(
                "Sign this phone in as the invited client",
                (200, ref("Me")),
                errors=(404, 410),
                tag=C,
                public=True,
                params=(path_param("token", STR),),
            )
        },
        "/api/clients/{id}/sessions": {
            "get": op(
                "A client's sessions",
                (200, obj({"sessions": arr(ref("Session"))})),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            ),
            "post": op(
                "Record a session and plan its reminders",
                (201, ref("Session")),
                errors=(400, 401, 403, *v),
                tag=P,
                params=(ID,),
                body=ref("SessionInput"),
            ),
        },
        "/api/sessions/{id}": {
            "get": op(
                "A session and its schedule with delivery status",
                (200, ref("Session")),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            ),
            "patch": op(
                "Edit a session (a new time re-plans unsent reminders)",
                (200, ref("Session")),
                errors=(400, 401, 403, *v),
                tag=P,
                params=(ID,),
                body=ref("SessionInput"),
            ),
            "delete": op(
                "Delete a session and cancel its unsent reminders",
                (204, None),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            ),
        },
        "/api/protocol": {
            "get": op(
                "Your clinic's aftercare protocol", (200, ref("Protocol")), errors=(401, 403), tag=P
            ),
            "put": op(
                "Replace the protocol with a new version",
                (200, ref("Protocol")),
                errors=(400, 401, 403, 415, 422),
                tag=P,
                body=obj({"steps": arr(ref("Step"))}, ("steps",), extra=False),
            ),
        },
        "/api/push/vapid-public-key": {
            "get": op(
                "The VAPID application server key",
                (200, obj({"public_key": STR}, ("public_key",))),
                errors=(),
                tag="push",
                public=True,
            )
        },
        "/api/push/subscriptions": {
            "get": op(
                "Your devices' subscriptions",
                (200, obj({"subscriptions": arr(ref("Subscription"))})),
                tag="push",
            ),
            "post": op(
                "Store this device's PushSubscription.toJSON()",
                (201, ref("Subscription")),
                errors=(400, 401, 415, 422),
                tag="push",
                body=ref("PushSubscription"),
            ),
            "delete": op(
                "Forget a subscription by endpoint",
                (204, None),
                errors=(400, 401, 404, 415, 422),
                tag="push",
                body=obj({"endpoint": STR}, ("endpoint",)),
            ),
        },
        "/api/aftercare": {
            "get": op(
                "Today's instructions, the next reminder, and the inbox of due reminders",
                (
                    200,
                    obj(
                        {
                            "session": {"type": ["object", "null"]},
                            "day": {"type": ["integer", "null"]},
                            "today": arr(ref("Reminder")),
                            "next": {"oneOf": [ref("Reminder"), {"type": "null"}]},
                            "past": arr(ref("Reminder")),
                            "inbox": arr(ref("Reminder")),
                        }
                    ),
                ),
                errors=(401, 403),
                tag=C,
            )
        },
        "/api/checkins": {
            "post": op(
                "Report a check-in; a replay of the same id returns the stored answer (200)",
                (201, ref("Checkin")),
                errors=(400, 401, 403, 404, 409, 415, 422, 429),
                tag=C,
                body=ref("CheckinInput"),
            ),
            "get": op(
                "Check-ins: a client's own, or ?client_id= for a practitioner",
                (200, obj({"checkins": arr(ref("Checkin"))})),
                errors=(401, 404, 422),
                tag=C,
                params=({"name": "client_id", "in": "query", "schema": INT},),
            ),
        },
        "/api/checkins/{id}/photos": {
            "post": op(
                "Attach a photo (raw JPEG/PNG/WebP/HEIC body); re-encoded without EXIF",
                (201, ref("Photo")),
                errors=(401, 403, 404, 409, 413, 415, 422),
                tag=C,
                params=(path_param("id", STR),),
                body={"type": "string", "format": "binary"},
                body_type="image/*",
            )
        },
        "/api/photos/{id}": {
            "get": {
                "summary": "A check-in photo (its client and their clinic only)",
                "tags": [C],
                "parameters": [path_param("id", STR)],
                "responses": {
                    "200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                    "401": {
                        "description": "Error",
                        "content": {"application/json": {"schema": ERR}},
                    },
                    "404": {
                        "description": "Error",
                        "content": {"application/json": {"schema": ERR}},
                    },
                },
            }
        },
        "/api/flags": {
            "get": op(
                "The review queue: active flags, urgent first then oldest",
                (
                    200,
                    obj(
                        {
                            "flags": arr(ref("Flag")),
                            "counts": obj({"urgent": INT, "review": INT, "info": INT}),
                        }
                    ),
                ),
                errors=(401, 403, 422),
                tag=P,
                params=(
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["active", "open", "acknowledged", "resolved", "all"]},
                    },
                    {
                        "name": "severity",
                        "in": "query",
                        "schema": {"enum": ["urgent", "review", "info"]},
                    },
                    {"name": "practitioner_id", "in": "query", "schema": INT},
                    {"name": "client_id", "in": "query", "schema": INT},
                    {"name": "limit", "in": "query", "schema": INT},
                ),
            )
        },
        "/api/flags/{id}": {
            "get": op(
                "A flag with its history",
                (200, ref("Flag")),
                errors=(401, 403, 404),
                tag=P,
                params=(ID,),
            )
        },
        **{
            f"/api/flags/{{id}}/{action}": {
                "post": op(
                    summary,
                    (200, ref("Flag")),
                    errors=(400, 401, 403, 404, 409, 415, 422),
                    tag=P,
                    params=(ID,),
                    body=obj({"note": STR}, extra=False),
                )
            }
            for action, summary in (
                ("acknowledge", "Acknowledge a flag"),
                ("called", "Record that you called the client"),
                ("resolve", "Resolve a flag, with an optional note"),
            )
        },
        "/api/clients/{id}/export": {
            "get": {
                "summary": "Everything about a client (JSON); ?format=csv: check-ins; ?format=fhir: FHIR R4 Bundle",
                "tags": [P],
                "parameters": [
                    ID,
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "fhir"]}},
                ],
                "responses": {
                    "200": {
                        "description": "Export",
                        "content": {
                            "application/json": {"schema": {"type": "object"}},
                            "application/fhir+json": {"schema": {"type": "object"}},
                            "text/csv": {"schema": STR},
                        },
                    },
                    **{
                        str(c): {
                            "description": "Error",
                            "content": {"application/json": {"schema": ERR}},
                        }
                        for c in (401, 403, 404, 422)
                    },
                },
            }
        },
        **{
            f"/api/exports/{name}.csv": {
                "get": {
                    "summary": f"The clinic's {name} in [from, to) as CSV",
                    "tags": [P],
                    "parameters": [
                        {"name": "from", "in": "query", "schema": STR},
                        {"name": "to", "in": "query", "schema": STR},
                    ],
                    "responses": {
                        "200": {"description": "CSV", "content": {"text/csv": {"schema": STR}}},
                        **{
                            str(c): {
                                "description": "Error",
                                "content": {"application/json": {"schema": ERR}},
                            }
                            for c in (401, 403, 422)
                        },
                    },
                }
            }
            for name in ("checkins", "flags")
        },
        "/api/audit": {
            "get": op(
                "Your clinic's audit log, newest first",
                (200, obj({"entries": arr({"type": "object"})})),
                errors=(401, 403, 422),
                tag=P,
                params=(
                    {"name": "client_id", "in": "query", "schema": INT},
                    {"name": "before", "in": "query", "schema": INT},
                ),
            )
        },
    }


def _named(raw: dict) -> dict:
    """Name each {id} after its collection ({client_id}, {flag_id}...), as the routes do."""
    out = {}
    for path, item in raw.items():
        if "{id}" in path:
            before = path.split("/{id}")[0].rsplit("/", 1)[1]
            name = {
                "checkins": "checkin",
                "clients": "client",
                "flags": "flag",
                "photos": "photo",
                "practitioners": "practitioner",
                "sessions": "session",
            }[before] + "_id"
            path = path.replace("{id}", "{" + name + "}")
            for operation in item.values():
                operation["parameters"] = [
                    dict(p, name=name) if p["name"] == "id" else p
                    for p in operation.get("parameters", [])
                ]
        out[path] = item
    return out


@cache
def document() -> dict:
    """Build the OpenAPI document (once per process)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Companion API",
            "version": "1",
            "description": "Session-cookie auth. Writes need Content-Type: application/json"
            " and a same-origin Origin. Errors: {error: {code, message, fields}}.",
        },
        "paths": _named(paths()),
        "components": {
            "schemas": dict(SCHEMAS, TimeZone=zones()),
            "securitySchemes": {"cookie": {"type": "apiKey", "in": "cookie", "name": "session"}},
        },
        "security": [{"cookie": []}],
    }
