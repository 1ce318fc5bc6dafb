"""A shared phone in a real Chromium: client A's check-in queued offline never lands on client
B's record once B has signed in on the same phone.

A's sign-out is left out on purpose (Chromium honours Clear-Site-Data, Safari does not): B's
sign-in replaces A's cookie while A's check-in still waits in the outbox, as on an iPhone. The
replay sends it as A's (X-Companion-Client), the server answers 409 other_client, and the phone
drops it with its photo.
"""

import requests
from browser_support import client_phone_fixtures, wait_until
from conftest import World
from PIL import Image
from playwright.sync_api import expect


def seed(app) -> dict:
    world = World(app)
    bea = world.new_client(world.p1, "Bea")  # same clinic, a session of her own
    world.new_session(world.p1, bea["id"])
    invite_a = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    invite_b = world.p1.post(f"/api/clients/{bea['id']}/invites").json["token"]
    return {"token": invite_a, "invite_b": invite_b, "a": world.client1["id"], "b": bea["id"]}


server, phone, page = client_phone_fixtures(seed)

PENDING = "async () => (await CompanionOutbox.createOutbox().pending()).length"


def test_a_check_in_queued_by_a_is_never_filed_under_b(page, phone, server, tmp_path):
    page.goto("/checkin")
    form = page.locator("#checkin-form")
    assert form.get_attribute("data-client-id") == str(server.seeded["a"])
    picture = tmp_path / "cheek.jpg"
    Image.new("RGB", (64, 48), (200, 100, 90)).save(picture, "JPEG")
    page.get_by_role("group", name="Redness").get_by_role(
        "radio", name="2 Clearly red, like mild sunburn"
    ).tap()
    page.get_by_role("group", name="Swelling").get_by_role("radio", name="0 None").tap()
    page.get_by_role("group", name="Pain").get_by_role("radio", name="6", exact=True).tap()
    page.get_by_label("Add a photo (optional)").set_input_files(str(picture))
    page.get_by_label("Note for your clinic (optional)").fill("A, queued offline")
    phone.set_offline(True)
    page.get_by_role("button", name="Send check-in").tap()
    expect(page.locator("#answer-saved")).to_be_visible()
    assert page.evaluate(PENDING) == 1
    page.goto("about:blank")  # no open page of A's replays it when back online

    # B signs in on the same phone; A's cookie is gone, A's queue is not (Safari).
    b = requests.Session()
    r = b.post(f"{server.url}/api/invites/{server.seeded['invite_b']}/redeem", json={})
    assert r.status_code == 200, r.text
    phone.clear_cookies()
    phone.add_cookies([{"name": c.name, "value": c.value, "url": server.url} for c in b.cookies])
    phone.set_offline(False)
    tab = phone.new_page()
    tab.goto("/checkin")  # the page replays the outbox (so may the worker's Background Sync)
    assert tab.locator("#checkin-form").get_attribute("data-client-id") == str(server.seeded["b"])
    assert wait_until(tab, lambda: tab.evaluate(PENDING) == 0, timeout=20), "A's record kept"
    assert 409 in server.statuses("POST", "/api/checkins")
    assert server.query("SELECT client_id, note FROM checkins") == []
    assert server.query("SELECT count(*) FROM photos") == [(0,)]
    tab.close()
