"""Issue 12's smaller holes, each reproduced: forged hosts, file modes, tokens in the access log,
date parameters, a racy rate limit, fake time zones and unaudited reads of the queue."""

import logging
import os
import stat
import subprocess
import threading
import time
from datetime import datetime

import pytest
from conftest import Api, checkin_body, count, sql
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from companion.db import connect, write
from companion.web import REDACT_TOKENS
from testkit.processes import COMPANION, Http, env_for, free_port, sign_in_client, wait_for_health

PASSWORD = "holes-in-a-long-unusual-passphrase"


def forged(app, api: Api, method: str, path: str, host: str, **kw):
    """Call as `api`'s signed-in user, with a Host header of the caller's choosing."""
    cookie = "; ".join(f"{c.key}={c.value}" for c in api.http._cookies.values())
    headers = {"Host": host, "Cookie": cookie, "Content-Type": "application/json"}
    return app.test_client(use_cookies=False).open(path, method=method, headers=headers, **kw)


# Invite links are never built from a forged Host header ------------------------------------


def test_an_invite_for_a_forged_host_links_nowhere_near_it(world, app):
    path = f"/api/clients/{world.client1['id']}/invites"
    r = forged(app, world.p1, "POST", path, "evil.example", data="{}")
    assert r.status_code == 409 and r.json["error"]["code"] == "public_url_required"
    assert "evil.example" not in r.get_data(as_text=True)
    app.config["WTF_CSRF_ENABLED"] = False  # the page's form: its CSRF token is not the point
    page = forged(
        app, world.p1, "POST", f"/clinic/clients/{world.client1['id']}/invite", "evil.example"
    )
    assert page.status_code == 409 and b"evil.example" not in page.data
    # On this computer (`companion run`) the request's own loopback address is fine.
    for host in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000"):
        r = forged(app, world.p1, "POST", path, host, data="{}")
        assert r.status_code == 201 and r.json["url"].startswith(f"http://{host}/i/"), host


def test_public_url_or_trusted_hosts_make_links_for_a_real_installation(world, app):
    path = f"/api/clients/{world.client1['id']}/invites"
    app.config["TRUSTED_HOSTS"] = ["aftercare.example-clinic.com"]
    r = forged(app, world.p1, "POST", path, "aftercare.example-clinic.com", data="{}")
    assert r.status_code == 201
    assert r.json["url"].startswith("http://aftercare.example-clinic.com/i/")
    r = forged(app, world.p1, "POST", path, "evil.example", data="{}")
    assert r.status_code == 400 and b"/i/" not in r.data  # Flask refuses the host
    app.config["TRUSTED_HOSTS"] = None
    app.config["PUBLIC_URL"] = "https://aftercare.example-clinic.com"
    r = forged(app, world.p1, "POST", path, "evil.example", data="{}")
    assert r.status_code == 201
    assert r.json["url"].startswith("https://aftercare.example-clinic.com/i/")


@pytest.mark.parametrize("path", ["/healthz", "/", "/clinic/login", "/api/me", "/nowhere"])
def test_an_untrusted_host_gets_a_400_on_every_path(app, path):
    # Pages answered 500: the error page's url_for has no URL adapter for a refused host.
    app.config["TRUSTED_HOSTS"] = ["aftercare.example-clinic.com"]
    r = app.test_client().get(path, headers={"Host": "evil.example"})
    assert r.status_code == 400, r.status_code
    if path.startswith("/api/"):
        assert r.json["error"]["code"] == "bad_request"
    ok = app.test_client().get("/healthz", headers={"Host": "aftercare.example-clinic.com"})
    assert ok.status_code == 200


def test_trusted_hosts_come_from_the_environment(tmp_path, monkeypatch):
    from companion import create_app

    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("COMPANION_TRUSTED_HOSTS", "aftercare.example-clinic.com, .clinic.test")
    app = create_app({"TESTING": True})
    assert app.config["TRUSTED_HOSTS"] == ["aftercare.example-clinic.com", ".clinic.test"]


# Owner-only files and folders ----------------------------------------------------------------


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the usual default, under which files were created 0644
    yield
    os.umask(old)


def test_database_side_files_and_photos_are_owner_only(tmp_path, monkeypatch, umask_022):
    from companion import create_app
    from companion.cli import migrate

    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "VAPID_SUBJECT": "mailto:ops@clinic-tests.net"})
    migrate(app)
    from conftest import World

    world = World(app)
    r = world.c1.post("/api/checkins", checkin_body())
    from test_checkins import image_bytes

    photo = world.c1.post(
        f"/api/checkins/{r.json['id']}/photos",
        data=image_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert photo.status_code == 201, photo.json
    instance = tmp_path / "instance"
    database = app.config["DATABASE"]
    assert mode(instance) == 0o700
    for suffix in ("", "-wal", "-shm", "-writelock"):
        assert mode(database + suffix) == 0o600, suffix
    photos = instance / "photos"
    assert mode(photos) == 0o700
    for path in photos.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert len(list(photos.rglob("*.jpg"))) == 1
    assert mode(instance / "secrets.json") == 0o600


# No invite token in an access log ------------------------------------------------------------


def test_the_access_log_has_no_invite_tokens(tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    env = env_for(
        tmp_path / "instance",
        COMPANION_ACCESS_LOG=str(log),
        COMPANION_VAPID_SUBJECT="mailto:ops@clinic-tests.net",
    )
    subprocess.run([COMPANION, "init-db"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [COMPANION, "serve", "--port", str(port), "--workers", "1", "--no-dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, proc)
        phone, client_id = sign_in_client(port, "owner@clinic-holes.net", PASSWORD)
        practitioner = Http(port)
        practitioner.call(
            "POST", "/api/auth/login", {"email": "owner@clinic-holes.net", "password": PASSWORD}
        )
        _, invite, _ = practitioner.call("POST", f"/api/clients/{client_id}/invites")
        Http(port).call("GET", f"/i/{invite['token']}")
        Http(port).call("POST", f"/api/invites/{invite['token']}/redeem")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "/api/invites/[token]/redeem" in text and "/i/[token]" in text
    assert invite["token"] not in text


def test_the_development_server_log_has_no_invite_tokens():
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        "",
        0,
        '"%s" %s %s',
        ("GET /i/abc-DEF_123 HTTP/1.1", "200", "-"),
        None,
    )
    REDACT_TOKENS.filter(record)
    assert record.getMessage() == '"GET /i/[token] HTTP/1.1" 200 -'


@pytest.mark.parametrize(
    "path",
    [
        "/checkin/link/{t}",
        "/api/checkin-links/{t}",
        "/email/unsubscribe/{t}",
        "/calendar/{t}.ics",
        "/i/{t}",
        "/api/invites/{t}/redeem",
    ],
)
def test_every_link_token_is_redacted_from_the_request_log(path):
    # The email's one-tap check-in and unsubscribe links were logged whole: anyone reading
    # the log could file a client's check-in or turn their email off.
    token = "eyJjIjo3fQ.Zk9q-x_Secret"
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        "",
        0,
        '"%s" %s %s',
        (f"GET {path.format(t=token)} HTTP/1.1", "200", "-"),
        None,
    )
    REDACT_TOKENS.filter(record)
    assert "Secret" not in record.getMessage() and "[token]" in record.getMessage()


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (
            "GET /clinic/clients?q=Erin+O%27Neill HTTP/1.1",
            "GET /clinic/clients?q=[search] HTTP/1.1",
        ),
        (
            "GET /api/clients?limit=5&q=erin HTTP/1.1",
            "GET /api/clients?limit=5&q=[search] HTTP/1.1",
        ),
        ("GET /api/flags?status=open HTTP/1.1", "GET /api/flags?status=open HTTP/1.1"),
        ("GET /api/audit?q2=x&faq=y HTTP/1.1", "GET /api/audit?q2=x&faq=y HTTP/1.1"),
    ],
)
def test_a_client_search_is_not_written_to_the_request_log(line, logged):
    # A name typed in the client search stayed in the access log, out of erasure's reach.
    record = logging.LogRecord(
        "werkzeug", logging.INFO, "", 0, '"%s" %s %s', (line, "200", "-"), None
    )
    REDACT_TOKENS.filter(record)
    assert record.getMessage() == f'"{logged}" 200 -'


# Every date parameter: no 500 ----------------------------------------------------------------


def date_parameters(app) -> list[tuple[str, str]]:
    """Every query parameter that the OpenAPI document says is a date or a date-time."""
    document = app.test_client().get("/api/openapi.json").json
    found = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            for p in op.get("parameters", []):
                if p["in"] == "query" and p["schema"].get("format") in {"date", "date-time"}:
                    assert method == "get" and "{" not in path, (method, path)
                    found.append((path, p["name"]))
    return found


@st.composite
def moments(draw) -> str:
    """ISO 8601 text near the edges of what datetime holds, with and without offsets."""
    day = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)))
    minutes = draw(st.integers(-24 * 60 + 1, 24 * 60 - 1))
    offset = (
        ""
        if minutes == 0
        else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    return draw(
        st.sampled_from(
            [
                day.date().isoformat(),
                day.isoformat(),
                day.isoformat() + offset,
                day.isoformat() + "Z",
            ]
        )
    )


def test_the_date_parameters_are_found(app):
    assert set(date_parameters(app)) >= {
        ("/api/exports/checkins.csv", "from"),
        ("/api/exports/checkins.csv", "to"),
        ("/api/exports/flags.csv", "from"),
        ("/api/exports/flags.csv", "to"),
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=st.one_of(moments(), st.text(max_size=40)), pick=st.integers(min_value=0))
@example(value="0001-01-01T00:00:00+14:00", pick=0)
@example(value="9999-12-31T23:59:59-14:00", pick=1)
@example(value="0999-01-01", pick=2)
def test_no_date_parameter_answers_500(world, app, value, pick):
    params = date_parameters(app)
    path, name = params[pick % len(params)]
    r = world.p1.get(path, query_string={name: value})
    assert r.status_code in {200, 422}, (path, name, value, r.status_code)
    if r.status_code == 422:
        assert name in r.json["error"]["fields"]


def test_a_date_before_the_year_1000_still_sorts_before_today(world, app):
    world.c1.post("/api/checkins", checkin_body())
    r = world.p1.get("/api/exports/checkins.csv", query_string={"to": "0999-01-01"})
    assert r.status_code == 200 and len(r.get_data(as_text=True).splitlines()) == 1  # header only


# The check-in rate limit holds under concurrency ---------------------------------------------


def test_eight_concurrent_checkins_never_exceed_the_limit(world, app):
    app.config["CHECKIN_RATE_PER_HOUR"] = 3
    phones = [world.sign_in_client(world.p1, world.client1["id"]) for _ in range(8)]
    answers: list[int] = []
    ready = threading.Barrier(9)

    def check_in(phone):
        ready.wait()
        answers.append(phone.post("/api/checkins", checkin_body()).status_code)

    threads = [threading.Thread(target=check_in, args=(p,)) for p in phones]
    for t in threads:
        t.start()
    # Hold the write lock while all eight arrive, so that each reaches its write together.
    db = connect(app.config["DATABASE"])
    try:
        with write(db):
            ready.wait()
            time.sleep(1.0)
    finally:
        db.close()
    for t in threads:
        t.join(timeout=60)
    assert count(app, "checkins") == 3
    assert sorted(answers) == [201] * 3 + [429] * 5


# Only IANA time zones ------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules"])
def test_zones_that_are_not_places_are_refused(world, app, zone):
    r = world.p1.post("/api/clients", {"name": "Zed", "timezone": zone})
    assert r.status_code == 422 and "timezone" in r.json["error"]["fields"]
    r = world.p1.patch(f"/api/clients/{world.client1['id']}", {"timezone": zone})
    assert r.status_code == 422 and "timezone" in r.json["error"]["fields"]
    enum = app.test_client().get("/api/openapi.json").json["components"]["schemas"]["TimeZone"]
    assert zone not in enum["enum"] and "Europe/London" in enum["enum"]


# Reads of the queue and of the client list are audited, once per request ---------------------


@pytest.mark.parametrize(
    "path, action",
    [
        ("/api/flags", "queue_read"),
        ("/clinic/", "queue_read"),
        ("/api/clients?q=Ali", "clients_listed"),
        ("/clinic/clients?q=Ali", "clients_listed"),
    ],
)
def test_reading_the_queue_or_the_client_list_writes_one_audit_entry(world, app, path, action):
    for redness in (3, 3):  # two urgent flags: still one entry for the read
        world.c1.post("/api/checkins", checkin_body(redness=redness, warning_signs={"fever": True}))
    world.new_client(world.p1, "Alicia")
    assert count(app, "flags") >= 1
    before = count(app, "audit_log")
    assert world.p1.get(path).status_code == 200
    new = sql(app, "SELECT action, clinic_id, detail FROM audit_log WHERE id > ?", (before,))
    assert [(a, c) for a, c, _ in new] == [(action, world.clinic1["id"])]
    assert "Ali" not in str(new)  # the search text is a name: never in the audit log


@pytest.mark.parametrize(
    "path", ["/api/flags", "/clinic/", "/api/clients?q=Nobody", "/clinic/clients?q=Nobody"]
)
def test_a_read_that_shows_nobody_writes_no_entry(world, app, path):
    before = count(app, "audit_log")
    assert world.p1.get(path).status_code == 200
    assert count(app, "audit_log") == before
