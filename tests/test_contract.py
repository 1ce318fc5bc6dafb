"""The documented request schemas say what the API really accepts.

Two tables keep them honest. The boundaries of every request model's JSON schema (lengths,
ranges, item counts, choices, required fields, unknown fields) are tried just inside and
just outside against `contract.parse`, which is what the routes validate with. And every
route with a JSON body is called with an empty and an over-full body: what it refuses must
be what its documented schema requires and forbids.
"""

import copy
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, checkin_body
from test_isolation import template_world_fixture, world_fixture  # noqa: F401

from companion import contract
from companion.accounts import models as accounts
from companion.admin import models as admin
from companion.checkins import models as checkins
from companion.contract.document import _subclasses
from companion.contract.fields import DIRECTION_CONTROLS, _text_schema
from companion.errors import Invalid
from companion.reminders import models as reminders
from companion.reminders import push
from companion.review import models as review
from companion.treatments import models as treatments


def valid_session() -> dict:
    return {
        "performed_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "areas": ["face"],
        "needle_depth_mm": 0.5,
        "device": "pen",
    }


def valid_step() -> dict:
    return {
        "key": "day2",
        "title": "Day 2",
        "body": "",
        "kind": "checkin",
        "at": {"day": 2, "time": "18:00"},
    }


def valid_keys() -> dict:
    return {"p256dh": push.generate_vapid_keys()[1], "auth": push.b64url(bytes(range(16)))}


# A valid body per request model: each boundary case changes one field of it.
VALID = {
    accounts.ClientInput: lambda: {"name": "Dana"},
    accounts.ClientSettingsInput: lambda: {},
    accounts.QuietHoursInput: lambda: {"start": "21:00", "end": "08:00"},
    accounts.PractitionerInput: lambda: {
        "email": "new@clinic.net",
        "name": "Dr New",
        "password": PASSWORD,
    },
    accounts.SetupInput: lambda: {
        "email": "new@clinic.net",
        "name": "Dr New",
        "password": PASSWORD,
        "clinic_name": "Clinic",
        "timezone": "Europe/London",
    },
    accounts.LoginInput: lambda: {"email": "new@clinic.net", "password": PASSWORD},
    accounts.ColleagueInput: lambda: {
        "email": "new@clinic.net",
        "name": "Dr New",
        "password": PASSWORD,
        "role": "owner",
    },
    accounts.RoleInput: lambda: {"role": "owner"},
    accounts.CodeInput: lambda: {"code": "123456"},
    accounts.PasswordInput: lambda: {"password": PASSWORD},
    accounts.TwoFactorRequiredInput: lambda: {"required": True},
    accounts.InviteInput: lambda: {"sign_out_devices": True},
    accounts.PasswordChangeInput: lambda: {
        "current_password": PASSWORD,
        "new_password": "tulip garden mornings",
    },
    accounts.PractitionerSettingsInput: lambda: {"name": "Dr New"},
    admin.ClinicInput: lambda: {"display_name": "Glow Skin Studio"},
    admin.PreviewOptions: lambda: {"timezone": "America/New_York"},
    admin.ProtocolPreviewInput: lambda: {
        "steps": [valid_step()],
        "quiet_start": "22:00",
        "quiet_end": "07:00",
    },
    treatments.SessionInput: valid_session,
    checkins.CheckinInput: checkin_body,
    review.NoteInput: lambda: {},
    review.ResolveInput: lambda: {"note": "Seen in clinic"},
    review.RecoveryInput: lambda: {"flag_ids": [1, 2]},
    review.RecoveryResolveInput: lambda: {"note": "Called; healing well", "flag_ids": [3]},
    reminders.ProtocolInput: lambda: {"steps": [valid_step()]},
    reminders.StepInput: valid_step,
    reminders.AfterHours: lambda: {"offset_hours": 24},
    reminders.OnDay: lambda: {"day": 2, "time": "18:00"},
    reminders.PushSubscriptionInput: lambda: {
        "endpoint": "https://push.example.net/send/abc123",
        "expirationTime": None,
        "keys": valid_keys(),
    },
    reminders.SubscriptionKeys: valid_keys,
    reminders.EndpointInput: lambda: {"endpoint": "https://push.example.net/send/abc123"},
}


def test_every_request_model_has_a_valid_example():
    assert set(VALID) == set(_subclasses(contract.Body))


def accepts(model, body: dict) -> bool:
    try:
        contract.parse(model, body, now=datetime.now(UTC))
    except Invalid:
        return False
    return True


def branch(prop: dict) -> dict:
    """The non-null branch of an optional field's schema."""
    return next((b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"), prop)


# Plain text and names (contract.Name: no direction controls) take a run of one letter.
OWN_PATTERNS = {
    _text_schema(r, 1, None, invisible)["pattern"]
    for r in (True, False)
    for invisible in ("", DIRECTION_CONTROLS)
}


def text(length: int, pattern: str | None, form: str | None = None) -> str | None:
    """A text of this length that matches the field's pattern, if we know how to make one."""
    if form == "uri":
        start = "https://push.example.net/"
        return start + "a" * (length - len(start))
    if pattern is None or pattern in OWN_PATTERNS:
        return "x" * length
    if pattern == _text_schema(True, 1, contract.EMAIL)["pattern"] and length >= 8:
        local = "a" * min(64, length - 6)
        return local + "@" + "b" * (length - len(local) - 5) + ".net"
    return None


def boundary_cases(model) -> list[tuple[str, object, bool]]:
    """(field, value, accepted?) pairs read off the model's documented JSON schema."""
    schema = contract.schemas()[model.__name__]
    cases: list[tuple[str, object, bool]] = []
    for name, prop in schema["properties"].items():
        if "anyOf" in prop and any(b.get("type") == "null" for b in prop["anyOf"]):
            cases.append((name, None, True))
        prop = branch(prop)
        kind = prop.get("type")
        if kind == "string" and "maxLength" in prop:
            for length, ok in ((prop["maxLength"], True), (prop["maxLength"] + 1, False)):
                value = text(length, prop.get("pattern"), prop.get("format"))
                if value is not None and name.endswith("password"):
                    # Of that length, but not a run of one letter, which the policy refuses.
                    value = ("tulip garden mornings " * 10)[:length]
                if value is not None:
                    cases.append((name, value, ok))
        if kind == "string" and prop.get("minLength") == 1:
            cases.append((name, "", False))
        if kind in ("integer", "number"):
            step = 1 if kind == "integer" else 0.01
            low = prop.get("minimum", prop.get("exclusiveMinimum", 0))
            cases += [(name, True, False), (name, str(low), False)]
            if "maximum" in prop:
                cases += [
                    (name, low, "minimum" in prop),
                    (name, prop["maximum"], True),
                    (name, low - step, False),
                    (name, prop["maximum"] + step, False),
                ]
        if kind == "array" and "$ref" in prop["items"]:
            # Items that are objects (a protocol's steps): their own model is tried above.
            cases += [
                (name, "x", False),
                (name, [{}], False),
                (name, [], prop.get("minItems") == 0),
            ]
        elif kind == "array":
            items = prop["items"]
            if "enum" in items:
                item = items["enum"][0]
            elif items.get("type") == "integer":  # ids
                item = items["minimum"]
                cases += [(name, [items["minimum"] - 1], False), (name, ["1"], False)]
                cases += [(name, [items["maximum"]], True), (name, [items["maximum"] + 1], False)]
            else:
                item = text(1, items.get("pattern")) or "x"
            low = prop.get("minItems", 0)
            cases += [(name, [item] * low, True), (name, "x", False), (name, [{}], False)]
            if "maxItems" in prop:
                high = prop["maxItems"]
                cases += [(name, [item] * high, True), (name, [item] * (high + 1), False)]
            if low:
                cases.append((name, [item] * (low - 1), False))
        if "enum" in prop:
            cases += [(name, option, True) for option in prop["enum"]]
            cases.append((name, "not-an-option", False))
        if kind == "boolean":
            cases += [(name, True, True), (name, "true", False), (name, 1, False)]
    for name in schema["properties"]:
        cases.append((name, DROP, name not in schema["required"]))
    cases.append(("zz_unknown", 1, schema.get("additionalProperties", True) is not False))
    return cases


DROP = object()
CASES = [
    pytest.param(model, name, value, ok, id=f"{model.__name__}.{name}={value!r:.20}->{ok}")
    for model in VALID
    for name, value, ok in boundary_cases(model)
]


@pytest.mark.parametrize(("model", "name", "value", "ok"), CASES)
def test_documented_boundaries_are_the_validated_ones(model, name, value, ok):
    body = VALID[model]()
    if value is DROP:
        body.pop(name, None)
    else:
        body[name] = value
    assert accepts(model, body) is ok, (name, value)


def test_areas_need_one_item_in_the_document_too():
    # The drift the hand-written document had: the validator wanted an area, the schema did not.
    areas = contract.schemas()["SessionInput"]["properties"]["areas"]
    assert areas["minItems"] == 1
    assert not accepts(treatments.SessionInput, valid_session() | {"areas": []})


# Routes against their documented request bodies ------------------------------------------------


def json_bodies(app) -> list[tuple[str, str, dict]]:
    doc = contract.document(app)
    out = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                out.append((path, method, content["application/json"]["schema"]))
    return out


def resolve(doc: dict, schema: dict) -> dict:
    if "$ref" in schema:
        return doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def fill(path: str, world) -> str:
    ids = {
        "client_id": world.client1["id"],
        "session_id": world.session1["id"],
        "flag_id": 1,
        "practitioner_id": 1,
        "token": "unknown-token",
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def call(world, method: str, path: str, body: dict):
    """Call as whoever the route serves: the practitioner first, else the client."""
    for api in (world.p1, world.c1, world.anon):
        r = api._call(method.upper(), fill(path, world), json=body)
        if r.status_code not in (401, 403):
            return r
    return r


def test_every_json_body_route_refuses_what_its_schema_forbids(world):
    doc = contract.document(world.app)
    checked = 0
    for path, method, schema in json_bodies(world.app):
        schema = resolve(doc, schema)
        if path in ("/api/setup", "/api/invites/{token}/redeem", "/api/checkin-links/{token}"):
            # setup only on an empty installation; redeem takes no body; a one-tap link's
            # token is checked before its body (tests/test_email.py sends bodies through one)
            continue
        r = call(world, method, path, copy.deepcopy({"zz_unknown": 1}))
        if schema.get("additionalProperties") is False:
            assert r.status_code == 422, (path, method, r.status_code)
            fields = r.get_json()["error"]["fields"]
            assert "zz_unknown" in fields or "body" in fields, (path, method, fields)
            checked += 1
        r = call(world, method, path, {})
        required = set(schema.get("required", []))
        if required:
            assert r.status_code == 422, (path, method, r.status_code)
            assert required <= set(r.get_json()["error"]["fields"]), (path, method, r.get_json())
        elif r.status_code == 422:
            pytest.fail(f"{method} {path} refuses an empty body but documents nothing required")
    assert checked >= 10


WRITES = ("post", "put", "patch", "delete")


def test_every_write_documents_the_edge_refusals_it_can_answer(world):
    # security.check_api_request refuses any write from another origin (403 bad_origin) or with a
    # form's body type (415), and any body past MAX_CONTENT_LENGTH is 413, whatever the route:
    # POST /api/auth/login answered 403 that its document did not list.
    doc = contract.document(world.app)
    missing = {
        f"{method.upper()} {path}": sorted({"403", "413", "415"} - set(op["responses"]))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in WRITES and not {"403", "413", "415"} <= set(op["responses"])
    }
    assert not missing, missing


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/auth/login"), ("post", "/api/invites/{token}/redeem"), ("patch", "/api/me")],
)
def test_a_cross_origin_write_is_the_documented_403(world, method, path):
    r = world.anon._call(
        method.upper(), fill(path, world), json={}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "bad_origin"
    documented = contract.document(world.app)["paths"][path][method]["responses"]
    assert "403" in documented
