"""A client with no push device checks in from a reminder email, in a real Chromium at 390x844.

`companion run` sends the check-in reminder through its own dispatcher to a real SMTP server
(aiosmtpd in this process); the email's one-tap link opens in a fresh browser profile (no
invite, no app, no cookie), the client answers, and reads the assessment.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from browser_support import (
    PHONE,
    TABLET,
    chromium_context,
    require_chromium,
    running_server,
    screenshot,
)
from conftest import World
from playwright.sync_api import expect

from companion.db import connect, iso, utcnow, write
from testkit.smtp_server import SmtpServer


@pytest.fixture(scope="module")
def smtp():
    with SmtpServer() as server:
        yield server


def seed(smtp):
    def seed_app(app) -> dict:
        world = World(app)
        erin = world.new_client(
            world.p1,
            "Erin",
            email="erin@home-tests.net",
            quiet_hours={"start": "00:00", "end": "00:00"},
        )
        session = world.new_session(world.p1, erin["id"])
        now = utcnow()
        db = connect(app.config["DATABASE"])
        with write(db):
            db.conn.execute(
                "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id,"
                " session_id, step_key, kind, title, body, url, due_at, expires_at,"
                " next_attempt_at, created_at) VALUES ('client', :c, :clinic, :c, :s,"
                " 'browser-checkin', 'checkin', 'Day 2 check-in', 'How is your skin today?',"
                " '/checkin', :due, :expires, :due, :due)",
                {
                    "c": erin["id"],
                    "clinic": erin["clinic_id"],
                    "s": session["id"],
                    "due": iso(now),
                    "expires": iso(now + timedelta(hours=24)),
                },
            )
        db.close()
        # The server reads its SMTP settings from the instance folder, as an operator's would.
        config = Path(app.instance_path) / "config.py"
        config.write_text("".join(f"{k} = {v!r}\n" for k, v in smtp.config().items()))
        invite = world.p1.post(f"/api/clients/{erin['id']}/invites").json["token"]
        return {"client_id": erin["id"], "session_id": session["id"], "invite": invite}

    return seed_app


@pytest.fixture(scope="module")
def server(smtp):
    require_chromium()
    with running_server(seed(smtp)) as running:
        yield running


def reminder_email(smtp, server):
    return smtp.first("Day 2 check-in", timeout=30)


def one_tap_link(smtp, server) -> str:
    plain = reminder_email(smtp, server).get_body(("plain",)).get_content()
    [link] = re.findall(r"http://\S+/checkin/link/\S+", plain)
    assert link.startswith(server.url)  # `run` without PUBLIC_URL links to where it listens
    return link


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_client_without_push_checks_in_from_the_email_link(smtp, server, scheme):
    link = one_tap_link(smtp, server)
    with chromium_context(PHONE, color_scheme=scheme) as context:
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("How is your skin?")
        expect(page.get_by_text("This link opens this check-in only")).to_be_visible()
        assert page.get_by_label("Add a photo (optional)").count() == 0
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"sideways scroll: {width}px"
        screenshot(page, f"email-link-checkin-390-{scheme}")
        page.get_by_role("group", name="Redness").get_by_role("radio", name="1 Slight pink").check()
        page.get_by_role("group", name="Swelling").get_by_role(
            "radio", name="1 Barely noticeable"
        ).check()
        page.get_by_role("group", name="Pain").get_by_role("radio", name="1", exact=True).check()
        page.get_by_label("Note for your clinic (optional)").fill(f"from the email, {scheme}")
        page.get_by_role("button", name="Send check-in").click()
        expect(page.locator("#answer-expected")).to_contain_text("normal")
        expect(page.locator("#answer-expected")).to_contain_text("You can close this page.")
        screenshot(page, f"email-link-answer-390-{scheme}")
        assert not errors, errors
        stored = server.query(
            "SELECT client_id, session_id FROM checkins WHERE note = ?",
            (f"from the email, {scheme}",),
        )
        assert stored == [(server.seeded["client_id"], server.seeded["session_id"])]
        # The link granted this check-in only: the app's pages still want a sign-in.
        page.goto(server.url + "/reminders")
        expect(page.get_by_role("heading", level=1)).not_to_have_text("Your reminders")


@pytest.mark.parametrize("device, scheme", [(PHONE, "light"), (PHONE, "dark"), (TABLET, "light")])
def test_a_warning_sign_the_link_cannot_send_still_says_call_now(smtp, server, device, scheme):
    """A one-tap link keeps nothing on the phone: offline, a warning sign (an urgent rule,
    U1-U5) answered only "could not be sent or saved, try again in a moment" at the foot of the
    form. Now the urgent screen says to call, the answers wait in the form for another try."""
    link = one_tap_link(smtp, server)
    size = device["viewport"]["width"]
    with chromium_context(device, color_scheme=scheme) as context:
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(link)
        page.get_by_role("group", name="Redness").get_by_role(
            "radio", name="2 Clearly red, like mild sunburn"
        ).check()
        page.get_by_role("group", name="Swelling").get_by_role(
            "radio", name="1 Barely noticeable"
        ).check()
        page.get_by_role("group", name="Pain").get_by_role("radio", name="3", exact=True).check()
        page.get_by_role("checkbox", name="Pus, yellow crusts or discharge").check()
        page.get_by_label("Note for your clinic (optional)").fill(f"link offline, {size} {scheme}")
        context.set_offline(True)
        page.get_by_role("button", name="Send check-in").click()
        urgent = page.locator("#answer-urgent")
        expect(urgent).to_be_visible()
        call = page.get_by_role("link", name=re.compile(r"^Call Clinic One"))
        expect(call).to_be_in_viewport(ratio=1)
        expect(urgent.locator("[data-next=not-sent]").first).to_have_text(
            "Your answers could not be sent just now, so Clinic One does not have them yet."
            " Call them now."
        )
        expect(urgent.get_by_text("Your clinic has your answers")).to_be_hidden()
        expect(urgent.get_by_text("We have alerted Clinic One")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= size
        screenshot(page, f"email-link-urgent-not-sent-{size}-{scheme}", full_page=False)
        # Back to the answers, kept, and sent once the connection is back.
        page.get_by_role("button", name="Back to my answers").click()
        expect(page.get_by_role("checkbox", name="Pus, yellow crusts or discharge")).to_be_checked()
        context.set_offline(False)
        page.get_by_role("button", name="Send check-in").click()
        expect(urgent.get_by_text("We have alerted Clinic One")).to_be_visible()
        expect(urgent.get_by_text("Your clinic has your answers")).to_be_visible()
        expect(urgent.locator("[data-next=not-sent]").first).to_be_hidden()
    stored = server.query(
        "SELECT count(*) FROM checkins WHERE note = ?", (f"link offline, {size} {scheme}",)
    )
    assert stored == [(1,)]


@pytest.mark.parametrize("device, scheme", [(TABLET, "light"), (PHONE, "dark")])
def test_the_link_and_unsubscribe_pages_at_other_sizes(smtp, server, device, scheme):
    link = one_tap_link(smtp, server)
    size = device["viewport"]["width"]
    unsubscribe = str(reminder_email(smtp, server)["List-Unsubscribe"]).strip("<>")
    html = reminder_email(smtp, server).get_body(("html",)).get_content()
    with chromium_context(device, color_scheme=scheme) as context:
        page = context.new_page()
        page.set_content(html)  # the email as a mail app shows it
        expect(page.get_by_role("link", name="Check in now")).to_be_visible()
        screenshot(page, f"email-html-{size}-{scheme}")
        page.goto(link)
        expect(page.get_by_role("heading", level=1)).to_have_text("How is your skin?")
        screenshot(page, f"email-link-checkin-{size}-{scheme}")
        page.goto(unsubscribe)  # asks first; nothing changes on GET
        expect(page.get_by_role("heading", level=1)).to_have_text("Stop reminder emails?")
        assert page.evaluate("document.documentElement.scrollWidth") <= size
        screenshot(page, f"email-unsubscribe-{size}-{scheme}")
    assert server.query(
        "SELECT channels FROM clients WHERE id = ?", (server.seeded["client_id"],)
    ) == [(None,)]


def test_the_settings_page_offers_the_channels(smtp, server):
    with chromium_context(PHONE, base_url=server.url) as context:
        page = context.new_page()
        page.goto(f"/i/{server.seeded['invite']}")
        page.get_by_role("button", name="Open my aftercare").tap()
        expect(page).to_have_url(f"{server.url}/welcome")
        page.goto("/settings")
        group = page.get_by_role("group", name="How reminders reach you")
        expect(
            group.get_by_role("radio", name="Email only, to erin@home-tests.net")
        ).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            screenshot(page, f"email-settings-390-{scheme}")
