"""Two-factor sign-in and signing a phone out, in a real Chromium.

The practitioner (tablet) sets two-factor up from the QR page's secret, keeps the recovery codes,
signs out and in again with a code; the client's phone signs out and keeps no page with its name.
"""

import contextlib
import re
import time

import pyotp
import pytest
from browser_support import (
    PASSWORD,
    PHONE,
    TABLET,
    chromium_context,
    require_chromium,
    running_server,
    screenshot,
    wait_until,
)
from conftest import World
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect


def seed(app) -> dict:
    world = World(app)
    invite = world.p1.post(f"/api/clients/{world.client1['id']}/invites")
    assert invite.status_code == 201, invite.json
    return {"email": "one@clinic-one.net", "token": invite.json["token"]}


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with running_server(seed) as running:
        yield running


def test_practitioner_sets_up_two_factor_and_signs_in_with_a_code(server):
    with chromium_context(TABLET, base_url=server.url) as tablet:
        tablet.set_default_timeout(15_000)
        page = tablet.new_page()
        page.goto("/clinic/login")
        page.get_by_label("Email").fill(server.seeded["email"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server.url}/clinic/")

        page.get_by_role("link", name="Password").click()
        page.get_by_role("link", name="Set up two-factor sign-in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in")
        page.get_by_role("button", name="Set up two-factor sign-in").click()
        expect(page.locator(".qr svg")).to_be_visible()
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
        screenshot(page, "tablet-two-factor-setup")
        page.reload()  # a reload keeps the QR code being scanned
        assert page.locator("code.secret").inner_text().replace(" ", "") == secret
        totp = pyotp.TOTP(secret)
        first = totp.now()
        page.get_by_label("Code from the app").fill(first)
        page.get_by_role("button", name="Turn on two-factor sign-in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor sign-in is on")
        codes = page.locator("ul.codes li")
        expect(codes).to_have_count(10)
        screenshot(page, "tablet-recovery-codes")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{server.url}/clinic/login")
        page.get_by_label("Email").fill(server.seeded["email"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/clinic/login/code"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
        # The code used at set-up is spent: the next one (one step ahead) is accepted.
        page.get_by_label("Code").fill(first)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not right, or was used already")
        page.get_by_label("Code").fill(totp.at(time.time() + 30))
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server.url}/clinic/")
        assert server.query(
            "SELECT count(*) FROM audit_log WHERE action = 'sign_in'"
            " AND detail = 'second_factor=totp'"
        ) == [(1,)]


def test_a_phone_that_signs_out_keeps_no_page_with_the_clients_name(server):
    with chromium_context(
        PHONE, permissions=("notifications",), origin=server.url, base_url=server.url
    ) as phone:
        phone.set_default_timeout(15_000)
        page = phone.new_page()
        page.goto(f"/i/{server.seeded['token']}")
        page.get_by_role("button", name="Open my aftercare").tap()
        expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Alice")
        page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
        calendar_url = page.evaluate(
            "() => fetch('/api/aftercare').then((r) => r.json()).then((d) => d.calendar_url)"
        )
        token = calendar_url.rsplit("/", 1)[1].removesuffix(".ics")
        # Now under the worker's control: every page a client opens, the welcome page too.
        for path in ("/welcome", "/", "/checkin", "/reminders", "/settings"):
            page.goto(path)

        def cached() -> dict[str, str]:
            return page.evaluate("""async () => {
                const kept = {};
                for (const name of await caches.keys())
                  for (const r of await (await caches.open(name)).keys())
                    kept[new URL(r.url).pathname] = await (await (await caches.open(name)).match(r)).text();
                return kept;
            }""")

        assert wait_until(page, lambda: "/checkin" in cached()), list(cached())
        kept = cached()
        assert "/welcome" not in kept and "/" not in kept, list(kept)
        for path, text in kept.items():  # the name and the calendar's capability URL: nowhere
            assert "Alice" not in text and token not in text, path
        # Offline while still signed in, the welcome page is the offline page, check-in link and all.
        phone.set_offline(True)
        page.goto("/welcome")
        expect(page.get_by_role("heading", level=1)).to_have_text("You're offline")
        expect(page.get_by_role("link", name="Check in", exact=True).last).to_be_visible()
        phone.set_offline(False)
        page.goto("/settings")
        page.get_by_role("button", name="Sign out of this phone").tap()
        expect(page).to_have_url(f"{server.url}/start")
        assert wait_until(page, lambda: "/checkin" not in cached()), list(cached())
        # Offline, the name is nowhere to be found either.
        phone.set_offline(True)
        # With no worker left to answer, Chromium shows its own error page (goto raises).
        with contextlib.suppress(PlaywrightError):
            page.goto("/welcome")

        def shown() -> str | None:
            try:
                return page.content()
            except PlaywrightError:  # still navigating to the error page
                return None

        text = wait_until(page, shown)
        assert text and "Alice" not in text
        phone.set_offline(False)
        page.goto("/welcome")
        expect(page).to_have_url(f"{server.url}/start")
