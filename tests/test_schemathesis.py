"""Fuzz every documented route from the OpenAPI document: no 500s, every answer matches its schema."""

import os
import sys
import tempfile

import schemathesis
from hypothesis import HealthCheck, settings

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


def cookies(api) -> str:
    return "; ".join(
        f"{name}={api.http.get_cookie(name).value}"
        for name in ("session", "remember_token")
        if api.http.get_cookie(name)
    )


# Derandomized in the suite so CI is repeatable; benchmarks/fuzz.py runs longer and random.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("COMPANION_FUZZ_RANDOM") != "1",
)


@schema.parametrize()
@FUZZ
def test_api_as_practitioner(case):
    case.call_and_validate(headers={"Cookie": cookies(WORLD.p1)})


@schema.parametrize()
@FUZZ
def test_api_as_client(case):
    case.call_and_validate(headers={"Cookie": cookies(WORLD.c1)})
