"""Sign-in: passwords, rate limits, revocable sessions, timeouts, cookies, audit, first-run setup."""

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from conftest import PASSWORD, Api, Cli, sql
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)

BAD_CREDENTIALS = "Email or password is incorrect."
P1_EMAIL = "one@clinic-one.net"


def add_practitioner(email="p@clinic-auth.net", clinic="Auth Clinic"):
    result = Cli().invoke(
        [
            "create-practitioner",
            "--email",
            email,
            "--name",
            "Dr Auth",
            "--clinic",
            clinic,
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output


def login(api, email, password=PASSWORD, **kw):
    return api.post("/api/auth/login", {"email": email, "password": password}, **kw)


def set_cookies(response) -> dict[str, str]:
    """Name -> full Set-Cookie header, for the cookies a response sets."""
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def cookie_attrs(header: str) -> dict[str, str]:
    attrs = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attrs[key.lower()] = value
    return attrs


def replay(app, cookies: dict[str, str]) -> Api:
    """A fresh browser that only has these cookie values."""
    api = Api(app)
    for name, value in cookies.items():
        api.http.set_cookie(name, value)
    return api


def cookie_values(api, *names) -> dict[str, str]:
    out = {}
    for name in names:
        cookie = api.http.get_cookie(name)
        assert cookie is not None, f"no {name} cookie"
        out[name] = cookie.value
    return out


# Login ------------------------------------------------------------------------------------


def test_login_ok_returns_me_and_a_working_session(app, make_api):
    add_practitioner()
    api = make_api()
    r = login(api, "p@clinic-auth.net")
    assert r.status_code == 200, r.json
    assert r.json["kind"] == "practitioner"
    assert r.json["practitioner"]["email"] == "p@clinic-auth.net"
    assert r.json["clinic"]["name"] == "Auth Clinic"
    assert "password_hash" not in r.get_data(as_text=True)
    me = api.get("/api/me")
    assert me.status_code == 200 and me.json["kind"] == "practitioner"


def test_login_email_is_case_and_space_insensitive(app, make_api):
    add_practitioner()
    assert login(make_api(), "  P@Clinic-Auth.NET ").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("p@clinic-auth.net", "wrong password!"),  # known email, wrong password
        ("nobody@clinic-auth.net", PASSWORD),  # unknown email
        ("p@clinic-auth.net", PASSWORD.upper()),  # passwords are case-sensitive
    ],
)
def test_bad_login_gives_one_message(app, make_api, email, password):
    add_practitioner()
    api = make_api()
    r = login(api, email, password)
    assert r.status_code == 401
    assert r.json["error"]["code"] == "bad_credentials"
    assert r.json["error"]["message"] == BAD_CREDENTIALS
    assert "Set-Cookie" not in r.headers or "remember_token" not in r.headers["Set-Cookie"]
    assert api.get("/api/me").status_code == 401


def test_disabled_practitioner_cannot_sign_in_and_gets_the_same_message(app, make_api):
    add_practitioner()
    sql(app, "UPDATE practitioners SET active = 0")
    r = login(make_api(), "p@clinic-auth.net")
    assert r.status_code == 401
    assert r.json["error"]["message"] == BAD_CREDENTIALS


def test_session_id_is_stored_hashed(app, make_api):
    add_practitioner()
    api = make_api()
    assert login(api, "p@clinic-auth.net").status_code == 200
    raw = app.session_interface.get_signing_serializer(app).loads(
        api.http.get_cookie("session").value
    )["_user_id"]
    stored = [r[0] for r in sql(app, "SELECT id FROM auth_sessions")]
    assert len(stored) == 1
    assert raw not in stored and len(stored[0]) == 64  # a sha256 hex digest


# Rate limits ------------------------------------------------------------------------------


def test_rate_limit_per_account(app, make_api):
    add_practitioner()
    limit = app.config["LOGIN_MAX_FAILURES"]
    api = make_api()
    for _ in range(limit):
        assert login(api, "p@clinic-auth.net", "wrong password!").status_code == 401
    # Even the right password is refused now, from any address, with a Retry-After.
    for address in ("127.0.0.1", "10.9.8.7"):
        r = login(api, "p@clinic-auth.net", environ_base={"REMOTE_ADDR": address})
        assert r.status_code == 429, r.json
        assert r.json["error"]["code"] == "too_many_attempts"
        retry = int(r.headers["Retry-After"])
        assert 0 < retry <= app.config["LOGIN_WINDOW_MINUTES"] * 60 + 1
    # Another account is not locked by it.
    add_practitioner("other@clinic-auth.net")
    assert (
        login(
            make_api(), "other@clinic-auth.net", environ_base={"REMOTE_ADDR": "10.9.8.7"}
        ).status_code
        == 200
    )


def test_rate_limit_counts_only_the_window(app, make_api):
    add_practitioner()
    limit = app.config["LOGIN_MAX_FAILURES"]
    api = make_api()
    for _ in range(limit):
        login(api, "p@clinic-auth.net", "wrong password!")
    assert login(api, "p@clinic-auth.net").status_code == 429
    old = datetime.now(UTC) - timedelta(minutes=app.config["LOGIN_WINDOW_MINUTES"] + 1)
    sql(app, "UPDATE login_failures SET at = ?", (old.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
    assert login(api, "p@clinic-auth.net").status_code == 200


def test_rate_limit_per_address(app, make_api):
    add_practitioner()
    app.config["LOGIN_MAX_FAILURES"] = 2
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    api = make_api()
    statuses = []
    # Spraying many accounts from one address: each account stays under its own limit.
    for i in range(40):
        r = login(api, f"guess{i}@clinic-auth.net", "wrong password!", environ_base=attacker)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    assert len(statuses) - 1 >= app.config["LOGIN_MAX_FAILURES"]
    # The real account from the blocked address is refused too ...
    r = login(api, "p@clinic-auth.net", environ_base=attacker)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # ... but not from another address.
    assert (
        login(
            make_api(), "p@clinic-auth.net", environ_base={"REMOTE_ADDR": "198.51.100.1"}
        ).status_code
        == 200
    )


def test_login_page_is_rate_limited_too(app):
    add_practitioner()
    http = app.test_client()
    token = csrf_token(http.get("/clinic/login").get_data(as_text=True))
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        r = http.post(
            "/clinic/login",
            data={"csrf_token": token, "email": "p@clinic-auth.net", "password": "wrong password!"},
        )
        assert r.status_code == 401
        assert BAD_CREDENTIALS in r.get_data(as_text=True)
    r = http.post(
        "/clinic/login",
        data={"csrf_token": token, "email": "p@clinic-auth.net", "password": PASSWORD},
    )
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0


def test_a_wrong_password_keeps_the_email_as_typed(app):
    # The form came back empty: the practitioner typed their email again for one wrong letter.
    add_practitioner()
    http = app.test_client()
    token = csrf_token(http.get("/clinic/login").get_data(as_text=True))
    email = 'p@clinic-auth.net"><b>'
    r = http.post("/clinic/login", data={"csrf_token": token, "email": email, "password": "nope"})
    assert r.status_code == 401
    html = r.get_data(as_text=True)
    assert 'value="p@clinic-auth.net&#34;&gt;&lt;b&gt;"' in html  # escaped, never markup
    assert re.search(r'id="password"[^>]* autofocus>', html)
    assert 'value=""' in http.get("/clinic/login").get_data(as_text=True)


# Logout and revocation --------------------------------------------------------------------


def test_logout_revokes_the_session_on_the_server(world):
    stolen = cookie_values(world.p1, "session")
    assert replay(world.app, stolen).get("/api/me").status_code == 200  # the copy works ...
    assert world.p1.post("/api/auth/logout").status_code == 204
    assert world.p1.get("/api/me").status_code == 401
    r = replay(world.app, stolen).get("/api/me")  # ... and stops working at logout
    assert r.status_code == 401
    assert r.json["error"]["code"] == "unauthorized"
    assert world.p2.get("/api/me").status_code == 200  # others are unaffected


def test_client_logout_revokes_session_and_remember_cookie(world):
    stolen = cookie_values(world.c1, "session", "remember_token")
    remember_only = {"remember_token": stolen["remember_token"]}
    assert replay(world.app, remember_only).get("/api/me").status_code == 200
    assert world.c1.post("/api/auth/logout").status_code == 204
    assert world.c1.get("/api/me").status_code == 401
    assert replay(world.app, stolen).get("/api/me").status_code == 401
    assert replay(world.app, remember_only).get("/api/me").status_code == 401


def test_logout_when_signed_out_is_harmless(client):
    r = client.post("/api/auth/logout")
    assert r.status_code == 204


def test_logout_all_ends_every_session_of_that_user(world):
    laptop = Api(world.app)
    assert login(laptop, P1_EMAIL).status_code == 200
    tablet_cookie = cookie_values(world.p1, "session")
    assert laptop.post("/api/auth/logout-all").status_code == 204
    assert laptop.get("/api/me").status_code == 401
    assert world.p1.get("/api/me").status_code == 401
    assert replay(world.app, tablet_cookie).get("/api/me").status_code == 401
    assert world.p2.get("/api/me").status_code == 200
    assert world.c1.get("/api/me").status_code == 200  # a client of that clinic is not that user
    assert sql(
        world.app,
        "SELECT count(*) FROM auth_sessions WHERE user_kind = 'practitioner'"
        " AND user_id = 1 AND revoked_at IS NULL",
    ) == [(0,)]


def test_logout_all_needs_a_session(client):
    r = client.post("/api/auth/logout-all")
    assert r.status_code == 401


def test_disabling_a_practitioner_ends_their_sessions(world):
    r = world.p1.post(
        "/api/practitioners",
        {"email": "colleague2@clinic-one.net", "name": "Dr Colleague", "password": PASSWORD},
    )
    assert r.status_code == 201, r.json
    colleague_id = r.json["id"]
    colleague = Api(world.app)
    assert login(colleague, "colleague2@clinic-one.net").status_code == 200
    assert colleague.get("/api/clients").status_code == 200

    # Another clinic cannot disable them.
    r = world.p2.post(f"/api/practitioners/{colleague_id}/disable")
    assert r.status_code == 404
    assert colleague.get("/api/me").status_code == 200

    r = world.p1.post(f"/api/practitioners/{colleague_id}/disable")
    assert r.status_code == 200, r.json
    assert r.json["active"] is False
    assert colleague.get("/api/me").status_code == 401
    assert colleague.get("/api/clients").status_code == 401
    r = login(Api(world.app), "colleague2@clinic-one.net")
    assert r.status_code == 401 and r.json["error"]["message"] == BAD_CREDENTIALS
    assert world.p1.get("/api/me").status_code == 200


def test_a_practitioner_cannot_disable_themselves(world):
    me = world.p1.get("/api/me").json["practitioner"]["id"]
    r = world.p1.post(f"/api/practitioners/{me}/disable")
    assert r.status_code == 409
    assert r.json["error"]["code"] == "last_owner"  # the clinic's only owner (test_roles)
    assert world.p1.get("/api/me").status_code == 200


def test_a_client_cannot_disable_a_practitioner(world):
    r = world.c1.post("/api/practitioners/1/disable")
    assert r.status_code == 403
    assert sql(world.app, "SELECT active FROM practitioners WHERE id = 1") == [(1,)]


# Timeouts ---------------------------------------------------------------------------------


def iso_ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def practitioners_last_seen(app, **ago) -> None:
    sql(
        app,
        "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'practitioner'",
        (iso_ago(**ago),),
    )


def test_practitioner_idle_timeout(world):
    world.app.config["PRACTITIONER_IDLE_MINUTES"] = 5
    practitioners_last_seen(world.app, minutes=4)
    # Active within the idle window: still in, and the visit moves last_seen_at forward.
    assert world.p1.get("/api/me").status_code == 200
    seen = sql(
        world.app,
        "SELECT last_seen_at FROM auth_sessions WHERE user_kind = 'practitioner' AND user_id = 1",
    )[0][0]
    assert seen > iso_ago(minutes=1)
    practitioners_last_seen(world.app, minutes=6)
    assert world.p1.get("/api/me").status_code == 401
    assert world.p2.get("/api/clients").status_code == 401
    # A page sends the idle practitioner back to sign in.
    r = world.p1.get("/clinic/clients")
    assert r.status_code == 302 and r.headers["Location"].startswith("/clinic/login")


def test_a_short_idle_timeout_never_signs_out_someone_active_within_it(world):
    """COMPANION_PRACTITIONER_IDLE_MINUTES=1: requests 40 s apart keep a practitioner signed in.
    Last seen was written at most once a minute, so a request 40 s after the last write did
    not count and the next one, 45 s later, was refused as idle after 45 s of idleness."""
    world.app.config["PRACTITIONER_IDLE_MINUTES"] = 1
    last_seen = (
        "SELECT last_seen_at FROM auth_sessions WHERE user_kind = 'practitioner' AND user_id = 1"
    )
    practitioners_last_seen(world.app, seconds=40)
    assert world.p1.get("/api/me").status_code == 200
    assert sql(world.app, last_seen)[0][0] > iso_ago(seconds=5)  # the visit counted
    # The default hour still writes at most once a minute (no write on every request).
    world.app.config["PRACTITIONER_IDLE_MINUTES"] = 60
    practitioners_last_seen(world.app, seconds=40)
    assert world.p1.get("/api/me").status_code == 200
    assert sql(world.app, last_seen)[0][0] < iso_ago(seconds=30)


def test_practitioner_absolute_timeout(world):
    sql(
        world.app,
        "UPDATE auth_sessions SET expires_at = ? WHERE user_kind = 'practitioner' AND user_id = 1",
        (iso_ago(seconds=1),),
    )
    assert world.p1.get("/api/me").status_code == 401
    assert world.p2.get("/api/me").status_code == 200


def test_practitioner_session_lifetime_is_the_absolute_limit(world):
    created, expires = sql(
        world.app,
        "SELECT created_at, expires_at FROM auth_sessions"
        " WHERE user_kind = 'practitioner' AND user_id = 1",
    )[0]
    span = datetime.fromisoformat(expires) - datetime.fromisoformat(created)
    assert span == timedelta(hours=world.app.config["PRACTITIONER_ABSOLUTE_HOURS"])


def test_client_stays_signed_in_without_idle_timeout(world):
    world.app.config["PRACTITIONER_IDLE_MINUTES"] = 5
    sql(
        world.app,
        "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'client'",
        (iso_ago(days=30),),
    )
    assert world.c1.get("/api/me").status_code == 200
    assert world.c1.get("/api/aftercare").status_code == 200


def test_client_session_ends_at_its_expiry(world):
    sql(
        world.app,
        "UPDATE auth_sessions SET expires_at = ? WHERE user_kind = 'client' AND user_id = ?",
        (iso_ago(seconds=1), world.client1["id"]),
    )
    assert world.c1.get("/api/me").status_code == 401
    assert world.c2.get("/api/me").status_code == 200


# Cookies ----------------------------------------------------------------------------------


def assert_expires_in(header: str, expected: timedelta) -> None:
    attrs = cookie_attrs(header)
    now = datetime.now(UTC)
    if "max-age" in attrs:
        assert abs(int(attrs["max-age"]) - expected.total_seconds()) < 3600
    else:
        assert "expires" in attrs, header
        assert abs(parsedate_to_datetime(attrs["expires"]) - (now + expected)) < timedelta(hours=1)


def test_client_gets_a_long_lived_remember_cookie(world):
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    r = Api(world.app).post(f"/api/invites/{token}/redeem")
    assert r.status_code == 200
    cookies = set_cookies(r)
    assert "remember_token" in cookies, cookies
    remember = cookies["remember_token"]
    assert_expires_in(remember, timedelta(days=90))
    attrs = cookie_attrs(remember)
    assert "httponly" in attrs
    assert attrs.get("samesite", "").lower() == "lax"


def test_practitioner_session_cookie_is_httponly_lax_and_not_remembered(app, make_api):
    add_practitioner()
    r = login(make_api(), "p@clinic-auth.net")
    cookies = set_cookies(r)
    assert "session" in cookies
    assert "remember_token" not in cookies  # a practitioner's tablet does not stay signed in
    attrs = cookie_attrs(cookies["session"])
    assert "httponly" in attrs
    assert attrs.get("samesite", "").lower() == "lax"
    assert_expires_in(
        cookies["session"], timedelta(hours=app.config["PRACTITIONER_ABSOLUTE_HOURS"])
    )


def test_requests_that_change_no_session_send_no_cookie(world):
    """The cookie is set at sign-in and the server-side row ends it: re-signing it on every
    request would cost each one a serialization and an HMAC for nothing."""
    for api, path in ((world.p1, "/api/flags"), (world.p1, "/clinic/"), (world.c1, "/")):
        api.get(path)  # a page's first form puts its CSRF token in the session
        r = api.get(path)
        assert r.status_code == 200 and set_cookies(r) == {}, (path, set_cookies(r))
    assert world.p1.get("/api/me").status_code == 200  # still signed in


# Audit ------------------------------------------------------------------------------------


def test_audit_log_records_sign_ins_failures_and_refusals(world):
    app = world.app
    assert login(Api(app), P1_EMAIL, "wrong password!").status_code == 401
    assert login(Api(app), "ghost@clinic-one.net", "ghost password!").status_code == 401
    assert world.c1.get("/api/clients").status_code == 403
    actions = [r[0] for r in sql(app, "SELECT action FROM audit_log ORDER BY id")]
    assert "sign_in" in actions
    assert actions.count("sign_in_failed") == 2
    assert "access_refused" in actions

    ((kind, actor, clinic),) = sql(
        app, "SELECT actor_kind, actor_id, clinic_id FROM audit_log WHERE action = 'access_refused'"
    )
    assert (kind, actor, clinic) == ("client", world.client1["id"], world.clinic1["id"])
    refused_known = sql(
        app, "SELECT clinic_id FROM audit_log WHERE action = 'sign_in_failed' ORDER BY id"
    )
    assert refused_known[0][0] == world.clinic1["id"]  # a known account: its clinic sees it
    assert refused_known[1][0] is None  # an unknown email belongs to no clinic
    sign_in = sql(app, "SELECT actor_kind, address FROM audit_log WHERE action = 'sign_in'")[0]
    assert sign_in == ("practitioner", "127.0.0.1")


def test_audit_log_holds_no_passwords_or_tokens(world):
    app = world.app
    invite = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    login(Api(app), P1_EMAIL, "wrong password!")
    login(Api(app), "ghost@clinic-one.net", "ghost password!")
    world.c1.get("/api/clients")
    secrets = [PASSWORD, "wrong password!", "ghost password!", invite]
    serializer = app.session_interface.get_signing_serializer(app)
    for api in (world.p1, world.p2, world.c1, world.c2):
        cookie = api.http.get_cookie("session").value
        secrets += [cookie, serializer.loads(cookie)["_user_id"]]
    rows = sql(app, "SELECT * FROM audit_log")
    assert rows
    for row in rows:
        text = " ".join(str(v) for v in row)
        for secret in secrets:
            assert secret not in text, (secret, row)


# First-run setup --------------------------------------------------------------------------

SETUP = {
    "clinic_name": "First Clinic",
    "clinic_phone": "+44 20 7946 0002",
    "timezone": "Europe/London",
    "email": "owner@first-clinic.net",
    "name": "Dr Owner",
    "password": PASSWORD,
}


def test_api_setup_works_once_then_409(app, make_api):
    api = make_api()
    r = api.post("/api/setup", SETUP)
    assert r.status_code == 201, r.json
    assert r.json["kind"] == "practitioner"
    assert r.json["clinic"]["name"] == "First Clinic"
    assert api.get("/api/me").status_code == 200  # signed in by setup
    assert api.get("/api/protocol").status_code == 200

    again = make_api().post(
        "/api/setup", SETUP | {"email": "intruder@evil-clinic.net", "clinic_name": "Takeover"}
    )
    assert again.status_code == 409
    assert again.json["error"]["code"] == "already_set_up"
    assert sql(app, "SELECT count(*) FROM clinics") == [(1,)]
    assert sql(app, "SELECT count(*) FROM practitioners") == [(1,)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"clinic_name": ""}, "clinic_name"),
        ({"password": "short"}, "password"),
        ({"email": "no-at-sign"}, "email"),
        ({"owner": True}, "owner"),
    ],
)
def test_api_setup_with_bad_input_creates_nothing(app, make_api, change, field):
    r = make_api().post("/api/setup", SETUP | change)
    assert r.status_code == 422
    assert field in r.json["error"]["fields"]
    assert sql(app, "SELECT count(*) FROM clinics") == [(0,)]
    assert make_api().post("/api/setup", SETUP).status_code == 201  # still available


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def test_setup_page_with_csrf(app):
    http = app.test_client()
    assert http.get("/clinic/login").headers["Location"] == "/clinic/setup"  # nothing set up yet
    page = http.get("/clinic/setup")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))

    form = dict(SETUP)
    r = http.post("/clinic/setup", data=form)  # no csrf_token
    assert r.status_code == 400
    assert sql(app, "SELECT count(*) FROM clinics") == [(0,)]

    r = http.post("/clinic/setup", data=form | {"csrf_token": "forged"})
    assert r.status_code == 400
    assert sql(app, "SELECT count(*) FROM clinics") == [(0,)]

    r = http.post("/clinic/setup", data=form | {"csrf_token": token})
    assert r.status_code == 302, r.get_data(as_text=True)
    assert r.headers["Location"] == "/clinic/clients"
    assert http.get("/clinic/clients").status_code == 200
    assert sql(app, "SELECT count(*) FROM clinics") == [(1,)]
    # Once set up, the page only sends people to sign in.
    later = app.test_client().get("/clinic/setup")
    assert later.status_code == 302 and later.headers["Location"] == "/clinic/login"


def test_setup_page_shows_field_errors(app):
    http = app.test_client()
    token = csrf_token(http.get("/clinic/setup").get_data(as_text=True))
    r = http.post("/clinic/setup", data=SETUP | {"csrf_token": token, "timezone": "Nowhere/City"})
    assert r.status_code == 422  # bad input is a 4xx, on pages too
    assert "Unknown time zone" in r.get_data(as_text=True)
    assert sql(app, "SELECT count(*) FROM clinics") == [(0,)]


def test_login_page_needs_csrf(world):
    http = world.app.test_client()
    r = http.post("/clinic/login", data={"email": P1_EMAIL, "password": PASSWORD})
    assert r.status_code == 400
    token = csrf_token(http.get("/clinic/login").get_data(as_text=True))
    r = http.post(
        "/clinic/login", data={"email": P1_EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302 and r.headers["Location"].startswith("/clinic/")
    assert http.get("/api/me").json["kind"] == "practitioner"


def test_logout_page_needs_csrf_and_revokes(world):
    http = world.app.test_client()
    token = csrf_token(http.get("/clinic/login").get_data(as_text=True))
    http.post("/clinic/login", data={"email": P1_EMAIL, "password": PASSWORD, "csrf_token": token})
    stolen = http.get_cookie("session").value
    assert http.post("/clinic/logout").status_code == 400  # no token: not signed out
    assert http.get("/clinic/clients").status_code == 200
    token = csrf_token(http.get("/clinic/clients").get_data(as_text=True))
    r = http.post("/clinic/logout", data={"csrf_token": token})
    assert r.status_code == 302
    assert replay(world.app, {"session": stolen}).get("/api/me").status_code == 401
