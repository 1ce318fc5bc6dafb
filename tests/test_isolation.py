"""Tenant isolation: another clinic's records do not exist for you; roles stay in their lane.

The `world` fixture here is conftest's World (two clinics, each with a signed-in
practitioner, a client with a session and a signed-in phone), built once per test run and
copied into each test's fresh database file: every test still starts from its own database.
test_auth, test_invites, test_security and test_bad_input import the same fixtures.
"""

import io
import re
import shutil
import sqlite3

import pytest
from conftest import (
    PASSWORD,
    Api,
    World,
    WorldCopy,
    checkin_body,
    sql,
    template_app,
    world_cookies,
)

# The template --------------------------------------------------------------------------------


def png(size=(32, 32), color=(200, 80, 80)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


_TEMPLATE: dict = {}  # built once per test run; modules that import the fixture share it


@pytest.fixture(scope="session", name="template_world")
def template_world_fixture(tmp_path_factory):
    """Build the two-clinic world once: an urgent check-in with a photo and a flag in clinic 1."""
    if not _TEMPLATE:
        _TEMPLATE.update(build_template(tmp_path_factory))
    return _TEMPLATE


def build_template(tmp_path_factory) -> dict:
    with template_app(tmp_path_factory, "template") as app:
        w = World(app)
        r = w.c1.post("/api/checkins", checkin_body(warning_signs={"fever": True}))
        assert r.status_code == 201, r.json
        checkin1 = r.json
        assert checkin1["assessment"]["status"] == "urgent"
        photo = w.c1.post(
            f"/api/checkins/{checkin1['id']}/photos", data=png(), content_type="image/png"
        )
        assert photo.status_code == 201, photo.json
        checkin2 = w.c2.post("/api/checkins", checkin_body()).json
        flags = w.p1.get("/api/flags").json["flags"]
        assert flags, "an urgent check-in opens a flag"
        colleague = w.p1.post(
            "/api/practitioners",
            {"email": "colleague@clinic-one.net", "name": "Dr Colleague", "password": PASSWORD},
        )
        assert colleague.status_code == 201, colleague.json
        data = {
            name: getattr(w, name)
            for name in ("client1", "client2", "session1", "session2", "clinic1", "clinic2")
        }
        data |= {
            "checkin1": checkin1,
            "checkin2": checkin2,
            "photo1": photo.json,
            "flag1": flags[0],
            "colleague1": colleague.json,
            "practitioner1": w.p1.get("/api/me").json["practitioner"],
            "practitioner2": w.p2.get("/api/me").json["practitioner"],
        }
        cookies = world_cookies(w)
    return {
        "app": app,
        "config": dict(app.config),
        "instance": app.instance_path,
        "database": app.config["DATABASE"],
        "photos": app.config["PHOTOS_DIR"],
        "data": data,
        "cookies": cookies,
    }


@pytest.fixture(name="world")
def world_fixture(template_world, tmp_path, monkeypatch):
    """Two clinics, copied into this test's own database file (overrides conftest's `world`).

    Building a Flask app costs more than copying a database, so the module's app is
    reused: each test gets its config back as it was, and its own database and photos
    folder, which the CLI uses too (COMPANION_DATABASE, COMPANION_PHOTOS_DIR).
    """
    database = tmp_path / "companion.sqlite3"
    shutil.copyfile(template_world["database"], database)
    photos = tmp_path / "photos"
    shutil.copytree(template_world["photos"], photos)
    app = template_world["app"]
    app.config.clear()
    app.config.update(template_world["config"], DATABASE=str(database), PHOTOS_DIR=str(photos))
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", template_world["instance"])
    monkeypatch.setenv("COMPANION_DATABASE", str(database))
    monkeypatch.setenv("COMPANION_PHOTOS_DIR", str(photos))
    monkeypatch.delenv("COMPANION_SECRET_KEY", raising=False)
    return WorldCopy(app, template_world)


# Helpers --------------------------------------------------------------------------------------


def snapshot(app, skip=("audit_log",)) -> dict:
    """Every row of every table (by default not the audit log, which records refusals)."""
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        out = {}
        for name in names:
            if name in skip:
                continue
            # A session's last_seen_at moves on a visit more than a minute after the last.
            columns = [
                c[1]
                for c in conn.execute(f"PRAGMA table_info({name})")
                if not (name == "auth_sessions" and c[1] == "last_seen_at")
            ]
            out[name] = conn.execute(
                f"SELECT {', '.join(columns)} FROM {name} ORDER BY rowid"
            ).fetchall()
        return out
    finally:
        conn.close()


def last_audit_id(app) -> int:
    return sql(app, "SELECT coalesce(max(id), 0) FROM audit_log")[0][0]


def assert_probe_recorded(world, last: int, path: str, names_client: bool) -> None:
    """Clinic 2's practitioner was refused `path` (clinic 1's record): recorded in clinic 2's log
    as a refused page; when the path names clinic 1's client, in clinic 1's log against them."""
    got = sql(
        world.app,
        "SELECT action, actor_id, clinic_id, client_id, detail FROM audit_log WHERE id > ?"
        " AND action LIKE 'access_refused%' ORDER BY id",
        (last,),
    )
    me, mine, theirs = world.practitioner2["id"], world.clinic2["id"], world.clinic1["id"]
    expected = [("access_refused", me, mine, None, path)]
    if names_client:
        expected.append(("access_refused_elsewhere", me, theirs, world.client1["id"], path))
    assert got == expected


def csrf(api) -> str:
    page = api.get("/clinic/clients").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def assert_error(r, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    body = r.get_json()
    assert set(body) == {"error"}
    assert {"code", "message", "fields"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code


# Another clinic's records: the JSON API -------------------------------------------------------

# (method, path with {client}/{session}/{flag}/{practitioner}/{colleague}, JSON body or None)
CROSS_CLINIC = [
    ("GET", "/api/clients/{client}", None),
    ("PATCH", "/api/clients/{client}", {"name": "Renamed by clinic 2"}),
    ("PATCH", "/api/clients/{client}", {"timezone": "Asia/Tokyo"}),
    ("DELETE", "/api/clients/{client}", None),
    ("GET", "/api/clients/{client}/export", None),
    ("GET", "/api/clients/{client}/export?format=csv", None),
    ("GET", "/api/clients/{client}/export?format=fhir", None),
    ("POST", "/api/clients/{client}/invites", {}),
    ("GET", "/api/clients/{client}/sessions", None),
    ("POST", "/api/clients/{client}/sessions", "VALID_SESSION"),
    ("GET", "/api/sessions/{session}", None),
    ("PATCH", "/api/sessions/{session}", {"notes": "Edited by clinic 2"}),
    ("PATCH", "/api/sessions/{session}", {"performed_at": "2026-01-01T10:00:00+00:00"}),
    ("DELETE", "/api/sessions/{session}", None),
    ("GET", "/api/checkins?client_id={client}", None),
    ("GET", "/api/flags/{flag}", None),
    ("POST", "/api/flags/{flag}/acknowledge", {}),
    ("POST", "/api/flags/{flag}/called", {}),
    ("POST", "/api/flags/{flag}/resolve", {"note": "Closed by clinic 2"}),
    ("POST", "/api/practitioners/{colleague}/disable", {}),
    ("POST", "/api/practitioners/{practitioner}/disable", {}),
    ("GET", "/api/photos/{photo}", None),
]


def fill(path: str, world) -> str:
    return path.format(
        client=world.client1["id"],
        session=world.session1["id"],
        flag=world.flag1["id"],
        colleague=world.colleague1["id"],
        practitioner=world.practitioner1["id"],
        photo=world.photo1["id"],
        checkin=world.checkin1["id"],
    )


def valid_session() -> dict:
    from datetime import UTC, datetime, timedelta

    return {
        "performed_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "areas": ["face"],
        "needle_depth_mm": 0.5,
        "device": "pen",
    }


def owner_view(world) -> list:
    """What clinic 1's practitioner reads about their records."""
    p1 = world.p1
    return [
        p1.get(f"/api/clients/{world.client1['id']}").json,
        p1.get(f"/api/sessions/{world.session1['id']}").json,
        p1.get(f"/api/flags/{world.flag1['id']}").json,
        p1.get("/api/practitioners").json,
        p1.get(f"/api/checkins?client_id={world.client1['id']}").json,
    ]


@pytest.mark.parametrize(
    ("method", "path", "body"), CROSS_CLINIC, ids=[f"{m} {p}" for m, p, _ in CROSS_CLINIC]
)
def test_other_clinic_gets_404_and_nothing_changes(world, method, path, body):
    before_db = snapshot(world.app)
    before_owner = owner_view(world)
    body = valid_session() if body == "VALID_SESSION" else body
    last = last_audit_id(world.app)
    r = world.p2._call(method, fill(path, world), json=body)
    assert_error(r, 404)
    assert snapshot(world.app) == before_db
    assert_probe_recorded(world, last, fill(path, world).split("?")[0], "client" in path)
    assert owner_view(world) == before_owner
    # The invite clinic 1 handed out (none yet) and clinic 1's phone still work.
    assert world.c1.get("/api/me").status_code == 200
    assert world.p1.get("/api/me").status_code == 200


def test_other_clinic_invite_is_not_issued_and_old_invite_survives(world):
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    r = world.p2.post(f"/api/clients/{world.client1['id']}/invites")
    assert_error(r, 404)
    # Clinic 2's attempt did not revoke clinic 1's invite.
    assert Api(world.app).post(f"/api/invites/{token}/redeem").status_code == 200


def test_lists_show_only_your_clinic(world):
    names = {c["name"] for c in world.p2.get("/api/clients").json["clients"]}
    assert names == {world.client2["name"]}
    assert all(
        f["client_id"] == world.client2["id"] for f in world.p2.get("/api/flags").json["flags"]
    )
    people = world.p2.get("/api/practitioners").json["practitioners"]
    assert {p["clinic_id"] for p in people} == {world.clinic2["id"]}
    # Searching by the other clinic's client name finds nothing.
    assert (
        world.p2.get("/api/clients", query_string={"q": world.client1["name"]}).json["clients"]
        == []
    )
    for csv in ("/api/exports/checkins.csv", "/api/exports/flags.csv"):
        text = world.p2.get(csv).get_data(as_text=True)
        assert world.checkin1["id"] not in text
        assert world.client1["name"] not in text


def test_flag_list_filtered_by_another_clinics_client_is_empty(world):
    r = world.p2.get("/api/flags", query_string={"client_id": world.client1["id"], "status": "all"})
    assert r.status_code in (200, 404)
    if r.status_code == 200:
        assert r.json["flags"] == []


def test_every_api_route_with_an_id_is_isolated(world):
    """Sweep app.url_map: each route that names a record refuses clinic 2 (404, or 403 by role)."""
    values = {
        "client_id": world.client1["id"],
        "session_id": world.session1["id"],
        "flag_id": world.flag1["id"],
        "practitioner_id": world.colleague1["id"],
        "checkin_id": world.checkin1["id"],
        "photo_id": world.photo1["id"],
        "device_id": sql(
            world.app,
            "SELECT device_id FROM auth_sessions WHERE user_kind = 'client' AND user_id = ?",
            (world.client1["id"],),
        )[0][0],
    }
    public = {"token", "filename"}  # invite links and static files are not clinic records
    before = snapshot(world.app)
    checked, problems = [], []
    for rule in world.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or not rule.arguments or rule.arguments & public:
            continue
        unknown = rule.arguments - values.keys()
        assert not unknown, f"{rule.rule}: add a clinic-1 value for {unknown} to this test"
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{arg}>", str(values[arg]), path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for who, api in (("practitioner 2", world.p2), ("client 2", world.c2)):
                if rule.endpoint == "api_checkins.add_photo":  # an image body, not JSON
                    r = api.http.post(path, data=png(), content_type="image/png")
                else:
                    r = api._call(method, path, json=None if method == "GET" else {})
                r.close()
                checked.append((who, method, path))
                if r.status_code not in (403, 404):
                    problems.append((who, method, path, r.status_code))
    assert len(checked) >= 20
    assert problems == []
    assert snapshot(world.app) == before


# Roles ----------------------------------------------------------------------------------------

PRACTITIONER_ONLY = [
    ("GET", "/api/clients", None),
    ("POST", "/api/clients", {"name": "Made by a client"}),
    ("GET", "/api/clients/{client}", None),
    ("PATCH", "/api/clients/{client}", {"name": "Renamed by a client"}),
    ("DELETE", "/api/clients/{client}", None),
    ("GET", "/api/clients/{client}/export", None),
    ("POST", "/api/clients/{client}/invites", {}),
    ("GET", "/api/clients/{client}/sessions", None),
    ("POST", "/api/clients/{client}/sessions", "VALID_SESSION"),
    ("GET", "/api/sessions/{session}", None),
    ("PATCH", "/api/sessions/{session}", {"notes": "x"}),
    ("DELETE", "/api/sessions/{session}", None),
    ("GET", "/api/protocol", None),
    ("PUT", "/api/protocol", {"steps": []}),
    ("GET", "/api/practitioners", None),
    ("POST", "/api/practitioners", {"email": "x@clinic-x.net", "name": "X", "password": PASSWORD}),
    ("POST", "/api/practitioners/{practitioner}/disable", {}),
    ("GET", "/api/flags", None),
    ("GET", "/api/flags/{flag}", None),
    ("POST", "/api/flags/{flag}/resolve", {}),
    ("GET", "/api/exports/checkins.csv", None),
    ("GET", "/api/exports/flags.csv", None),
    ("GET", "/api/audit", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), PRACTITIONER_ONLY, ids=[f"{m} {p}" for m, p, _ in PRACTITIONER_ONLY]
)
def test_a_client_gets_403_on_practitioner_routes(world, method, path, body):
    before = snapshot(world.app)
    body = valid_session() if body == "VALID_SESSION" else body
    # Even about their own record, a client cannot use the practitioner routes.
    r = world.c1._call(method, fill(path, world), json=body)
    assert_error(r, 403, "forbidden")
    assert snapshot(world.app) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/aftercare"),
        ("POST", "/api/checkins"),
        ("POST", "/api/checkins/{checkin}/photos"),
    ],
)
def test_a_practitioner_gets_403_on_client_routes(world, method, path):
    before = snapshot(world.app)
    r = world.p1._call(method, fill(path, world), json=None if method == "GET" else checkin_body())
    assert_error(r, 403, "forbidden")
    assert snapshot(world.app) == before


def test_client_a_cannot_see_client_b_checkins(world):
    mine = world.c2.get("/api/checkins").json["checkins"]
    assert [c["id"] for c in mine] == [world.checkin2["id"]]
    theirs = world.c1.get("/api/checkins").json["checkins"]
    assert world.checkin2["id"] not in {c["id"] for c in theirs}
    # ?client_id= is for practitioners; a client always gets their own.
    r = world.c2.get("/api/checkins", query_string={"client_id": world.client1["id"]})
    assert [c["id"] for c in r.json["checkins"]] == [world.checkin2["id"]]


def test_client_b_cannot_replay_or_attach_to_client_a_checkin(world):
    before = snapshot(world.app)
    r = world.c2.post("/api/checkins", checkin_body(id=world.checkin1["id"]))
    assert_error(r, 409, "id_conflict")
    assert "assessment" not in r.json and "redness" not in r.get_data(as_text=True)
    r = world.c2.post("/api/checkins", checkin_body(session_id=world.session1["id"]))
    assert_error(r, 404)
    r = world.c2.http.post(
        f"/api/checkins/{world.checkin1['id']}/photos", data=png(), content_type="image/png"
    )
    assert_error(r, 404)
    assert_error(world.c2.get(f"/api/photos/{world.photo1['id']}"), 404)
    assert snapshot(world.app) == before
    # The owner and their clinic still see the photo.
    for api in (world.c1, world.p1):
        r = api.get(f"/api/photos/{world.photo1['id']}")
        r.close()  # a file response: close it, or the file handle leaks
        assert r.status_code == 200


def test_a_client_probing_another_clients_ids_is_recorded_without_telling_which_exist(world):
    # Issue 2: every refused access is in the audit log, a client's as much as a practitioner's.
    last = last_audit_id(world.app)
    real, missing = world.photo1["id"], "00000000-0000-4000-8000-000000000000"
    answers = [world.c2.get(f"/api/photos/{pid}") for pid in (real, missing)]
    assert answers[0].status_code == answers[1].status_code == 404
    assert answers[0].json == answers[1].json  # the same 404, word for word
    path = f"/api/checkins/{world.checkin1['id']}/photos"
    assert_error(world.c2.http.post(path, data=png(), content_type="image/png"), 404)
    got = sql(
        world.app,
        "SELECT action, actor_kind, actor_id, clinic_id, detail FROM audit_log WHERE id > ?"
        " ORDER BY id",
        (last,),
    )
    me, mine = world.client2["id"], world.clinic2["id"]
    assert got == [
        ("access_refused", "client", me, mine, f"/api/photos/{real}"),
        ("access_refused", "client", me, mine, f"/api/photos/{missing}"),
        ("access_refused", "client", me, mine, path),
    ]


def test_push_subscription_delete_only_touches_your_own(world):
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    sub = {
        "endpoint": "https://push.example.net/send/abc123",
        "expirationTime": None,
        "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))},
    }
    assert world.c1.post("/api/push/subscriptions", sub).status_code == 201
    before = snapshot(world.app)
    for api in (world.c2, world.p2, world.p1):
        assert_error(api.delete("/api/push/subscriptions", {"endpoint": sub["endpoint"]}), 404)
        assert sub["endpoint"] not in api.get("/api/push/subscriptions").get_data(as_text=True)
    assert snapshot(world.app) == before


# Anonymous ------------------------------------------------------------------------------------

PUBLIC_API = {
    "/api/auth/login",
    "/api/auth/logout",
    "/api/setup",
    "/api/invites/<token>/redeem",
    "/api/checkin-links/<token>",  # the emailed one-tap link: its signed token is the credential
    "/api/push/vapid-public-key",
    "/api/openapi.json",
}


def test_anonymous_gets_401_on_every_private_api_route(world):
    values = {
        "client_id": world.client1["id"],
        "session_id": world.session1["id"],
        "flag_id": world.flag1["id"],
        "practitioner_id": world.colleague1["id"],
        "checkin_id": world.checkin1["id"],
        "photo_id": world.photo1["id"],
    }
    before = snapshot(world.app)
    problems = []
    for rule in world.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in PUBLIC_API:
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{arg}>", str(values.get(arg, 1)), path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = world.anon._call(method, path, json=None if method == "GET" else {})
            body = r.get_json(silent=True) or {}
            if r.status_code != 401 or body.get("error", {}).get("code") != "unauthorized":
                problems.append((method, path, r.status_code))
    assert problems == []
    assert snapshot(world.app) == before


PAGES = [
    "/",
    "/welcome",
    "/checkin",
    "/reminders",
    "/settings",
    "/clinic/",
    "/clinic/clients",
    "/clinic/clients/new",
    "/clinic/clients/{client}",
    "/clinic/clients/{client}/sessions/new",
    "/clinic/sessions/{session}/edit",
    "/clinic/sessions/{session}/reminders",
    "/clinic/clients/{client}/erase",
    "/clinic/audit",
    "/clinic/exports",
    "/clinic/settings",
    "/clinic/protocol",
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_redirected_to_sign_in_on_pages(world, path):
    r = world.anon.get(fill(path, world))
    assert r.status_code == 302
    location = r.headers["Location"]
    if path.startswith("/clinic/"):
        assert location.startswith("/clinic/login")
    else:
        assert location in ("/start", "/clinic/login") or location.startswith("/clinic/login?")
    assert world.client1["name"] not in r.get_data(as_text=True)


def test_probing_another_clinics_ids_is_recorded_without_telling_which_exist(world):
    real, missing = world.client1["id"], 10**12
    last = last_audit_id(world.app)
    answers = [world.p2.get(f"/api/clients/{cid}") for cid in (real, missing)]
    assert answers[0].json == dict(answers[1].json)  # the same 404, word for word
    # Clinic 2's own log reads the same either way: a refused page each.
    mine = world.p2.get("/api/audit").json["entries"][:2]
    assert [(e["action"], e["detail"]) for e in mine] == [
        ("access_refused", f"/api/clients/{missing}"),
        ("access_refused", f"/api/clients/{real}"),
    ]
    # Clinic 1 learns that another clinic's practitioner asked for its client, and nobody
    # learns anything about the id that does not exist.
    theirs = sql(
        world.app,
        "SELECT clinic_id, client_id, address FROM audit_log WHERE id > ? AND action = ?",
        (last, "access_refused_elsewhere"),
    )
    assert theirs == [(world.clinic1["id"], real, None)]  # not the other clinic's address
    page = world.p1.get(f"/clinic/audit?client_id={real}").get_data(as_text=True)
    assert "was refused" in page and "record (from another clinic)" in page


# Another clinic's records: the pages ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/clinic/clients/{client}"),
        ("GET", "/clinic/sessions/{session}/edit"),
        ("GET", "/clinic/sessions/{session}/reminders"),
        ("POST", "/clinic/sessions/{session}/edit"),
        ("GET", "/clinic/clients/{client}/sessions/new"),
        ("POST", "/clinic/clients/{client}/sessions/new"),
        ("POST", "/clinic/clients/{client}/invite"),
        ("GET", "/clinic/clients/{client}/erase"),
        ("POST", "/clinic/clients/{client}/erase"),
        ("POST", "/clinic/flags/{flag}/acknowledge"),
        ("POST", "/clinic/flags/{flag}/resolve"),
    ],
)
def test_other_clinic_pages_are_404(world, method, path):
    before = snapshot(world.app)
    data = None
    if method == "POST":
        data = {
            "csrf_token": csrf(world.p2),
            "performed_at": "2026-01-01T10:00",
            "areas": "face",
            "needle_depth_mm": "0.5",
            "device": "pen",
            "confirm": world.client1["name"],
            "name": world.client1["name"],
        }
    last = last_audit_id(world.app)
    r = world.p2.http.open(fill(path, world), method=method, data=data)
    assert r.status_code == 404
    assert world.client1["name"] not in r.get_data(as_text=True)
    assert snapshot(world.app) == before
    assert_probe_recorded(world, last, fill(path, world), "{client}" in path)


def test_client_pages_refuse_practitioners_and_clinic_pages_refuse_clients(world):
    assert world.p1.get("/welcome").status_code == 403
    assert world.p1.get("/reminders").status_code == 403
    assert world.c1.get("/clinic/clients").status_code == 403
    assert world.c1.get(fill("/clinic/clients/{client}", world)).status_code == 403
