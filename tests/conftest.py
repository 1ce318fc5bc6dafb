"""Fixtures: a fresh app and database per test, signed-in practitioners and clients."""

import copy
import shutil
import sqlite3
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from companion import create_app, credentials
from companion.cli import main, migrate
from companion.db import connect
from companion.reminders.sender import Sender
from testkit.push_receiver import PushReceiver

PASSWORD = "correct horse battery"


# Password hashes at a cost that keeps the suite quick: scrypt with n=2**10 (the product's own,
# n=2**15, is tested in test_passwords.py). A hash names its cost, so checking is unchanged.
credentials.METHOD = "scrypt:1024:8:1"

TEST_CONFIG = {
    "TESTING": True,
    "VAPID_SUBJECT": "mailto:ops@clinic-tests.net",
    "PUSH_ALLOW_PRIVATE_ENDPOINTS": True,
}


@pytest.fixture
def app(request, tmp_path, monkeypatch):
    """A fresh app on its own instance folder and database file, migrated.

    Its database file is a copy of one migrated (and, for tests that use `world`, peopled)
    once per run, which costs a millisecond where migrating costs 0.1 s and building the
    World 1-2.5 s (four scrypt hashes, two CLI apps); each test still has its own files.
    """
    instance = tmp_path / "instance"
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(instance))
    # A people template: conftest's world_template, or a module's own (see one_clinic).
    peopled = [
        n for n in request.fixturenames if n.endswith("_template") and n != "migrated_template"
    ]
    assert len(peopled) <= 1, peopled
    if peopled:
        template = request.getfixturevalue(peopled[0])
        # The World's secrets too: its cookies are signed with SECRET_KEY.
        instance.mkdir(mode=0o700)
        shutil.copy2(template["instance"] / "secrets.json", instance / "secrets.json")
    else:
        template = request.getfixturevalue("migrated_template")
    app = create_app(TEST_CONFIG)
    database = Path(app.config["DATABASE"])
    assert not database.exists(), database
    shutil.copyfile(template["database"], database)
    database.chmod(0o600)  # as connect() creates it: health data, owner-only
    assert migrate(app) == [], "the template is at the latest migration"
    return app


@pytest.fixture
def client(app):
    return app.test_client()


class Cli:
    """Invoke the `companion` command in-process, against the test's instance folder."""

    def invoke(self, args, input=None):
        return CliRunner().invoke(main, args, input=input, catch_exceptions=False)


@pytest.fixture
def runner(app):
    return Cli()


class Api:
    """A test client that speaks the JSON API the way the PWA does."""

    def __init__(self, app):
        self.app = app
        self.http = app.test_client()

    def _call(self, method, path, json=None, **kw):
        headers = kw.pop("headers", {})
        if json is not None:
            headers.setdefault("Content-Type", "application/json")
        return self.http.open(path, method=method, json=json, headers=headers, **kw)

    def get(self, path, **kw):
        return self._call("GET", path, **kw)

    def post(self, path, json=None, **kw):
        if json is None and "data" not in kw:
            json = {}
        return self._call("POST", path, json, **kw)

    def patch(self, path, json=None, **kw):
        return self._call("PATCH", path, json, **kw)

    def put(self, path, json=None, **kw):
        return self._call("PUT", path, json, **kw)

    def delete(self, path, json=None, **kw):
        return self._call("DELETE", path, json, **kw)


@pytest.fixture
def make_api(app):
    return lambda: Api(app)


@pytest.fixture
def world(app, world_template):
    """Two clinics, each with a signed-in practitioner and one client with a session.

    Built once (World below) and copied: `app` starts from the template's database file and
    secrets, and the signed-in test clients get the template's cookies.
    """
    assert app.config["SECRET_KEY"] == world_template["secret_key"]
    return WorldCopy(app, world_template)


class World:
    def __init__(self, app):
        self.app = app
        self.anon = Api(app)
        self.p1, self.clinic1 = self.practitioner("one@clinic-one.net", "Clinic One")
        self.p2, self.clinic2 = self.practitioner("two@clinic-two.net", "Clinic Two")
        self.client1 = self.new_client(self.p1, "Alice")
        self.client2 = self.new_client(self.p2, "Bob")
        self.session1 = self.new_session(self.p1, self.client1["id"])
        self.session2 = self.new_session(self.p2, self.client2["id"])
        self.c1 = self.sign_in_client(self.p1, self.client1["id"])
        self.c2 = self.sign_in_client(self.p2, self.client2["id"])

    def practitioner(self, email, clinic_name, tz="Europe/London"):
        result = Cli().invoke(
            [
                "create-practitioner",
                "--email",
                email,
                "--name",
                "Dr " + email,
                "--clinic",
                clinic_name,
                "--timezone",
                tz,
                "--phone",
                "+44 20 7946 0001",
                "--password-stdin",
            ],
            input=PASSWORD + "\n",
        )
        assert result.exit_code == 0, result.output
        api = Api(self.app)
        r = api.post("/api/auth/login", {"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.json
        return api, r.json["clinic"]

    def new_client(self, api, name, **extra):
        r = api.post("/api/clients", {"name": name, **extra})
        assert r.status_code == 201, r.json
        return r.json

    def new_session(self, api, client_id, hours_ago=2, **extra):
        performed = datetime.now(UTC) - timedelta(hours=hours_ago)
        body = {
            "performed_at": performed.isoformat(),
            "areas": ["face"],
            "needle_depth_mm": 0.5,
            "device": "pen",
            "products": ["hyaluronic serum"],
            "notes": "",
        } | extra
        r = api.post(f"/api/clients/{client_id}/sessions", body)
        assert r.status_code == 201, r.json
        return r.json

    def sign_in_client(self, practitioner_api, client_id):
        token = practitioner_api.post(f"/api/clients/{client_id}/invites").json["token"]
        api = Api(self.app)
        r = api.post(f"/api/invites/{token}/redeem")
        assert r.status_code == 200, r.json
        return api


class WorldCopy(World):
    """The World of a template, in a test's own app (whose database is the template's copy)."""

    def __init__(self, app, template: dict):
        self.app = app
        self.anon = Api(app)
        for name, value in template["data"].items():
            setattr(self, name, copy.deepcopy(value))
        for name, cookies in template["cookies"].items():
            api = Api(app)
            for cookie in cookies:
                api.http.set_cookie(
                    cookie.key,
                    cookie.value,
                    domain=cookie.domain,
                    origin_only=cookie.origin_only,
                    path=cookie.path,
                    expires=cookie.expires,
                    httponly=cookie.http_only,
                    samesite=cookie.same_site,
                    secure=cookie.secure,
                )
            setattr(self, name, api)


# A World's sessions were performed "2 hours ago" when it was built: a template older than
# this is built again, so that a copy's clock is at most this far from a World built in the test.
TEMPLATE_MAX_AGE = 60.0
_TEMPLATES: dict = {}


@contextmanager
def template_app(tmp_path_factory, kind: str):
    """A migrated app on an instance folder of its own, to build a template database in; on
    leaving, its WAL is folded into the main file, so that copying the one file copies everything."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPANION_INSTANCE_PATH", str(tmp_path_factory.mktemp(kind) / "instance"))
        for name in ("DATABASE", "PHOTOS_DIR", "SECRET_KEY"):
            mp.delenv(f"COMPANION_{name}", raising=False)
        app = create_app(TEST_CONFIG)
        migrate(app)
        yield app
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _template(kind: str, build, tmp_path_factory) -> dict:
    found = _TEMPLATES.get(kind)
    if found is None or time.monotonic() - found["built"] > TEMPLATE_MAX_AGE:
        with template_app(tmp_path_factory, kind) as app:
            found = build(app)
        found |= {
            "built": time.monotonic(),
            "instance": Path(app.instance_path),
            "database": Path(app.config["DATABASE"]),
            "secret_key": app.config["SECRET_KEY"],
        }
        _TEMPLATES[kind] = found
    return found


@pytest.fixture
def migrated_template(tmp_path_factory) -> dict:
    """An empty database at the latest migration."""
    return _template("migrated", lambda app: {}, tmp_path_factory)


def world_cookies(world: World, names=("p1", "p2", "c1", "c2")) -> dict:
    """The signed-in test clients' cookies, as WorldCopy gives them back."""
    return {
        name: [copy.copy(c) for c in getattr(world, name).http._cookies.values()] for name in names
    }


class OneClinic(World):
    """One clinic through the API: a practitioner, a client (with `client`'s fields) with a
    session 2 h ago, and the client's phone, both signed in."""

    def __init__(self, app, **client):
        self.app = app
        self.anon = Api(app)
        self.p1, self.clinic1 = self.practitioner("one@clinic-one.net", "Clinic One")
        self.client1 = self.new_client(self.p1, "Alice", **client)
        self.session1 = self.new_session(self.p1, self.client1["id"])
        self.c1 = self.sign_in_client(self.p1, self.client1["id"])


def one_clinic(kind: str, tmp_path_factory, **client) -> dict:
    """A template of a OneClinic. Return it from a module's fixture named `one_clinic_template`:
    `app` then starts from its database and secrets, and `practice` is the test's copy."""

    def build(app) -> dict:
        world = OneClinic(app, **client)
        return {
            "data": {name: getattr(world, name) for name in ("clinic1", "client1", "session1")},
            "cookies": world_cookies(world, ("p1", "c1")),
        }

    return _template(kind, build, tmp_path_factory)


@pytest.fixture
def practice(app, one_clinic_template):
    return WorldCopy(app, one_clinic_template)


def _build_world(app) -> dict:
    world = World(app)
    names = ("clinic1", "clinic2", "client1", "client2", "session1", "session2")
    return {"data": {name: getattr(world, name) for name in names}, "cookies": world_cookies(world)}


@pytest.fixture
def world_template(tmp_path_factory) -> dict:
    """conftest's World, built at most TEMPLATE_MAX_AGE seconds ago."""
    return _template("world", _build_world, tmp_path_factory)


def sql(app, query: str, params=()) -> list[tuple]:
    """Run one statement on the app's database file, on a connection of its own."""
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        rows = conn.execute(query, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def count(app, table: str, where: str = "1", params=()) -> int:
    return sql(app, f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0]


def checkin_body(**extra):
    return {
        "id": str(uuid.uuid4()),
        "taken_at": datetime.now(UTC).isoformat(),
        "redness": 2,
        "swelling": 1,
        "pain": 2,
    } | extra


# Shared by the dispatch, push-fix, planning and fault tests; test_push.py keeps its own
# receiver and sender built on throwaway VAPID keys.
@pytest.fixture
def db(app):
    """A connection of our own to the app's database file."""
    handle = connect(app.config["DATABASE"])
    yield handle
    handle.close()


@pytest.fixture
def receiver(app):
    """A local push receiver that checks the app's VAPID key and decrypts what it gets."""
    with PushReceiver(application_server_key=app.config["VAPID_PUBLIC_KEY"]) as running:
        yield running


@pytest.fixture
def sender(app):
    """The production Sender with the app's keys, allowed to reach 127.0.0.1. Its timeout is
    long: on a loaded host (a fresh-clone CI run) a 2 s one left a send to the local receiver
    pending for a retry, which no test using this fixture is about; the timeout tests make
    their own impatient Sender."""
    cfg = app.config
    with Sender(
        cfg["VAPID_PRIVATE_KEY"], cfg["VAPID_SUBJECT"], timeout=30.0, allow_private=True
    ) as pooled:
        yield pooled
