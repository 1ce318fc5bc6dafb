"""Client invites: one-time links and QR codes that sign a phone in."""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Api, Cli, sql
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)


def used_at(app, token: str) -> str | None:
    (row,) = sql(
        app,
        "SELECT used_at FROM invites WHERE token_hash = ?",
        (hashlib.sha256(token.encode()).hexdigest(),),
    )
    return row[0]


def invite(world, client=None) -> dict:
    client = client or world.client1
    r = world.p1.post(f"/api/clients/{client['id']}/invites")
    assert r.status_code == 201, r.json
    return r.json


def redeem(app, token: str):
    return Api(app).post(f"/api/invites/{token}/redeem")


def assert_gone(r, code: str) -> None:
    assert r.status_code == 410, r.get_data(as_text=True)
    assert r.json["error"]["code"] == code
    assert "Ask your clinic" in r.json["error"]["message"]


def test_create_invite_gives_token_url_qr_and_7_day_expiry(world):
    before = datetime.now(UTC)
    body = invite(world)
    assert set(body) >= {"token", "url", "expires_at", "qr_svg"}
    assert len(body["token"]) >= 22  # at least 128 bits of randomness, URL-safe
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body["token"])
    assert body["url"] == f"http://localhost/i/{body['token']}"
    assert body["qr_svg"].lstrip().startswith("<svg")
    assert "</svg>" in body["qr_svg"]
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert (
        timedelta(days=7) - timedelta(minutes=1) <= expires - before <= timedelta(days=7, minutes=1)
    )


def test_invite_url_uses_public_url(world):
    world.app.config["PUBLIC_URL"] = "https://aftercare.example-clinic.com/"
    body = invite(world)
    assert body["url"] == f"https://aftercare.example-clinic.com/i/{body['token']}"


def test_redeem_signs_the_phone_in_as_that_client(world):
    token = invite(world)["token"]
    phone = Api(world.app)
    r = phone.post(f"/api/invites/{token}/redeem")
    assert r.status_code == 200, r.json
    assert r.json["kind"] == "client"
    assert r.json["client"]["id"] == world.client1["id"]
    me = phone.get("/api/me")
    assert me.status_code == 200
    assert me.json["kind"] == "client" and me.json["client"]["id"] == world.client1["id"]
    assert me.json["clinic"]["id"] == world.clinic1["id"]
    assert phone.get("/api/aftercare").status_code == 200
    assert used_at(world.app, token) is not None
    actions = [
        r[0]
        for r in sql(
            world.app, "SELECT action FROM audit_log WHERE client_id = ?", (world.client1["id"],)
        )
    ]
    assert "invite_issued" in actions and "invite_redeemed" in actions


def test_second_redeem_is_410_used(world):
    token = invite(world)["token"]
    assert redeem(world.app, token).status_code == 200
    second = Api(world.app)
    assert_gone(second.post(f"/api/invites/{token}/redeem"), "invite_used")
    assert second.get("/api/me").status_code == 401


def test_expired_invite_is_410(world):
    token = invite(world)["token"]
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sql(world.app, "UPDATE invites SET expires_at = ?", (past,))
    phone = Api(world.app)
    assert_gone(phone.post(f"/api/invites/{token}/redeem"), "invite_expired")
    assert phone.get("/api/me").status_code == 401


def test_reissue_revokes_the_old_invite_and_the_new_one_works(world):
    old = invite(world)["token"]
    new = invite(world)["token"]
    assert old != new
    assert_gone(redeem(world.app, old), "invite_revoked")
    assert redeem(world.app, new).status_code == 200
    # A used invite stays used; re-issuing after that does not bring the old one back.
    newer = invite(world)["token"]
    assert_gone(redeem(world.app, new), "invite_used")
    assert redeem(world.app, newer).status_code == 200


def test_invites_of_two_clients_are_independent(world):
    second = world.new_client(world.p1, "Carol")
    a = invite(world)["token"]
    b = invite(world, second)["token"]
    assert redeem(world.app, a).status_code == 200
    r = redeem(world.app, b)
    assert r.status_code == 200 and r.json["client"]["id"] == second["id"]


@pytest.mark.parametrize("token", ["unknown-token", "x" * 43, "a" * 101, "%00", "..", "a b"])
def test_unknown_token_is_404(world, token):
    phone = Api(world.app)
    r = phone.post(f"/api/invites/{token}/redeem")
    assert r.status_code == 404
    assert r.json["error"]["code"] in ("invite_unknown", "not_found")
    assert phone.get("/api/me").status_code == 401


def test_token_is_stored_only_as_a_hash(world):
    token = invite(world)["token"]
    assert redeem(world.app, token).status_code == 200
    token2 = invite(world)["token"]
    stored = [r[0] for r in sql(world.app, "SELECT token_hash FROM invites")]
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    db = Path(world.app.config["DATABASE"])
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    assert db in files
    for path in files:  # the database, its WAL and shared-memory files
        raw = path.read_bytes()
        assert token.encode() not in raw, path
        assert token2.encode() not in raw, path


def test_invite_page_does_not_use_up_the_token(world):
    token = invite(world)["token"]
    # A link preview or a double-opened page fetches the link; only the tap signs in.
    for _ in range(2):
        page = Api(world.app).get(f"/i/{token}")
        assert page.status_code == 200
        assert "<form" in page.get_data(as_text=True)
    assert used_at(world.app, token) is None
    assert redeem(world.app, token).status_code == 200


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_invite_form_redeems_and_redirects_to_welcome(world):
    token = invite(world)["token"]
    browser = world.app.test_client()
    page = browser.get(f"/i/{token}")
    r = browser.post(f"/i/{token}", data={"csrf_token": csrf(page.get_data(as_text=True))})
    assert r.status_code == 302
    assert r.headers["Location"] == "/welcome"
    welcome = browser.get("/welcome")
    assert welcome.status_code == 200
    assert world.client1["name"] in welcome.get_data(as_text=True)
    assert browser.get("/api/me").json["client"]["id"] == world.client1["id"]
    assert "remember_token" in {c.key for c in browser._cookies.values()}


def test_invite_form_needs_csrf_and_then_keeps_the_invite(world):
    token = invite(world)["token"]
    browser = world.app.test_client()
    browser.get(f"/i/{token}")
    r = browser.post(f"/i/{token}", data={})
    assert r.status_code == 400
    assert browser.get("/api/me").status_code == 401
    assert used_at(world.app, token) is None


def test_invite_form_with_a_used_token_explains(world):
    token = invite(world)["token"]
    browser = world.app.test_client()
    page = browser.get(f"/i/{token}")
    assert redeem(world.app, token).status_code == 200  # another phone taps first
    r = browser.post(f"/i/{token}", data={"csrf_token": csrf(page.get_data(as_text=True))})
    assert r.status_code == 410
    assert "already used" in r.get_data(as_text=True)
    assert browser.get("/api/me").status_code == 401
    # Opened again later, the page says so at once instead of offering a button that fails.
    again = browser.get(f"/i/{token}")
    assert again.status_code == 410 and "<form" not in again.get_data(as_text=True)


def test_a_used_invite_opened_again_by_the_phone_that_used_it_goes_home(world):
    token = invite(world)["token"]
    phone = world.app.test_client()
    page = phone.get(f"/i/{token}")
    phone.post(f"/i/{token}", data={"csrf_token": csrf(page.get_data(as_text=True))})
    r = phone.get(f"/i/{token}")
    assert (r.status_code, r.headers["Location"]) == (302, "/")
    # Another client's phone gets the explanation, not that client's home.
    other = world.c2.http.get(f"/i/{token}")
    assert other.status_code == 410 and "already used" in other.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["revoked", "expired", "used"])
def test_a_dead_invite_shows_the_clinics_contact(world, kind):
    token = invite(world)["token"]
    if kind == "revoked":
        invite(world)
    elif kind == "expired":
        sql(world.app, "UPDATE invites SET expires_at = '2000-01-01T00:00:00+00:00'")
    else:
        redeem(world.app, token)
    html = world.anon.get(f"/i/{token}").get_data(as_text=True)
    assert "Contact Clinic One" in html and 'href="tel:+442079460001"' in html
    assert "Ask Clinic One for a new link" in html
    # The link was whole: no advice to check it was copied (only for an unknown one).
    assert "whole link was copied" not in html


def test_an_unknown_invite_link_gives_plain_next_steps(world):
    r = world.anon.get("/i/mistyped-link")
    html = r.get_data(as_text=True)
    assert r.status_code == 404 and "This invite link is not valid." in html
    assert "whole link was copied" in html and "Ask your clinic for a new link" in html
    # Two clinics here: which one sent it cannot be known, so no contact is guessed.
    assert "tel:" not in html


def test_an_unknown_invite_link_on_a_one_clinic_installation_names_the_clinic(app):
    Cli().invoke(
        [
            "create-practitioner",
            "--email",
            "a@solo.net",
            "--name",
            "A",
            "--clinic",
            "Solo Skin",
            "--phone",
            "+1 555 0100",
            "--password-stdin",
        ],
        input="correct horse battery\n",
    )
    html = app.test_client().get("/i/mistyped-link").get_data(as_text=True)
    assert "Contact Solo Skin" in html and 'href="tel:+15550100"' in html


def test_redeeming_replaces_a_practitioner_session_in_that_browser(world):
    token = invite(world)["token"]
    r = world.p2.post(f"/api/invites/{token}/redeem")
    assert r.status_code == 200
    me = world.p2.get("/api/me").json
    assert me["kind"] == "client" and me["client"]["id"] == world.client1["id"]
    assert world.p2.get("/api/clients").status_code == 403
