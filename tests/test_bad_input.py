"""Bad input, endpoint by endpoint: a clear 4xx in the API's error shape, and nothing changed.

Each table row is (label, change, field): the endpoint's valid body with `change` applied
(DROP removes a key) must be refused naming `field` in error.fields, and every table of
the database must be exactly as before.
"""

import base64
import io
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, checkin_body, sql
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_isolation import snapshot, template_world_fixture, world_fixture  # noqa: F401

from companion.cli import migrate

DROP = object()  # remove this key from the valid body


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def p256_point() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def ahead(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


# The endpoints: (method, path, who calls, a valid body) -----------------------------------------


def valid_session() -> dict:
    return {
        "performed_at": ago(hours=1),
        "areas": ["face", "neck"],
        "needle_depth_mm": 0.5,
        "device": "pen",
        "products": ["hyaluronic serum"],
        "notes": "Tolerated well.",
    }


def valid_subscription() -> dict:
    return {
        "endpoint": "https://push.example.net/send/abc123",
        "expirationTime": None,
        "keys": {"p256dh": b64(p256_point()), "auth": b64(os.urandom(16))},
    }


def protocol_steps(world) -> list[dict]:
    steps = world.p1.get("/api/protocol").json["steps"]
    return [{k: v for k, v in s.items() if k != "when"} for s in steps]  # "when" is read-only


ENDPOINTS = {
    "create_client": (
        "POST",
        "/api/clients",
        "p1",
        lambda w: {"name": "Dana", "email": "dana@mail-tests.net", "timezone": "Europe/Paris"},
    ),
    "update_client": ("PATCH", "/api/clients/{client}", "p1", lambda w: {"name": "Alice B"}),
    "create_session": ("POST", "/api/clients/{client}/sessions", "p1", lambda w: valid_session()),
    "update_session": (
        "PATCH",
        "/api/sessions/{session}",
        "p1",
        lambda w: {"notes": "Edited.", "needle_depth_mm": 1.0},
    ),
    "login": (
        "POST",
        "/api/auth/login",
        "anon",
        lambda w: {"email": "one@clinic-one.net", "password": PASSWORD},
    ),
    "add_practitioner": (
        "POST",
        "/api/practitioners",
        "p1",
        lambda w: {"email": "new@clinic-one.net", "name": "Dr New", "password": PASSWORD},
    ),
    "subscribe": ("POST", "/api/push/subscriptions", "c1", lambda w: valid_subscription()),
    "protocol": ("PUT", "/api/protocol", "p1", lambda w: {"steps": protocol_steps(w)}),
    "me_client": (
        "PATCH",
        "/api/me",
        "c1",
        lambda w: {"discreet": True, "timezone": "Europe/Paris"},
    ),
    "me_practitioner": ("PATCH", "/api/me", "p1", lambda w: {"name": "Dr One Renamed"}),
    "checkin": ("POST", "/api/checkins", "c1", lambda w: checkin_body()),
}


def target(world, endpoint: str) -> tuple[str, str, object]:
    method, path, who, _ = ENDPOINTS[endpoint]
    path = path.format(client=world.client1["id"], session=world.session1["id"])
    return method, path, getattr(world, who)


def send(
    world,
    endpoint: str,
    *,
    body=None,
    raw: bytes | str | None = None,
    content_type: str | None = "application/json",
    headers: dict | None = None,
    path: str | None = None,
):
    method, default_path, api = target(world, endpoint)
    data = raw if raw is not None else api.app.json.dumps(body)
    return api.http.open(
        path or default_path,
        method=method,
        data=data,
        content_type=content_type,
        headers=headers or {},
    )


def valid_body(world, endpoint: str) -> dict:
    return ENDPOINTS[endpoint][3](world)


def changed(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def assert_error(r, statuses, field: str | None = None, code: str | None = None) -> dict:
    statuses = (statuses,) if isinstance(statuses, int) else statuses
    text = r.get_data(as_text=True)
    assert r.status_code in statuses, (r.status_code, text[:400])
    assert r.mimetype == "application/json", text[:200]
    body = r.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "fields"} <= set(error), error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    if code:
        assert error["code"] == code, error
    if field:
        assert field in error["fields"], error
        assert isinstance(error["fields"][field], str) and error["fields"][field]
    return error


# Controls: each valid body is accepted (so the refusals below are about the change) ------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_valid_body_is_accepted(world, endpoint):
    r = send(world, endpoint, body=valid_body(world, endpoint))
    assert r.status_code in (200, 201), r.get_data(as_text=True)[:400]


# Every endpoint: bodies that are not a JSON object, bad JSON, wrong type, cross-site ----------

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000

GENERIC = [
    # (label, raw body or None for the valid body, content type, headers, statuses, code)
    ("array", "[]", "application/json", {}, (422,), "invalid"),
    ("array of objects", '[{"name": "x"}]', "application/json", {}, (422,), "invalid"),
    ("string", '"x"', "application/json", {}, (422,), "invalid"),
    ("number", "1", "application/json", {}, (422,), "invalid"),
    ("true", "true", "application/json", {}, (422,), "invalid"),
    ("null", "null", "application/json", {}, (400, 422), None),
    ("malformed", '{"name": ', "application/json", {}, (400,), "bad_json"),
    ("single quotes", "{'name': 'x'}", "application/json", {}, (400,), "bad_json"),
    ("trailing garbage", '{"name": "x"} x', "application/json", {}, (400,), "bad_json"),
    ("not utf-8", b'{"name": "\xff\xfe"}', "application/json", {}, (400,), "bad_json"),
    ("text/plain", None, "text/plain", {}, (415,), "unsupported_media_type"),
    ("form", None, "application/x-www-form-urlencoded", {}, (415,), "unsupported_media_type"),
    ("multipart", None, "multipart/form-data; boundary=x", {}, (415,), "unsupported_media_type"),
    ("no content type", None, None, {}, (415,), "unsupported_media_type"),
    (
        "cross-site origin",
        None,
        "application/json",
        {"Origin": "https://evil.example"},
        (403,),
        "bad_origin",
    ),
    (
        "other port origin",
        None,
        "application/json",
        {"Origin": "http://localhost:8080"},
        (403,),
        "bad_origin",
    ),
    ("null origin", None, "application/json", {"Origin": "null"}, (403,), "bad_origin"),
    (
        "cross-site fetch",
        None,
        "application/json",
        {"Sec-Fetch-Site": "cross-site"},
        (403,),
        "bad_origin",
    ),
]
DEEP_CASES = [
    ("deeply nested array", DEEP, "application/json", {}, (400, 413, 422), None),
    ("deeply nested object", DEEP_OBJECT, "application/json", {}, (400, 413, 422), None),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("label", "raw", "content_type", "headers", "statuses", "code"),
    GENERIC + [pytest.param(*case) for case in DEEP_CASES],
    ids=[c[0] for c in GENERIC + DEEP_CASES],
)
def test_generic_bad_requests(world, endpoint, label, raw, content_type, headers, statuses, code):
    if raw is None:
        raw = world.app.json.dumps(valid_body(world, endpoint))
    before = snapshot(world.app, skip=())
    r = send(world, endpoint, raw=raw, content_type=content_type, headers=headers)
    assert_error(r, statuses, code=code)
    assert snapshot(world.app, skip=()) == before


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e != "subscribe"])
def test_unknown_fields_are_refused(world, endpoint):
    before = snapshot(world.app, skip=())
    body = valid_body(world, endpoint) | {"is_admin": True}
    error = assert_error(send(world, endpoint, body=body), 422, code="invalid")
    assert "is_admin" in error["fields"] or "body" in error["fields"], error
    assert snapshot(world.app, skip=()) == before


def test_too_large_body_is_413(world):
    world.app.config["MAX_CONTENT_LENGTH"] = 2000
    before = snapshot(world.app, skip=())
    r = send(world, "create_client", body={"name": "x" * 5000})
    assert_error(r, 413)
    assert snapshot(world.app, skip=()) == before


# Field by field -------------------------------------------------------------------------------

NUL = "a\x00b"
SURROGATE = "\ud800"  # a lone surrogate: valid JSON (\ud800), not encodable as UTF-8

CLIENT_CASES = [
    ("name wrong type number", {"name": 123}, "name"),
    ("name wrong type bool", {"name": True}, "name"),
    ("name wrong type list", {"name": ["Dana"]}, "name"),
    ("name nested object", {"name": {"first": "Dana"}}, "name"),
    ("name empty", {"name": ""}, "name"),
    ("name blank", {"name": "   "}, "name"),
    ("name too long", {"name": "x" * 101}, "name"),
    ("name NUL", {"name": NUL}, "name"),
    pytest.param("name surrogate", {"name": SURROGATE}, "name"),
    ("email not an email", {"email": "dana"}, "email"),
    ("email no domain dot", {"email": "dana@mail"}, "email"),
    ("email number", {"email": 5}, "email"),
    ("email too long", {"email": "d" * 250 + "@mail-tests.net"}, "email"),
    ("email NUL", {"email": "da\x00na@mail-tests.net"}, "email"),
    ("phone letters", {"phone": "call me"}, "phone"),
    ("phone too long", {"phone": "1" * 31}, "phone"),
    ("phone number type", {"phone": 447700900000}, "phone"),
    ("timezone unknown", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("timezone wrong case", {"timezone": "europe/london"}, "timezone"),
    ("timezone offset", {"timezone": "+01:00"}, "timezone"),
    ("timezone path", {"timezone": "../../etc/passwd"}, "timezone"),
    ("timezone number", {"timezone": 1}, "timezone"),
    ("timezone list", {"timezone": ["Europe/Paris"]}, "timezone"),
    ("timezone too long", {"timezone": "Europe/" + "x" * 80}, "timezone"),
    pytest.param("quiet_hours string", {"quiet_hours": "21:00-08:00"}, "quiet_hours"),
    pytest.param("quiet_hours list", {"quiet_hours": ["21:00", "08:00"]}, "quiet_hours"),
    (
        "quiet_hours bad start",
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        "quiet_hours.start",
    ),
    (
        "quiet_hours short start",
        {"quiet_hours": {"start": "9:00", "end": "08:00"}},
        "quiet_hours.start",
    ),
    ("quiet_hours number", {"quiet_hours": {"start": 2100, "end": "08:00"}}, "quiet_hours.start"),
    ("quiet_hours missing end", {"quiet_hours": {"start": "21:00"}}, "quiet_hours.end"),
    (
        "quiet_hours extra",
        {"quiet_hours": {"start": "21:00", "end": "08:00", "tz": "UTC"}},
        "quiet_hours.tz",
    ),
    ("discreet string", {"discreet": "yes"}, "discreet"),
    ("discreet number", {"discreet": 1}, "discreet"),
    ("unknown clinic_id", {"clinic_id": 2}, "clinic_id"),
    ("unknown id", {"id": 99}, "id"),
]


@pytest.mark.parametrize(
    ("label", "change", "field"),
    CLIENT_CASES
    + [("name missing", {"name": DROP}, "name"), ("name null", {"name": None}, "name")],
)
def test_create_client_bad_input(world, label, change, field):
    check_field(world, "create_client", change, field)


@pytest.mark.parametrize(
    ("label", "change", "field"),
    CLIENT_CASES
    + [
        pytest.param("timezone null", {"timezone": None}, "timezone"),
        # A PATCH's null or "" that would mean nothing is refused, not a silent "unchanged".
        ("timezone empty", {"timezone": ""}, "timezone"),
        ("timezone blank", {"timezone": "  "}, "timezone"),
        ("quiet_hours null", {"quiet_hours": None}, "quiet_hours"),
        ("name null", {"name": None}, "name"),
        ("discreet null", {"discreet": None}, "discreet"),
        ("language null", {"language": None}, "language"),
    ],
)
def test_update_client_bad_input(world, label, change, field):
    check_field(world, "update_client", change, field)


def check_field(
    world,
    endpoint: str,
    change: dict,
    field: str,
    status: int = 422,
    code: str | None = "invalid",
    path: str | None = None,
) -> None:
    body = changed(valid_body(world, endpoint), change)
    before = snapshot(world.app, skip=())
    r = send(world, endpoint, body=body, path=path)
    assert_error(r, status, field=field, code=code)
    assert snapshot(world.app, skip=()) == before


SESSION_CASES = [
    ("performed_at not a date", {"performed_at": "yesterday"}, "performed_at"),
    ("performed_at date only", {"performed_at": "2026-05-01"}, "performed_at"),
    ("performed_at no offset", {"performed_at": "2026-05-01T14:30:00"}, "performed_at"),
    ("performed_at impossible day", {"performed_at": "2026-02-30T10:00:00Z"}, "performed_at"),
    ("performed_at bad offset", {"performed_at": "2026-05-01T14:30:00+25:00"}, "performed_at"),
    ("performed_at epoch number", {"performed_at": 1714557600}, "performed_at"),
    ("performed_at bool", {"performed_at": True}, "performed_at"),
    ("performed_at object", {"performed_at": {"date": "2026-05-01"}}, "performed_at"),
    (
        "performed_at too long",
        {"performed_at": "2026-05-01T14:30:00" + "0" * 40 + "Z"},
        "performed_at",
    ),
    ("performed_at year 1999", {"performed_at": "1999-12-31T10:00:00+00:00"}, "performed_at"),
    ("performed_at year 2200", {"performed_at": "2200-01-01T10:00:00+00:00"}, "performed_at"),
    ("performed_at 2 days ahead", {"performed_at": ahead(days=2)}, "performed_at"),
    ("areas string for list", {"areas": "face"}, "areas"),
    ("areas empty", {"areas": []}, "areas"),
    ("areas blank item", {"areas": ["  "]}, "areas"),
    ("areas number items", {"areas": [1, 2]}, "areas"),
    ("areas nested list", {"areas": [["face"]]}, "areas"),
    ("areas nested object", {"areas": [{"name": "face"}]}, "areas"),
    ("areas item too long", {"areas": ["x" * 61]}, "areas"),
    ("areas too many", {"areas": [f"area {i}" for i in range(11)]}, "areas"),
    ("areas NUL", {"areas": [NUL]}, "areas"),
    ("needle depth 0", {"needle_depth_mm": 0}, "needle_depth_mm"),
    ("needle depth 5", {"needle_depth_mm": 5}, "needle_depth_mm"),
    ("needle depth negative", {"needle_depth_mm": -0.5}, "needle_depth_mm"),
    ("needle depth just over", {"needle_depth_mm": 3.01}, "needle_depth_mm"),
    ("needle depth just under", {"needle_depth_mm": 0.09}, "needle_depth_mm"),
    ("needle depth bool", {"needle_depth_mm": True}, "needle_depth_mm"),
    ("needle depth string", {"needle_depth_mm": "0.5"}, "needle_depth_mm"),
    ("needle depth NaN string", {"needle_depth_mm": "NaN"}, "needle_depth_mm"),
    ("needle depth Infinity string", {"needle_depth_mm": "Infinity"}, "needle_depth_mm"),
    ("needle depth list", {"needle_depth_mm": [0.5]}, "needle_depth_mm"),
    ("needle depth object", {"needle_depth_mm": {"mm": 0.5}}, "needle_depth_mm"),
    ("needle depth huge", {"needle_depth_mm": 10**30}, "needle_depth_mm"),
    ("device unknown", {"device": "laser"}, "device"),
    ("device empty", {"device": ""}, "device"),
    ("device number", {"device": 1}, "device"),
    ("device list", {"device": ["pen"]}, "device"),
    ("device object", {"device": {"pen": True}}, "device"),
    ("device wrong case", {"device": "Pen"}, "device"),
    ("products string for list", {"products": "serum"}, "products"),
    ("products numbers", {"products": [1]}, "products"),
    ("products item too long", {"products": ["x" * 81]}, "products"),
    ("products too many", {"products": [f"p{i}" for i in range(11)]}, "products"),
    ("notes number", {"notes": 5}, "notes"),
    ("notes too long", {"notes": "x" * 4001}, "notes"),
    ("notes NUL", {"notes": NUL}, "notes"),
    pytest.param("notes surrogate", {"notes": SURROGATE}, "notes"),
    ("unknown client_id", {"client_id": 2}, "client_id"),
    ("unknown clinic_id", {"clinic_id": 2}, "clinic_id"),
    ("unknown needle_depth", {"needle_depth": 0.5}, "needle_depth"),
]


@pytest.mark.parametrize(
    ("label", "change", "field"),
    SESSION_CASES
    + [
        ("performed_at missing", {"performed_at": DROP}, "performed_at"),
        ("areas missing", {"areas": DROP}, "areas"),
        ("needle depth missing", {"needle_depth_mm": DROP}, "needle_depth_mm"),
        ("needle depth null", {"needle_depth_mm": None}, "needle_depth_mm"),
        ("device missing", {"device": DROP}, "device"),
    ],
)
def test_create_session_bad_input(world, label, change, field):
    check_field(world, "create_session", change, field)


@pytest.mark.parametrize(
    ("label", "change", "field"),
    SESSION_CASES
    + [
        ("performed_at null", {"performed_at": None}, "performed_at"),
        ("needle depth null", {"needle_depth_mm": None}, "needle_depth_mm"),
        ("areas null", {"areas": None}, "areas"),
        ("device null", {"device": None}, "device"),
    ],
)
def test_update_session_bad_input(world, label, change, field):
    check_field(world, "update_session", change, field)


@pytest.mark.parametrize(
    ("label", "raw"),
    [
        ("NaN literal", '"needle_depth_mm": NaN'),
        ("Infinity literal", '"needle_depth_mm": Infinity'),
        ("minus Infinity literal", '"needle_depth_mm": -Infinity'),
        ("overflowing float", '"needle_depth_mm": 1e999'),
    ],
)
@pytest.mark.parametrize("endpoint", ["create_session", "update_session"])
def test_needle_depth_non_finite_json_numbers(world, endpoint, label, raw):
    body = valid_body(world, endpoint)
    body.pop("needle_depth_mm", None)
    text = world.app.json.dumps(body)[:-1] + ", " + raw + "}"
    before = snapshot(world.app, skip=())
    r = send(world, endpoint, raw=text)
    assert_error(r, (400, 422), field=None)
    if r.status_code == 422:
        assert "needle_depth_mm" in r.json["error"]["fields"]
    assert snapshot(world.app, skip=()) == before


LOGIN_CASES = [
    ("email missing", {"email": DROP}, "email"),
    ("password missing", {"password": DROP}, "password"),
    ("email null", {"email": None}, "email"),
    ("email number", {"email": 1}, "email"),
    ("email list", {"email": ["one@clinic-one.net"]}, "email"),
    ("email object", {"email": {"$ne": ""}}, "email"),
    ("password number", {"password": 12345678901}, "password"),
    ("password list", {"password": [PASSWORD]}, "password"),
    ("password object", {"password": {"$ne": ""}}, "password"),
    ("password bool", {"password": True}, "password"),
    ("email too long", {"email": "x" * 250 + "@clinic-one.net"}, "email"),
    ("password too long", {"password": "x" * 201}, "password"),
    pytest.param(
        "email surrogate",
        {"email": "one" + SURROGATE + "@clinic-one.net"},
        "email",
    ),
    ("unknown remember", {"remember": True}, "remember"),
]


@pytest.mark.parametrize(
    "change",
    [
        {"email": "one@clinic-one.net\x00"},
        {"email": "one\x00@clinic-one.net"},
        {"password": "correct\x00horse battery"},
    ],
)
def test_login_with_nul_signs_nobody_in(world, change):
    # Any text is a sign-in attempt (a 401 counts as a failure); it must not be a 500.
    # (A *trailing* NUL on the right password is equivalent under HMAC's zero padding.)
    r = send(world, "login", body=changed(valid_body(world, "login"), change))
    assert_error(r, (401, 422))
    assert "Set-Cookie" not in r.headers or "session=" not in r.headers.get("Set-Cookie", "")
    assert world.anon.get("/api/me").status_code == 401


@pytest.mark.parametrize(("label", "change", "field"), LOGIN_CASES)
def test_login_bad_input(world, label, change, field):
    # Refused before any password check: no login_failures row, no audit row, no session.
    check_field(world, "login", change, field)


PRACTITIONER_CASES = [
    ("email missing", {"email": DROP}, "email"),
    ("email bad", {"email": "new-at-clinic"}, "email"),
    ("email number", {"email": 7}, "email"),
    ("name missing", {"name": DROP}, "name"),
    ("name empty", {"name": " "}, "name"),
    ("name too long", {"name": "x" * 101}, "name"),
    ("name NUL", {"name": NUL}, "name"),
    ("name object", {"name": {"first": "New"}}, "name"),
    ("password missing", {"password": DROP}, "password"),
    ("password short", {"password": "short"}, "password"),
    ("password too long", {"password": "x" * 201}, "password"),
    ("password number", {"password": 1234567890123}, "password"),
    ("password NUL", {"password": PASSWORD + "\x00"}, "password"),
    ("unknown clinic_id", {"clinic_id": 2}, "clinic_id"),
    ("unknown active", {"active": False}, "active"),
]


@pytest.mark.parametrize(("label", "change", "field"), PRACTITIONER_CASES)
def test_add_practitioner_bad_input(world, label, change, field):
    check_field(world, "add_practitioner", change, field)


@pytest.mark.parametrize("email", ["two@clinic-two.net", "ONE@clinic-one.net"])
def test_add_practitioner_with_a_taken_email_is_409(world, email):
    # Another clinic's address is taken too: emails are unique across the installation.
    check_field(
        world, "add_practitioner", {"email": email}, "email", status=409, code="email_taken"
    )


SUBSCRIPTION_CASES = [
    ("endpoint missing", {"endpoint": DROP}, "endpoint"),
    ("endpoint null", {"endpoint": None}, "endpoint"),
    ("endpoint number", {"endpoint": 42}, "endpoint"),
    ("endpoint list", {"endpoint": ["https://push.example.net/x"]}, "endpoint"),
    ("endpoint not a URL", {"endpoint": "not a url"}, "endpoint"),
    ("endpoint ftp", {"endpoint": "ftp://push.example.net/x"}, "endpoint"),
    ("endpoint javascript", {"endpoint": "javascript:alert(1)"}, "endpoint"),
    ("endpoint no host", {"endpoint": "https:///send/x"}, "endpoint"),
    ("endpoint credentials", {"endpoint": "https://user:pw@push.example.net/x"}, "endpoint"),
    ("endpoint bad port", {"endpoint": "https://push.example.net:99999/x"}, "endpoint"),
    ("endpoint too long", {"endpoint": "https://push.example.net/" + "x" * 5000}, "endpoint"),
    pytest.param(
        "endpoint NUL",
        {"endpoint": "https://push.example.net/a\x00b"},
        "endpoint",
    ),
    ("keys missing", {"keys": DROP}, "keys"),
    ("keys string", {"keys": "p256dh"}, "keys"),
    ("keys list", {"keys": []}, "keys"),
    ("p256dh missing", {"keys": {"auth": b64(os.urandom(16))}}, "keys.p256dh"),
    (
        "p256dh not base64url",
        {"keys": {"p256dh": "!!!!", "auth": b64(os.urandom(16))}},
        "keys.p256dh",
    ),
    (
        "p256dh too short",
        {"keys": {"p256dh": b64(b"\x04" + os.urandom(10)), "auth": b64(os.urandom(16))}},
        "keys.p256dh",
    ),
    (
        "p256dh not on the curve",
        {"keys": {"p256dh": b64(b"\x04" + b"\x01" * 64), "auth": b64(os.urandom(16))}},
        "keys.p256dh",
    ),
    ("p256dh number", {"keys": {"p256dh": 4, "auth": b64(os.urandom(16))}}, "keys.p256dh"),
    (
        "auth 15 bytes",
        {"keys": {"p256dh": b64(p256_point()), "auth": b64(os.urandom(15))}},
        "keys.auth",
    ),
    ("auth missing", {"keys": {"p256dh": b64(p256_point())}}, "keys.auth"),
    ("auth object", {"keys": {"p256dh": b64(p256_point()), "auth": {}}}, "keys.auth"),
    ("expirationTime string", {"expirationTime": "soon"}, "expirationTime"),
    ("expirationTime bool", {"expirationTime": True}, "expirationTime"),
]


@pytest.mark.parametrize(("label", "change", "field"), SUBSCRIPTION_CASES)
def test_push_subscription_bad_input(world, label, change, field):
    check_field(world, "subscribe", change, field)


def test_push_subscription_to_a_private_address_is_refused_in_production(world):
    world.app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] = False
    for endpoint in (
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "http://push.example.net/x",
    ):
        check_field(world, "subscribe", {"endpoint": endpoint}, "endpoint")


def step(**change) -> dict:
    base = {
        "key": "extra",
        "title": "Extra",
        "body": "Extra step.",
        "kind": "instruction",
        "at": {"offset_hours": 1},
    }
    return {k: v for k, v in (base | change).items() if v is not DROP}


PROTOCOL_CASES = [
    ("steps missing", {"steps": DROP}, "steps"),
    ("steps string", {"steps": "x"}, "steps"),
    ("steps object", {"steps": {"key": "a"}}, "steps"),
    ("steps empty", {"steps": []}, "steps"),
    ("step not an object", {"steps": [1]}, "steps[0]"),
    ("step nested list", {"steps": [[step()]]}, "steps[0]"),
    ("step title missing", {"steps": [step(title=DROP)]}, "steps[0].title"),
    ("step key object", {"steps": [step(key={})]}, "steps[0].key"),
    ("step kind unknown", {"steps": [step(kind="sms")]}, "steps[0].kind"),
    ("step at list", {"steps": [step(at=[])]}, "steps[0].at"),
    ("step at day without time", {"steps": [step(at={"day": 2})]}, "steps[0].at.time"),
    ("step at both forms", {"steps": [step(at={"offset_hours": 1, "day": 2})]}, "steps[0].at.day"),
    (
        "step offset NaN string",
        {"steps": [step(at={"offset_hours": "NaN"})]},
        "steps[0].at.offset_hours",
    ),
    ("step offset bool", {"steps": [step(at={"offset_hours": True})]}, "steps[0].at.offset_hours"),
    ("step title too long", {"steps": [step(title="x" * 61)]}, "steps[0].title"),
    pytest.param("step title NUL", {"steps": [step(title=NUL)]}, "steps[0].title"),
    pytest.param("step body NUL", {"steps": [step(body=NUL)]}, "steps[0].body"),
    ("step unknown field", {"steps": [step(colour="red")]}, "steps[0].colour"),
    ("duplicate keys", {"steps": [step(), step()]}, "steps[1].key"),
    ("too many steps", {"steps": [step(key=f"s{i}") for i in range(101)]}, "steps"),
    ("unknown top-level field", {"name": "mine"}, "body"),
]


@pytest.mark.parametrize(("label", "change", "field"), PROTOCOL_CASES)
def test_protocol_bad_input(world, label, change, field):
    check_field(world, "protocol", change, field)


ME_CLIENT_CASES = [
    ("timezone unknown", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("timezone number", {"timezone": 5}, "timezone"),
    ("timezone NUL", {"timezone": "Europe/Paris\x00"}, "timezone"),
    pytest.param("timezone null", {"timezone": None}, "timezone"),
    ("timezone empty", {"timezone": ""}, "timezone"),
    ("quiet_hours null", {"quiet_hours": None}, "quiet_hours"),
    ("discreet null", {"discreet": None}, "discreet"),
    ("language null", {"language": None}, "language"),
    ("discreet string", {"discreet": "on"}, "discreet"),
    ("quiet_hours bad", {"quiet_hours": {"start": "24:00", "end": "08:00"}}, "quiet_hours.start"),
    pytest.param("quiet_hours string", {"quiet_hours": "none"}, "quiet_hours"),
    ("name is not the client's to change", {"name": "Someone Else"}, "name"),
    ("email is not the client's to change", {"email": "x@mail-tests.net"}, "email"),
    ("clinic_id", {"clinic_id": 2}, "clinic_id"),
]


@pytest.mark.parametrize(("label", "change", "field"), ME_CLIENT_CASES)
def test_update_me_as_client_bad_input(world, label, change, field):
    check_field(world, "me_client", change, field)


ME_PRACTITIONER_CASES = [
    ("name empty", {"name": ""}, "name"),
    ("name null", {"name": None}, "name"),
    ("severities null", {"alert_severities": None}, "alert_severities"),
    ("name number", {"name": 5}, "name"),
    ("name too long", {"name": "x" * 101}, "name"),
    ("name NUL", {"name": NUL}, "name"),
    ("severities string", {"alert_severities": "urgent"}, "alert_severities"),
    ("severities unknown", {"alert_severities": ["panic"]}, "alert_severities"),
    ("severities numbers", {"alert_severities": [1]}, "alert_severities"),
    ("severities object", {"alert_severities": {"urgent": True}}, "alert_severities"),
    pytest.param(
        "severities list of objects",
        {"alert_severities": [{}]},
        "alert_severities",
    ),
    pytest.param(
        "severities nested list",
        {"alert_severities": [["urgent"]]},
        "alert_severities",
    ),
    ("email is not changed here", {"email": "x@clinic-one.net"}, "email"),
    ("active", {"active": False}, "active"),
    ("clinic_id", {"clinic_id": 2}, "clinic_id"),
]


@pytest.mark.parametrize(("label", "change", "field"), ME_PRACTITIONER_CASES)
def test_update_me_as_practitioner_bad_input(world, label, change, field):
    check_field(world, "me_practitioner", change, field)


def test_empty_alert_severities_round_trip(world):
    r = world.p1.patch("/api/me", {"alert_severities": []})
    assert r.status_code == 200
    assert r.json["practitioner"]["alert_severities"] == []


CHECKIN_CASES = [
    ("id missing", {"id": DROP}, "id"),
    ("id not a uuid", {"id": "not-a-uuid"}, "id"),
    ("id number", {"id": 123}, "id"),
    ("id too long", {"id": "12345678-1234-5678-1234-5678123456789"}, "id"),
    ("id NUL", {"id": "12345678-1234-5678-1234-56781234567\x00"}, "id"),
    ("session_id string", {"session_id": "1"}, "session_id"),
    ("session_id bool", {"session_id": True}, "session_id"),
    ("session_id zero", {"session_id": 0}, "session_id"),
    ("session_id negative", {"session_id": -1}, "session_id"),
    ("session_id fraction", {"session_id": 1.5}, "session_id"),
    ("session_id huge", {"session_id": 2**70}, "session_id"),
    ("taken_at missing", {"taken_at": DROP}, "taken_at"),
    ("taken_at date only", {"taken_at": "2026-05-01"}, "taken_at"),
    (
        "taken_at no offset",
        {"taken_at": datetime.now(UTC).replace(tzinfo=None).isoformat()},
        "taken_at",
    ),
    ("taken_at in the future", {"taken_at": ahead(hours=1)}, "taken_at"),
    ("taken_at 91 days ago", {"taken_at": ago(days=91)}, "taken_at"),
    ("taken_at number", {"taken_at": 1714557600}, "taken_at"),
    ("redness 5", {"redness": 5}, "redness"),
    ("redness negative", {"redness": -1}, "redness"),
    ("redness fraction", {"redness": 2.5}, "redness"),
    ("redness bool", {"redness": True}, "redness"),
    ("redness string", {"redness": "2"}, "redness"),
    ("redness null", {"redness": None}, "redness"),
    ("redness missing", {"redness": DROP}, "redness"),
    ("swelling 5", {"swelling": 5}, "swelling"),
    ("swelling list", {"swelling": [1]}, "swelling"),
    ("pain 11", {"pain": 11}, "pain"),
    ("pain object", {"pain": {"level": 2}}, "pain"),
    ("symptoms string", {"symptoms": "peeling"}, "symptoms"),
    ("symptoms list", {"symptoms": ["peeling"]}, "symptoms"),
    ("symptoms not bool", {"symptoms": {"peeling": "yes"}}, "symptoms"),
    ("symptoms unknown key", {"symptoms": {"rash": True}}, "symptoms"),
    ("warning_signs list", {"warning_signs": []}, "warning_signs"),
    ("warning_signs number", {"warning_signs": {"fever": 1}}, "warning_signs"),
    ("warning_signs unknown key", {"warning_signs": {"headache": True}}, "warning_signs"),
    ("note number", {"note": 5}, "note"),
    ("note too long", {"note": "x" * 2001}, "note"),
    ("note NUL", {"note": NUL}, "note"),
    pytest.param("note surrogate", {"note": SURROGATE}, "note"),
    ("unknown client_id", {"client_id": 2}, "client_id"),
    ("unknown assessment", {"assessment": {"status": "expected"}}, "assessment"),
]


@pytest.mark.parametrize(("label", "change", "field"), CHECKIN_CASES)
def test_checkin_bad_input(world, label, change, field):
    check_field(world, "checkin", change, field)


# Ids of other clinics -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("update_client", "/api/clients/{client2}"),
        ("create_session", "/api/clients/{client2}/sessions"),
        ("update_session", "/api/sessions/{session2}"),
    ],
)
def test_valid_body_with_another_clinics_id_is_404(world, endpoint, path):
    path = path.format(client2=world.client2["id"], session2=world.session2["id"])
    before = snapshot(world.app)  # all but the audit log, which records the refusal
    last = sql(world.app, "SELECT max(id) FROM audit_log")[0][0]
    r = send(world, endpoint, body=valid_body(world, endpoint), path=path)
    assert_error(r, 404, field=None, code=None)
    assert snapshot(world.app) == before
    refused = "SELECT action, clinic_id FROM audit_log WHERE id > ? AND action LIKE 'access_ref%'"
    assert sql(world.app, refused, (last,))[0] == ("access_refused", world.clinic1["id"])


def test_checkin_naming_another_clients_session_is_404(world):
    check_field(world, "checkin", {"session_id": world.session2["id"]}, None, status=404, code=None)


def test_checkin_naming_a_missing_session_is_404(world):
    check_field(world, "checkin", {"session_id": 10**6}, None, status=404, code=None)


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        pytest.param("GET", f"/api/clients/{HUGE}", "p1"),
        pytest.param("PATCH", f"/api/clients/{HUGE}", "p1"),
        pytest.param("POST", f"/api/clients/{HUGE}/sessions", "p1"),
        pytest.param("GET", f"/api/sessions/{HUGE}", "p1"),
        pytest.param("DELETE", f"/api/sessions/{HUGE}", "p1"),
        pytest.param("GET", f"/api/flags/{HUGE}", "p1"),
        pytest.param("GET", f"/api/checkins?client_id={HUGE}", "p1"),
        pytest.param("GET", f"/api/clients?offset={HUGE}", "p1"),
        ("GET", f"/api/clients?limit={HUGE}", "p1"),
        ("GET", f"/api/flags?client_id={HUGE}", "p1"),
        pytest.param("GET", f"/clinic/clients/{HUGE}", "p1"),
    ],
)
def test_ids_out_of_range_are_not_a_500(world, method, path, who):
    before = snapshot(world.app, skip=())
    api = getattr(world, who)
    r = api._call(method, path, json=None if method in ("GET", "DELETE") else {"name": "x"})
    assert 400 <= r.status_code < 500 or r.status_code == 200, r.status_code
    after = snapshot(world.app, skip=())
    if r.status_code == 200 and path.startswith("/api/clients?") and r.json["clients"]:
        # Listing clients who are shown is a read of personal data: its one audit entry (issue 12).
        new = after["audit_log"][len(before["audit_log"]) :]
        assert len(new) == 1 and "clients_listed" in new[0]
        after["audit_log"] = after["audit_log"][: len(before["audit_log"])]
    assert after == before


# JSON that Python's parser takes but JSON does not: repeated keys, NaN and Infinity -------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_repeated_key_is_refused_not_last_one_wins(world, endpoint):
    # {"name": "A", "name": "B"}: RFC 8259 leaves it to the parser; a proxy or audit tool that
    # reads the first value would see another request than the one we act on (the last value).
    body = valid_body(world, endpoint)
    key = next(iter(body))
    text = world.app.json.dumps(body)[:-1] + f", {world.app.json.dumps(key)}: null}}"
    before = snapshot(world.app, skip=())
    error = assert_error(send(world, endpoint, raw=text), 400, code="bad_json")
    assert key in error["message"], error
    assert snapshot(world.app, skip=()) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_bad_json(world, literal):
    text = world.app.json.dumps(valid_body(world, "checkin"))[:-1] + f', "pain": {literal}}}'
    before = snapshot(world.app, skip=())
    assert_error(send(world, "checkin", raw=text), 400, code="bad_json")
    assert snapshot(world.app, skip=()) == before


def test_ids_in_paths_are_ascii_digits(world):
    # Werkzeug's \d matches any script's digits and int() reads them: "/api/clients/١" (U+0661)
    # was client 1. parse_id() already refuses them in query strings; paths now do too.
    own = str(world.client1["id"])
    arabic = "".join(chr(0x0660 + int(d)) for d in own)
    for path in (f"/api/clients/{arabic}", f"/api/clients/{arabic}/export"):
        assert_error(world.p1._call("GET", path), 404, code="not_found")
    assert world.p1._call("GET", f"/api/clients/{own}").status_code == 200


def test_a_nul_in_a_list_item_is_named_as_such(world):
    error = assert_error(
        send(world, "create_session", body=valid_session() | {"areas": ["fa\x00ce"]}), 422
    )
    assert "NUL" in error["fields"]["areas"], error


def test_names_are_stored_without_the_controls_that_reorder_text(world):
    """An override (U+202E) or isolate in a name would turn the rest of its line around on the
    client's home page ("Hello, ...") and the practitioner's: names are stored without them."""
    rlo, lri, pdi = "\u202e", "\u2066", "\u2069"
    r = world.p1.post("/api/clients", {"name": f"Eve{rlo}live{lri} N{pdi}"})
    assert r.status_code == 201, r.json
    assert r.json["name"] == "Evelive N"
    me = world.p1.patch("/api/me", {"name": f"Dr {rlo}Sam"}).json
    assert me["practitioner"]["name"] == "Dr Sam", me
    r = world.p1.patch("/api/clinic", {"display_name": f"{rlo}Glow"})
    assert r.status_code == 200 and r.json["display_name"] == "Glow", r.json
    # A name made of nothing else is no name; the schema says what is refused.
    before = snapshot(world.app)
    error = assert_error(world.p1.post("/api/clients", {"name": f" {rlo}{pdi} "}), 422)
    assert set(error["fields"]) == {"name"}
    assert snapshot(world.app) == before
    pattern = world.anon.get("/api/openapi.json").json["components"]["schemas"]["ClientInput"]
    assert "\\u202a-\\u202e\\u2066-\\u2069" in pattern["properties"]["name"]["pattern"]


def test_m016_removes_the_controls_from_names_stored_before(world):
    """Names stored before contract.Name may hold the controls: the upgrade removes them, trims
    what is left, and a name made of nothing else becomes "?" (a clinic's display name null)."""
    rlo, pdi = "\u202e", "\u2069"
    client = world.p1.post("/api/clients", {"name": "Plain"}).json["id"]
    for statement, params in (
        ("UPDATE clients SET name = ? WHERE id = ?", [f"Eve{rlo}live {pdi}", client]),
        (
            "UPDATE practitioners SET name = ? WHERE email = ?",
            [f" {rlo}{pdi}", "one@clinic-one.net"],
        ),
        ("UPDATE clinics SET name = ?, display_name = ?", [f"{rlo}Glow", rlo]),
        ("DELETE FROM _sqlite_migrations WHERE name = 'm016_names_without_direction_controls'", []),
    ):
        sql(world.app, statement, params)
    untouched = sql(world.app, "SELECT id, name FROM clients WHERE id != ? ORDER BY id", [client])
    with world.app.app_context():
        assert migrate(world.app) == ["m016_names_without_direction_controls"]
    assert sql(world.app, "SELECT name FROM clients WHERE id = ?", [client]) == [("Evelive",)]
    assert sql(
        world.app, "SELECT name FROM practitioners WHERE email = ?", ["one@clinic-one.net"]
    ) == [("?",)]
    assert set(sql(world.app, "SELECT name, display_name FROM clinics")) == {("Glow", None)}
    assert sql(world.app, "SELECT id, name FROM clients WHERE id != ? ORDER BY id", [client]) == (
        untouched
    )


def test_a_patch_null_is_refused_where_it_would_mean_nothing_and_the_document_says_so(world):
    # null or "" used to answer 200 and keep the value: a change the caller thought was made.
    for change in ({"quiet_hours": None}, {"timezone": ""}, {"timezone": None}):
        r = world.c1.patch("/api/me", change)
        assert r.status_code == 422, (change, r.json)
    assert (
        "same start and end"
        in world.c1.patch("/api/me", {"quiet_hours": None}).json["error"]["fields"]["quiet_hours"]
    )
    # No quiet hours: the same start and end, as the error says.
    r = world.c1.patch("/api/me", {"quiet_hours": {"start": "00:00", "end": "00:00"}})
    assert r.status_code == 200, r.json
    # Where null clears, it still does.
    assert world.c1.patch("/api/me", {"channels": None}).status_code == 200
    schemas = world.anon.get("/api/openapi.json").json["components"]["schemas"]
    patch = schemas["ClientSettingsInputPatch"]["properties"]
    for name in ("quiet_hours", "discreet", "language", "timezone"):
        assert {"type": "null"} not in patch[name].get("anyOf", []), name
    assert {"type": "null"} in patch["channels"]["anyOf"]
    assert {"type": "null"} in schemas["ClientSettingsInput"]["properties"]["discreet"]["anyOf"]


def largest_protocol(world, escaped: bool) -> bytes:
    """The largest protocol PUT a clinic can write: 100 steps, every text at its limit in English
    and Spanish; `escaped`: every character an emoji sent as \\u escapes (12 bytes each)."""
    first = protocol_steps(world)[0]
    char = "\N{GRINNING FACE}" if escaped else "a"
    steps = [
        dict(
            first,
            key=f"step-{i}",
            title={"en": char * 60, "es": char * 60},
            body={"en": char * 300, "es": char * 300},
        )
        for i in range(100)
    ]
    return json.dumps({"steps": steps}, ensure_ascii=True, indent=2).encode()


def test_json_bodies_past_1_mb_are_413_before_they_are_read(world):
    from companion.security import JSON_MAX_BYTES

    # What the limit was measured against: the largest legitimate body fits, and is accepted.
    plain, escaped = largest_protocol(world, False), largest_protocol(world, True)
    assert len(plain) < 120_000 and len(escaped) < JSON_MAX_BYTES, (len(plain), len(escaped))
    for raw in (plain, escaped):
        r = send(world, "protocol", raw=raw)
        assert r.status_code == 200, r.get_json()
    before = snapshot(world.app, skip=())
    padded = b'{"notes": "' + b"x" * JSON_MAX_BYTES + b'"}'
    for endpoint in ("update_session", "me_client", "checkin", "protocol", "login"):
        r = send(world, endpoint, raw=padded)
        assert_error(r, 413, code="too_large")
        assert "1 MB" in r.get_json()["error"]["message"]
    # Without a Content-Length (chunked), reading stops at the limit: the same answer.
    method, path, api = target(world, "update_session")
    r = api.http.open(
        path,
        method=method,
        input_stream=io.BytesIO(padded),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as a server says of a chunked body
    )
    assert_error(r, 413, code="too_large")
    assert snapshot(world.app, skip=()) == before
