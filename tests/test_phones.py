"""Clients' signed-in phones: listed for the clinic, signed out one or all, idle ones expire,
and a signed-out or erased phone is told to clear what it kept."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, Api, count, sql

from companion.accounts.phones import device_label
from testkit.push_receiver import FakeBrowserSubscription

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Mobile Safari/537.36"
)
CLEAR = '"cache", "storage"'


@pytest.mark.parametrize(
    ("ua", "label"),
    [
        (IPHONE, "Safari on iPhone"),
        (ANDROID, "Chrome on Android phone"),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
            " SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
            "Samsung Internet on Android phone",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
            " (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1",
            "Chrome on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/126.0.0.0 Safari/537.36 Edg/126.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox on Linux",
        ),
        ("", "Unknown device"),
        ("curl/8.5", "Unknown device"),
    ],
)
def test_device_labels_read_like_a_person_would_say_them(ua, label):
    assert device_label(ua) == label


def clinic_pages(world):
    """A browser signed in to the practitioner pages as P1; return it and its CSRF token."""
    http = world.app.test_client()
    token = csrf(http, "/clinic/login")
    signin = {"email": "one@clinic-one.net", "password": PASSWORD, "csrf_token": token}
    assert http.post("/clinic/login", data=signin).status_code == 302
    return http, csrf(http, "/clinic/clients")


def csrf(http, path):
    page = http.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def phone(world, ua):
    """Sign a new phone in as client 1 with this User-Agent."""
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    api = Api(world.app)
    r = api.post(f"/api/invites/{token}/redeem", headers={"User-Agent": ua})
    assert r.status_code == 200
    return api


def devices(world, client_id=None):
    r = world.p1.get(f"/api/clients/{client_id or world.client1['id']}/devices")
    assert r.status_code == 200, r.json
    return r.json["devices"]


def test_the_clinic_sees_each_signed_in_phone(world):
    phone(world, IPHONE)
    phone(world, ANDROID)
    found = devices(world)
    labels = sorted(d["label"] for d in found)
    # The world fixture's own phone (the test client's User-Agent) is the third.
    assert "Safari on iPhone" in labels and "Chrome on Android phone" in labels
    assert len(found) == 3
    for d in found:
        assert set(d) == {"id", "label", "first_seen_at", "last_seen_at"}
        assert re.fullmatch(r"[0-9a-f-]{36}", d["id"])
    assert world.p2.get(f"/api/clients/{world.client1['id']}/devices").status_code == 404
    assert world.c1.get(f"/api/clients/{world.client1['id']}/devices").status_code == 403


def test_signing_one_phone_out_ends_it_there_and_tells_it_to_clear(world):
    iphone = phone(world, IPHONE)
    [target] = [d for d in devices(world) if d["label"] == "Safari on iPhone"]
    r = world.p1.delete(f"/api/clients/{world.client1['id']}/devices/{target['id']}")
    assert r.status_code == 204
    r = iphone.get("/api/me")
    assert r.status_code == 401 and r.headers["Clear-Site-Data"] == CLEAR
    assert world.c1.get("/api/me").status_code == 200  # the other phone stays
    assert target["id"] not in [d["id"] for d in devices(world)]
    again = world.p1.delete(f"/api/clients/{world.client1['id']}/devices/{target['id']}")
    assert again.status_code == 404
    assert (
        world.p2.delete(f"/api/clients/{world.client1['id']}/devices/{target['id']}").status_code
        == 404
    )
    [(detail,)] = sql(world.app, "SELECT detail FROM audit_log WHERE action = 'client_signed_out'")
    assert detail == f"device={target['id']}"


def test_signing_all_phones_out(world):
    iphone = phone(world, IPHONE)
    r = world.p1.delete(f"/api/clients/{world.client1['id']}/devices")
    assert r.status_code == 200 and r.json == {"signed_out": 2}
    assert iphone.get("/api/aftercare").status_code == 401
    assert world.c1.get("/api/aftercare").status_code == 401
    assert devices(world) == []
    assert world.c2.get("/api/aftercare").status_code == 200  # another clinic's client


def test_a_new_invite_offers_to_sign_the_old_phones_out(world):
    cid = world.client1["id"]
    r = world.p1.post(f"/api/clients/{cid}/invites")
    assert r.status_code == 201 and r.json["devices_signed_in"] == 1
    r = world.p1.post(f"/api/clients/{cid}/invites", {"sign_out_devices": True})
    assert r.status_code == 201 and r.json["devices_signed_in"] == 0
    assert world.c1.get("/api/me").status_code == 401
    bad = world.p1.post(f"/api/clients/{cid}/invites", {"sign_out_devices": "yes"})
    assert bad.status_code == 422 and "sign_out_devices" in bad.json["error"]["fields"]
    # The invite page offers it too.
    phone(world, IPHONE)
    http, token = clinic_pages(world)
    page = http.post(f"/clinic/clients/{cid}/invite", data={"csrf_token": token})
    html = page.get_data(as_text=True)
    assert "1 phone still signed in as Alice" in html and "Safari on iPhone" in html
    r = http.post(
        f"/clinic/clients/{cid}/invite", data={"csrf_token": token, "sign_out_devices": "on"}
    )
    assert r.status_code == 200 and "still signed in" not in r.get_data(as_text=True)
    assert devices(world) == []


def subscribe(api, name: str) -> str:
    """Post a browser-like push subscription from this phone; return its endpoint."""
    sub = FakeBrowserSubscription(name, f"https://push.example.net/send/{name}").to_json()
    r = api.post("/api/push/subscriptions", sub)
    assert r.status_code == 201, r.json
    return sub["endpoint"]


def push_endpoints(world, kind="client", owner_id=None) -> list[str]:
    found = sql(
        world.app,
        "SELECT endpoint FROM push_subscriptions WHERE owner_kind = ? AND owner_id = ?",
        (kind, owner_id or world.client1["id"]),
    )
    return sorted(endpoint for (endpoint,) in found)


def test_a_phone_signed_out_stops_getting_reminders_on_it(world):
    """A lost phone signed out by the clinic kept its push subscription: the reminders (with
    the clinic's name and the aftercare) went on arriving there, and since a live device
    existed, none went by email to the client who no longer had it."""
    iphone = phone(world, IPHONE)
    lost = subscribe(iphone, "lost")
    kept = subscribe(world.c1, "kept")
    [target] = [d for d in devices(world) if d["label"] == "Safari on iPhone"]
    assert (
        world.p1.delete(f"/api/clients/{world.client1['id']}/devices/{target['id']}").status_code
        == 204
    )
    assert push_endpoints(world) == [kept]
    listed = world.c1.get("/api/push/subscriptions").json["subscriptions"]
    assert lost not in [each["endpoint"] for each in listed]
    # The client's own sign-out forgets the phone's too (the browser drops its worker anyway).
    assert world.c1.post("/api/auth/logout").status_code == 204
    assert push_endpoints(world) == []


def test_a_new_invite_signing_the_old_phones_out_forgets_their_subscriptions(world):
    subscribe(world.c1, "old-phone")
    # One stored before m020 names no sign-in: signing every phone out forgets it as well.
    legacy = subscribe(phone(world, ANDROID), "older")
    sql(world.app, "UPDATE push_subscriptions SET session_id = NULL WHERE endpoint = ?", (legacy,))
    r = world.p1.post(f"/api/clients/{world.client1['id']}/invites", {"sign_out_devices": True})
    assert r.status_code == 201
    assert push_endpoints(world) == []
    # A new phone signed in afterwards subscribes as before.
    fresh = subscribe(phone(world, IPHONE), "new-phone")
    assert push_endpoints(world) == [fresh]


def test_a_practitioners_alerts_outlive_their_sign_out(world):
    """Urgent alerts reach a practitioner's phone whether or not they are signed in."""
    endpoint = subscribe(world.p1, "desk-phone")
    pid = world.p1.get("/api/me").json["practitioner"]["id"]
    assert world.p1.post("/api/auth/logout").status_code == 204
    assert push_endpoints(world, "practitioner", pid) == [endpoint]


def test_last_seen_moves_at_most_every_few_minutes(world):
    cid = world.client1["id"]
    old = (datetime.now(UTC) - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sql(world.app, "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'client'", (old,))
    world.c1.get("/api/aftercare")
    assert devices(world, cid)[0]["last_seen_at"].startswith(old[:19])  # no write yet
    older = (datetime.now(UTC) - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sql(world.app, "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'client'", (older,))
    world.c1.get("/api/aftercare")
    seen = datetime.fromisoformat(devices(world, cid)[0]["last_seen_at"])
    assert datetime.now(UTC) - seen < timedelta(minutes=1)


def test_a_phone_idle_past_the_setting_is_signed_out(world):
    idle_days = world.app.config["CLIENT_IDLE_DAYS"]
    assert idle_days == 60
    almost = (datetime.now(UTC) - timedelta(days=idle_days - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sql(
        world.app, "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'client'", (almost,)
    )
    assert world.c1.get("/api/aftercare").status_code == 200  # and that use counts
    idle = (datetime.now(UTC) - timedelta(days=idle_days + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sql(world.app, "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'client'", (idle,))
    r = world.c1.get("/api/aftercare")
    assert r.status_code == 401 and r.headers["Clear-Site-Data"] == CLEAR
    assert devices(world) == []


def test_the_idle_period_is_a_setting(tmp_path, monkeypatch):
    from companion import create_app

    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "i"))
    monkeypatch.setenv("COMPANION_CLIENT_IDLE_DAYS", "14")
    assert create_app().config["CLIENT_IDLE_DAYS"] == 14


def test_sign_out_answers_with_clear_site_data(world):
    r = world.c1.post("/api/auth/logout")
    assert r.status_code == 204 and r.headers["Clear-Site-Data"] == CLEAR
    assert world.c1.get("/api/me").status_code == 401
    # The phone's sign-out page does the same.
    other = phone(world, IPHONE)
    token = csrf(other.http, "/settings")
    r = other.http.post("/sign-out", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith("/start")
    assert r.headers["Clear-Site-Data"] == CLEAR
    assert other.get("/api/me").status_code == 401
    live = "user_kind = 'client' AND user_id = ? AND revoked_at IS NULL"
    assert count(world.app, "auth_sessions", live, (world.client1["id"],)) == 0
    # The contract says so where integrations read it.
    document = world.anon.get("/api/openapi.json").json
    assert "Clear-Site-Data" in document["paths"]["/api/auth/logout"]["post"]["summary"]


def test_an_erased_clients_phone_is_told_to_clear(world):
    spare = world.new_client(world.p1, "Spare")
    token = world.p1.post(f"/api/clients/{spare['id']}/invites").json["token"]
    gone = Api(world.app)
    assert gone.post(f"/api/invites/{token}/redeem").status_code == 200
    assert world.p1.delete(f"/api/clients/{spare['id']}").status_code == 204
    r = gone.http.get("/welcome")
    assert r.status_code == 302 and r.headers["Clear-Site-Data"] == CLEAR
    # Once told, the dead cookie is gone: no repeat on the next request.
    assert "Clear-Site-Data" not in gone.http.get("/start").headers


def test_a_practitioners_idle_timeout_does_not_clear_their_browser(world):
    old = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sql(
        world.app,
        "UPDATE auth_sessions SET last_seen_at = ? WHERE user_kind = 'practitioner'",
        (old,),
    )
    r = world.p1.get("/api/me")
    assert r.status_code == 401 and "Clear-Site-Data" not in r.headers


def test_the_timeline_page_lists_the_phones_and_signs_one_out(world):
    phone(world, IPHONE)
    http, token = clinic_pages(world)
    cid = world.client1["id"]
    html = http.get(f"/clinic/clients/{cid}").get_data(as_text=True)
    assert "Signed-in phones" in html and "Safari on iPhone" in html
    [target] = [d for d in devices(world) if d["label"] == "Safari on iPhone"]
    r = http.post(
        f"/clinic/clients/{cid}/phones/{target['id']}/sign-out", data={"csrf_token": token}
    )
    assert r.status_code == 302
    assert target["id"] not in [d["id"] for d in devices(world)]
    r = http.post(
        f"/clinic/clients/{cid}/phones/{target['id']}/sign-out", data={"csrf_token": token}
    )
    assert r.status_code == 404
