"""Security headers, caching of private answers, HSTS, and no open redirect."""

import re
from urllib.parse import urlsplit

import pytest
from conftest import PASSWORD
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)


def csp(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            out[name] = value.strip()
    return out


def assert_security_headers(r) -> None:
    policy = csp(r)
    assert policy.get("script-src") == "'self'", policy  # no inline or eval'd script
    assert policy.get("worker-src") == "'self'", policy
    assert policy.get("frame-ancestors") == "'none'", policy
    assert policy.get("object-src") == "'none'", policy
    assert "default-src" in policy
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    # Invite links carry a token: never leak the URL to another site.
    assert r.headers.get("Referrer-Policy") in ("no-referrer", "same-origin")


def fill(path: str, world) -> str:
    return path.format(client=world.client1["id"], session=world.session1["id"])


HTML = ["/start", "/offline", "/clinic/login", "/i/some-token", "/no-such-page"]
API = ["/api/me", "/api/push/vapid-public-key", "/api/openapi.json", "/api/no-such-route"]


@pytest.mark.parametrize("path", HTML + API + ["/healthz", "/sw.js", "/manifest.webmanifest"])
def test_security_headers_for_everyone(world, path):
    r = world.anon.get(path)
    r.close()
    assert r.status_code < 500
    assert_security_headers(r)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/welcome",
        "/checkin",
        "/reminders",
        "/settings",
        "/api/me",
        "/api/aftercare",
        "/api/checkins",
    ],
)
def test_security_headers_for_a_client(world, path):
    r = world.c1.get(path)
    assert r.status_code == 200
    assert_security_headers(r)


PRIVATE_API = [
    "/api/me",
    "/api/clients",
    "/api/clients/{client}",
    "/api/clients/{client}/sessions",
    "/api/sessions/{session}",
    "/api/checkins?client_id={client}",
    "/api/flags",
    "/api/clients/{client}/export",
    "/api/protocol",
    "/api/practitioners",
    "/api/audit",
    "/api/exports/checkins.csv",
]
PRIVATE_PAGES = [
    "/clinic/",
    "/clinic/clients",
    "/clinic/clients/{client}",
    "/clinic/sessions/{session}/edit",
    "/clinic/clients/{client}/sessions/new",
    "/clinic/audit",
]


@pytest.mark.parametrize("path", PRIVATE_API + PRIVATE_PAGES)
def test_practitioner_answers_are_never_stored(world, path):
    r = world.p1.get(fill(path, world))
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    assert "no-store" in r.headers.get("Cache-Control", "")
    assert_security_headers(r)


@pytest.mark.parametrize(
    "path", ["/api/me", "/api/aftercare", "/api/checkins", "/", "/reminders", "/settings"]
)
def test_client_answers_with_health_data_are_never_stored(world, path):
    r = world.c1.get(path)
    assert r.status_code == 200
    assert "no-store" in r.headers.get("Cache-Control", "")


def test_checkin_answer_is_never_stored(world):
    from conftest import checkin_body

    r = world.c1.post("/api/checkins", checkin_body())
    assert r.status_code == 201
    assert "no-store" in r.headers["Cache-Control"]


def test_errors_carry_the_headers_too(world):
    for r in (
        world.anon.get("/api/clients"),
        world.p2.get(fill("/api/clients/{client}", world)),
        world.c1.get("/api/clients"),
        world.p1.get(
            fill("/clinic/clients/{client}", world).replace(str(world.client1["id"]), "999")
        ),
    ):
        assert r.status_code in (401, 403, 404)
        assert_security_headers(r)
        assert "no-store" in r.headers.get("Cache-Control", "")


def test_hsts_only_over_https(world):
    http = world.app.test_client()
    for path in ("/start", "/api/push/vapid-public-key"):
        plain = http.get(path)
        assert "Strict-Transport-Security" not in plain.headers
        secure = http.get(path, base_url="https://localhost")
        hsts = secure.headers.get("Strict-Transport-Security", "")
        found = re.search(r"max-age=(\d+)", hsts)
        assert found, secure.headers
        assert int(found.group(1)) >= 31536000  # at least a year


def test_service_worker_is_served_for_the_whole_origin(world):
    r = world.anon.get("/sw.js")
    r.close()
    assert r.status_code == 200
    assert r.mimetype in ("text/javascript", "application/javascript")
    assert r.headers.get("Service-Worker-Allowed") == "/"
    assert "no-store" in r.headers["Cache-Control"] or "no-cache" in r.headers["Cache-Control"]


def test_api_json_is_not_sniffable_as_html(world):
    r = world.p1.post("/api/clients", {"name": "<script>alert(1)</script>"})
    assert r.status_code == 201
    assert r.mimetype == "application/json"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = world.p1.get(f"/clinic/clients/{r.json['id']}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page  # escaped in the page
    assert "&lt;script&gt;" in page


# No open redirect ----------------------------------------------------------------------------


def csrf_token(http) -> str:
    page = http.get("/clinic/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def sign_in_with_next(world, target: str):
    http = world.app.test_client()
    token = csrf_token(http)
    return http.post(
        "/clinic/login",
        query_string={"next": target},
        data={"csrf_token": token, "email": "one@clinic-one.net", "password": PASSWORD},
    )


def assert_local(location: str) -> None:
    parts = urlsplit(location)
    assert parts.scheme in ("", "http", "https")
    assert parts.netloc in ("", "localhost"), location
    assert location.startswith("/") or parts.netloc == "localhost"
    assert not location.startswith("//")
    assert "\\" not in location
    assert "evil" not in location


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "/\\/evil.com",
        " //evil.com",
        "\\\\evil.com",
        "///evil.com",
        "http:evil.com",
        "https:/evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "//evil.com/clinic/clients",
        "\r\n//evil.com",
        "%2F%2Fevil.com",
        "evil.com",
    ],
)
def test_login_next_never_leaves_the_site(world, target):
    r = sign_in_with_next(world, target)
    assert r.status_code == 302
    assert_local(r.headers["Location"])


@pytest.mark.parametrize("target", ["/clinic/clients", "/clinic/clients/1?tab=sessions"])
def test_login_next_keeps_local_paths(world, target):
    r = sign_in_with_next(world, target)
    assert r.status_code == 302
    assert r.headers["Location"] == target


def test_sign_in_returns_to_the_page_asked_for(world):
    http = world.app.test_client()
    path = f"/clinic/clients/{world.client1['id']}"
    r = http.get(path)
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.startswith("/clinic/login?next=")
    token = csrf_token(http)
    r = http.post(
        location, data={"csrf_token": token, "email": "one@clinic-one.net", "password": PASSWORD}
    )
    assert r.status_code == 302
    assert r.headers["Location"] == path


@pytest.mark.parametrize(
    "back", ["//evil.com", "https://evil.com", "/\\evil.com", "/clinic//evil.com"]
)
def test_flag_action_back_never_leaves_the_site(world, back):
    from test_isolation import csrf

    r = world.p1.http.post(
        f"/clinic/flags/{world.flag1['id']}/acknowledge",
        data={"csrf_token": csrf(world.p1), "back": back},
    )
    assert r.status_code == 302
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost") and not location.startswith("//"), location


# Cookies over HTTPS ---------------------------------------------------------------------------


def set_cookie_headers(response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def test_session_cookie_is_secure_over_https_only(world):
    for base, secure in (("https://localhost", True), ("http://localhost", False)):
        r = world.anon.post(
            "/api/auth/login", {"email": "one@clinic-one.net", "password": PASSWORD}, base_url=base
        )
        assert r.status_code == 200
        cookie = set_cookie_headers(r)["session"]
        assert ("; Secure" in cookie) is secure, cookie


def test_remember_cookie_is_secure_over_https(world):
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    phone = world.app.test_client()
    r = phone.post(
        f"/api/invites/{token}/redeem",
        base_url="https://localhost",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200
    cookies = set_cookie_headers(r)
    assert "; Secure" in cookies["session"]
    assert "; Secure" in cookies["remember_token"], cookies["remember_token"]
    assert cookies["remember_token"].count("; Secure") == 1


# Forms over HTTPS, as a browser sends them: Flask-WTF then insists on a same-origin Referer,
# which the pages' Referrer-Policy must let the browser send.


def browser_referer(policy: str, page_url: str) -> str | None:
    """The Referer a browser sends on a same-origin form POST from a page with this policy."""
    policy = policy.split(",")[-1].strip().lower()  # the last recognised value wins
    if policy == "no-referrer":
        return None
    if policy in (
        "origin",
        "strict-origin",
        "origin-when-cross-origin",
        "strict-origin-when-cross-origin",
    ):
        parts = urlsplit(page_url)
        return f"{parts.scheme}://{parts.netloc}/"
    return page_url  # same-origin, no-referrer-when-downgrade, unsafe-url


def https_form_post(http, page_path: str, data: dict):
    page = http.get(page_path, base_url="https://localhost")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    referer = browser_referer(
        page.headers.get("Referrer-Policy", ""), "https://localhost" + page_path
    )
    headers = {"Origin": "https://localhost"} | ({"Referer": referer} if referer else {})
    return http.post(
        page_path, base_url="https://localhost", headers=headers, data=data | {"csrf_token": token}
    )


def test_login_form_works_over_https(world):
    http = world.app.test_client()
    r = https_form_post(
        http, "/clinic/login", {"email": "one@clinic-one.net", "password": PASSWORD}
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:300]


def test_invite_form_works_over_https(world):
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    r = https_form_post(world.app.test_client(), f"/i/{token}", {})
    assert r.status_code == 302, r.get_data(as_text=True)[:300]
    assert r.headers["Location"].endswith("/welcome")


def test_forms_over_https_still_refuse_a_foreign_referer(world):
    http = world.app.test_client()
    page = http.get("/clinic/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = http.post(
        "/clinic/login",
        base_url="https://localhost",
        headers={"Referer": "https://evil.example/login"},
        data={"csrf_token": token, "email": "one@clinic-one.net", "password": PASSWORD},
    )
    assert r.status_code == 400
