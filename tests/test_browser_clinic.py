"""The clinic's own face in a real Chromium (issue 15): its name and logo in the client app's
header on every client page, light and dark, at 390x844; the owner's Clinic page at 1024x768;
the calendar step worded for the phone. Screenshots go to test-artifacts/screenshots."""

import io

import pytest
from browser_support import (
    PASSWORD,
    PHONE,
    TABLET,
    axe_violations,
    chromium_context,
    require_chromium,
    running_server,
    screenshot,
    serve_axe,
)
from conftest import World
from PIL import Image
from playwright.sync_api import expect

NAME = "Glow Skin Studio"
CLIENT_PAGES = ["/", "/checkin", "/reminders", "/settings", "/welcome"]


def logo_png() -> bytes:
    img = Image.new("RGB", (600, 300), (91, 33, 182))
    img.paste((255, 255, 255), (200, 75, 400, 225))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def seed(app) -> dict:
    world = World(app)
    r = world.p1.patch(
        "/api/clinic",
        {
            "display_name": NAME,
            "phone": "+44 20 7946 0000",
            "address": "1 High Street\nLondon N1 1AA",
            "opening_hours": "Mon–Fri 9:00–18:00\nSat 10:00–14:00",
            "booking_url": "https://glow.example/book",
            "accent_color": "#5b21b6",
        },
    )
    assert r.status_code == 200, r.json
    r = world.p1.put("/api/clinic/logo", data=logo_png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.json
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    return {"token": token, "email": "one@clinic-one.net"}


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with running_server(seed) as running:
        yield running


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_the_clinic_name_and_logo_are_in_the_header_on_every_client_page(server):
    with chromium_context(PHONE, base_url=server.url) as context:
        context.set_default_timeout(15_000)
        serve_axe(context)
        page = context.new_page()
        page.goto(f"/i/{server.seeded['token']}")
        expect(page.get_by_text(f"{NAME} invited you")).to_be_visible()
        expect(page.locator("header.bar .clinic-name")).to_have_text(NAME)
        screenshot(page, "clinic-invite-390-light")
        page.get_by_role("button", name="Open my aftercare").tap()
        expect(page).to_have_url(f"{server.url}/welcome")
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for path in CLIENT_PAGES:
                page.goto(path)
                header = page.locator("header.bar")
                expect(header.locator(".clinic-name")).to_have_text(NAME)
                logo = header.locator("img.clinic-logo")
                expect(logo).to_be_visible()
                assert logo.evaluate("img => img.complete && img.naturalWidth > 0"), path
                box = logo.bounding_box()
                assert box["height"] <= 41 and box["width"] <= 121
                assert no_sideways_scroll(page), path
            page.goto("/welcome")
            step = page.locator("#step-calendar")
            expect(step).to_be_visible()
            link = step.get_by_role("link", name="Add to Google Calendar")  # an Android phone
            assert link.get_attribute("href").startswith(
                "https://calendar.google.com/calendar/render?cid=webcal%3A%2F%2F"
            )
            screenshot(page, f"clinic-welcome-390-{scheme}")
            assert axe_violations(page) == [], scheme
            page.goto("/settings")
            screenshot(page, f"clinic-settings-390-{scheme}")
            page.goto("/")
            expect(page.locator("#clinic-h + .clinic-contact a.call")).to_have_attribute(
                "href", "tel:+442079460000"
            )
            screenshot(page, f"clinic-home-390-{scheme}")


def test_the_owners_clinic_page(server):
    with chromium_context(TABLET, base_url=server.url) as context:
        context.set_default_timeout(15_000)
        serve_axe(context)
        page = context.new_page()
        page.goto("/clinic/login")
        page.get_by_label("Email").fill(server.seeded["email"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto("/clinic/profile")
        expect(page.get_by_label("Name clients see")).to_have_value(NAME)
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert no_sideways_scroll(page)
            screenshot(page, f"clinic-profile-1024-{scheme}")
            assert axe_violations(page) == [], scheme
        page.get_by_label("Accent colour").fill("#14b8a6")
        page.get_by_role("button", name="Save details").click()
        expect(page.locator("#accent_color-error")).to_contain_text("contrast")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto("/clinic/profile")
        assert no_sideways_scroll(page)
        screenshot(page, "clinic-profile-390-light")
