"""Fuzz every documented route from the OpenAPI document: no 500s, every answer matches its schema.

The checks are named rather than left to schemathesis' defaults, so that response-schema
conformance (the handler's real answer against the generated document, where replies allow
no undeclared field and name every field they always carry) cannot silently drop out.
"""

import os
import sys
import tempfile

import jsonschema_rs
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from companion import create_app
from companion.cli import migrate

EXAMPLES = int(os.environ.get("COMPANION_FUZZ_EXAMPLES", "25"))


def _build():
    """Build one app with two clinics; schemathesis needs the schema at import time."""
    sys.path.insert(0, os.path.dirname(__file__))
    from conftest import World

    folder = tempfile.mkdtemp(prefix="companion-fuzz-")
    old = os.environ.get("COMPANION_INSTANCE_PATH")
    os.environ["COMPANION_INSTANCE_PATH"] = folder
    try:
        app = create_app(
            {
                "TESTING": True,
                "VAPID_SUBJECT": "mailto:ops@clinic-tests.net",
                "LOGIN_MAX_FAILURES": 10**6,
                "CHECKIN_RATE_PER_HOUR": 10**6,
            }
        )
        migrate(app)
        world = World(app)
    finally:
        if old is None:
            os.environ.pop("COMPANION_INSTANCE_PATH", None)
        else:
            os.environ["COMPANION_INSTANCE_PATH"] = old
    return app, world


APP, WORLD = _build()
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)


def jar(api) -> dict[str, str]:
    return {
        name: api.http.get_cookie(name).value
        for name in ("session", "remember_token")
        if api.http.get_cookie(name)
    }


def signed_in(kind: str):
    """The practitioner or client of clinic one, signed in again if the fuzz signed them out.

    Fuzzed calls may sign out (everywhere) or erase the client; the next case starts from a
    live session again. Cookies go on the case: the WSGI test client drops a Cookie header.
    """
    from conftest import PASSWORD, Api

    api = getattr(WORLD, kind)
    if api.get("/api/me").status_code == 200:
        return api
    if kind == "p1":
        api = Api(APP)
        assert api.post("/api/auth/login", {"email": "one@clinic-one.net", "password": PASSWORD})
    else:
        p1 = signed_in("p1")
        client = WORLD.new_client(p1, "Fuzz Client")
        api = WORLD.sign_in_client(p1, client["id"])
    setattr(WORLD, kind, api)
    assert api.get("/api/me").status_code == 200
    return api


# Derandomized in the suite so CI is repeatable; benchmarks/fuzz.py runs longer and random.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("COMPANION_FUZZ_RANDOM") != "1",
)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # What the document says is valid, the route accepts (request schemas are not looser
    # or stricter than the models that validate them).
    positive_data_acceptance,
]
# Where a schema cannot say everything the route checks, valid-looking data may be refused.
NOT_DESCRIBABLE = {
    ("POST", "/api/push/subscriptions"): "keys must be a real P-256 point and 16 random bytes",
    ("PATCH", "/api/me"): "which fields are yours depends on who is signed in",
    ("GET", "/api/checkins"): "client_id is required of a practitioner only",
    ("POST", "/api/checkins/{checkin_id}/photos"): "the body must be a real image",
    ("PUT", "/api/protocol"): "step keys must be unique across the list",
    ("POST", "/api/protocol/preview"): "unique step keys; quiet_start and quiet_end together",
    ("POST", "/api/practitioners"): "a password must not be easy to guess (zxcvbn)",
    ("POST", "/api/auth/password"): "the current password must be right",
    ("POST", "/api/auth/two-factor/disable"): "the password must be right",
    ("POST", "/api/auth/two-factor/recovery-codes"): "the password must be right, two-factor on",
    ("POST", "/api/auth/two-factor/confirm"): "the code must come from the app being set up",
    ("PUT", "/api/clinic/two-factor"): "an owner requires it only once it is on for them",
    ("POST", "/api/clients/{client_id}/sessions"): "performed_at at most a day ahead of now",
    ("PATCH", "/api/sessions/{session_id}"): "performed_at at most a day ahead of now",
    ("POST", "/api/checkins"): "taken_at within the last 90 days, not ahead of now",
    ("PATCH", "/api/clinic"): "accent_color needs a 4.5:1 contrast against white (WCAG AA)",
    ("PUT", "/api/clinic/logo"): "the body must be a real image",
    ("POST", "/api/clients"): "email as one of the channels needs an email address",
    ("PATCH", "/api/clients/{client_id}"): "email as one of the channels needs an email address",
    ("POST", "/api/checkin-links/{token}"): "the token must be one this server signed",
    ("GET", "/api/exports/checkins.csv"): "from must come before to",
    ("GET", "/api/exports/flags.csv"): "from must come before to",
}


def checks_for(case) -> list:
    key = (case.operation.method.upper(), case.operation.path)
    if key in NOT_DESCRIBABLE:
        return [c for c in CHECKS if c is not positive_data_acceptance]
    return CHECKS


@schema.parametrize()
@FUZZ
def test_api_as_practitioner(case):
    case.cookies = {**(case.cookies or {}), **jar(signed_in("p1"))}
    case.call_and_validate(checks=checks_for(case))


@schema.parametrize()
@FUZZ
def test_api_as_client(case):
    case.cookies = {**(case.cookies or {}), **jar(signed_in("c1"))}
    case.call_and_validate(checks=checks_for(case))


def test_the_fuzz_is_signed_in():
    # Without this the whole fuzz could run as nobody and only ever see 401s.
    case = schema["/api/me"]["GET"].Case()
    case.cookies = jar(signed_in("p1"))
    assert case.call().status_code == 200


def test_reply_schemas_catch_drift():
    # The conformance check can fail: a reply with a field the document does not declare,
    # or without one it requires, does not match.
    doc = APP.test_client().get("/api/openapi.json").get_json()
    me = {"$ref": "#/components/schemas/Me", "components": doc["components"]}
    good = WORLD.p1.get("/api/me").json
    validator = jsonschema_rs.validator_for(me)
    assert validator.is_valid(good)
    for bad in (dict(good, is_admin=True), {k: v for k, v in good.items() if k != "clinic"}):
        assert not validator.is_valid(bad), bad
