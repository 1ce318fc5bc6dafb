"""Practitioner pages in a real Chromium (issue 14): the protocol editor's live preview, and
every practitioner page at 390 px (no sideways scroll) and 1024 px, with axe-core finding no
serious or critical violation, light and dark."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

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
from conftest import World, checkin_body
from playwright.sync_api import expect

EMAIL = "one@clinic-one.net"


def seed(app) -> dict:
    world = World(app)
    cid, sid = world.client1["id"], world.session1["id"]
    assert world.c1.post("/api/checkins", checkin_body(redness=2, swelling=1)).status_code == 201
    urgent = world.c1.post(
        "/api/checkins", checkin_body(warning_signs={"pus": True}, note="x" * 300)
    )
    assert urgent.json["assessment"]["status"] == "urgent", urgent.json
    # A phone whose push subscription is gone (410) and one that took the reminder: the
    # timeline lists both attempts with the device, as the dispatcher records them.
    from companion.db import connect

    db = connect(app.config["DATABASE"])
    try:
        with db.conn:
            for n, ua in enumerate(
                ("Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile", "iPhone Safari")
            ):
                db.conn.execute(
                    "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
                    " user_agent, created_at) VALUES ('client', ?, ?, 'k', 'a', ?, '2026-01-01T00:00:00Z')",
                    (cid, f"https://push.example.net/{'x' * 200}/{n}", ua),
                )
            subs = [r[0] for r in db.conn.execute("SELECT id FROM push_subscriptions ORDER BY id")]
            [nid] = db.conn.execute(
                "SELECT id FROM notifications WHERE session_id = ? AND step_key IS NOT NULL"
                " ORDER BY due_at LIMIT 1",
                (sid,),
            ).fetchone()
            for sub, code, outcome in ((subs[0], 201, "delivered"), (subs[1], 410, "gone")):
                db.conn.execute(
                    "INSERT INTO deliveries (notification_id, subscription_id, attempt, at,"
                    " status_code, outcome, reason) VALUES (?, ?, 1, '2026-01-01T00:00:00Z', ?, ?, ?)",
                    (nid, sub, code, outcome, "Gone" if code == 410 else None),
                )
    finally:
        db.conn.close()
    return {"client_id": cid, "session_id": sid}


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with running_server(seed) as running:
        yield running


def sign_in(page):
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/clinic/$"))


def test_protocol_editor_adds_a_step_and_the_preview_shows_it_at_the_right_local_time(server):
    with chromium_context(TABLET, base_url=server.url) as context:
        context.set_default_timeout(15_000)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        sign_in(page)
        page.goto("/clinic/protocol")
        steps = page.locator("#steps > li.step")
        before = steps.count()
        # Steps are listed in the order they fire: the 24 h check-in after the day-1 morning.
        # Each is folded to its summary (when, kind, title); a new one opens (issue: 16,000 px).
        legends = steps.locator("summary .when").all_inner_texts()
        assert legends[:4] == ["right after", "same day at 19:00", "day 1 at 08:30", "24 h after"]

        expect(page.locator("#steps details.step-card[open]")).to_have_count(0)
        page.get_by_role("button", name="Add a step").click()
        expect(steps).to_have_count(before + 1)
        new = steps.last
        expect(new.locator("details.step-card")).to_have_attribute("open", "")
        new.get_by_label("Fires").select_option("day")
        new.get_by_label("Day (0 = session day)").fill("3")
        new.get_by_label("At (client's local time)").fill("07:30")
        new.get_by_label("Kind").select_option("checkin")
        new.get_by_label(re.compile("^Title")).fill("Early check on your skin")
        new.get_by_label("Text", exact=True).fill(
            "Before your day starts: how does your skin look?"
        )
        # The Spanish, behind its own disclosure (issue 15): Spanish-speaking clients get it.
        new.locator("details.language summary").click()
        new.get_by_label("Spanish title").fill("Revisa tu piel temprano")
        new.get_by_label("Spanish text").fill("Antes de empezar el día: ¿cómo ves tu piel?")
        # A sample session in New York on Friday 6 March 2026, 10:00: clocks go forward on
        # Sunday 8 March, so day 3 (Monday 9 March) is in EDT; 07:30 is in the quiet hours
        # (21:00-08:00) and moves to their end.
        page.get_by_label("Client's time zone").fill("America/New_York")
        page.get_by_label("Session date and time").fill("2026-03-06T10:00")
        due = datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo("America/New_York"))
        expected = f"Day 3 · {due:%a %d %b, %H:%M} {due.tzname()}"
        assert expected == "Day 3 · Mon 09 Mar, 08:00 EDT"
        row = page.locator("#preview li", has_text="Early check on your skin")
        expect(row).to_contain_text(expected)
        expect(row).to_contain_text("day 3 at 07:30; moved from 07:30 (quiet hours)")
        expect(new.locator("summary .when")).to_have_text("day 3 at 07:30")
        expect(new.locator("legend .when")).to_have_text("day 3 at 07:30")
        # The summary follows what is typed: it is what shows once the step is folded.
        expect(new.locator("summary .kind")).to_have_text("Check-in")
        expect(new.locator("summary .name")).to_have_text("Early check on your skin")
        expect(page.locator("#preview-status")).to_contain_text("America/New_York")
        screenshot(page, "protocol-editor-preview-tablet", full_page=False)
        # The preview as a Spanish-speaking client gets it: each step's Spanish, else English.
        page.get_by_label("Client's language").select_option("es")
        expect(page.locator("#preview li", has_text="Revisa tu piel temprano")).to_have_count(1)
        expect(page.locator("#preview")).to_contain_text("Cómo cuidar tu piel hoy")
        screenshot(page, "protocol-editor-preview-spanish-tablet", full_page=False)
        page.get_by_label("Client's language").select_option("en")
        expect(page.locator("#preview li", has_text="Early check on your skin")).to_have_count(1)
        # Remove the evening routine: the preview drops it. Move the new step up one place.
        evening = steps.filter(has=page.locator('input[value="Your evening skin routine"]'))
        expect(evening).to_have_count(1)
        evening.locator("summary").first.click()
        evening.get_by_role("button", name="Remove").click()
        expect(steps).to_have_count(before)
        expect(page.locator("#preview")).not_to_contain_text("Your evening skin routine")
        steps.last.get_by_role("button", name="Move up").click()
        expect(steps.nth(before - 2).locator("summary .when")).to_have_text("day 3 at 07:30")

        page.get_by_role("button", name=re.compile(r"^Save as version \d+")).click()
        expect(page.locator("p.notice").first).to_contain_text("Saved as version 2")
        protocol = page.request.get("/api/protocol").json()
        assert protocol["version"] == 2
        [step] = [s for s in protocol["steps"] if s["key"] == "early-check-on-your-skin"]
        assert step["title"] == {"en": "Early check on your skin", "es": "Revisa tu piel temprano"}
        assert step["body"]["es"] == "Antes de empezar el día: ¿cómo ves tu piel?"
        assert step["at"] == {"day": 3, "time": "07:30"} and step["kind"] == "checkin"
        assert step["key"] == "early-check-on-your-skin"
        assert len(protocol["steps"]) == before  # one added, one removed
        keys = [s["key"] for s in protocol["steps"]]
        assert "evening-routine" not in keys
        assert keys.index("early-check-on-your-skin") == before - 2  # moved up one place
        # The page lists it in firing order, between the day-3 steps.
        page.goto("/clinic/protocol")
        legends = steps.locator("summary .when").all_inner_texts()
        assert legends.index("day 3 at 07:30") < legends.index("day 3 at 08:30")
        assert not errors, errors


def test_the_protocol_fits_a_phone_folded_and_saves_without_script(server):
    """The protocol page was about 16,000 px tall at 390 px (every field of fifteen steps):
    each step folds to a finger-high summary of when, kind and title, opens on a tap, and
    the form still saves with script off (a folded step's fields are sent as they are)."""
    with chromium_context(PHONE, base_url=server.url, java_script_enabled=False) as context:
        context.set_default_timeout(15_000)
        page = context.new_page()
        sign_in(page)
        page.goto("/clinic/protocol")
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 6_000, height
        summaries = page.locator("#steps > li.step > details > summary")
        assert summaries.count() >= 10
        boxes = [box["height"] for box in (s.bounding_box() for s in summaries.all())]
        assert min(boxes) >= 44, boxes
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        first = page.locator("#steps > li.step").first
        summary = first.locator("details.step-card > summary")
        expect(summary).to_have_text(
            re.compile(r"^right after · Instruction\s*Caring for your skin today$")
        )
        title = first.get_by_label(re.compile("^Title"))
        expect(title).to_be_hidden()
        summary.click()
        expect(title).to_be_visible()
        screenshot(page, "protocol-phone-folded-one-open", full_page=False)
        version = page.request.get("/api/protocol").json()["version"]
        title.fill("Caring for your skin tonight")
        page.get_by_role("button", name=re.compile(r"^Save as version \d+")).click()
        expect(page.locator("p.notice").first).to_contain_text(f"Saved as version {version + 1}")
        saved = page.request.get("/api/protocol").json()
        assert saved["version"] == version + 1
        [step] = [s for s in saved["steps"] if s["key"] == "after-session"]
        assert step["title"]["en"] == "Caring for your skin tonight", step


# The queue (/clinic/) has its own 390 px and axe tests with its live updates (test_browser_queue).
PAGES = [
    "/clinic/clients",
    "/clinic/clients/new",
    "/clinic/clients/{client}",
    "/clinic/clients/{client}/sessions/new",
    "/clinic/sessions/{session}/edit",
    "/clinic/sessions/{session}/reminders",
    "/clinic/clients/{client}/erase",
    "/clinic/protocol",
    "/clinic/team",
    "/clinic/audit",
    "/clinic/exports",
    "/clinic/settings",
    "/clinic/password",
    "/clinic/profile",
    "/clinic/two-factor",
]


TOO_SMALL = """() => [...document.querySelectorAll(
    'a[href], button, summary, select, textarea, input:not([type=hidden]):not([type=radio]):not([type=checkbox])'
  )].filter((el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || el.closest('.visually-hidden, .skip, [hidden]')) return false;
    if (el.tagName === 'A' && getComputedStyle(el).display === 'inline') return false;
    // A chart's point links to its check-in's row, itself listed below the chart.
    if (el.closest('svg')) return false;
    return box.width < 44 || box.height < 44;
  }).map((el) => `${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${Math.round(el.getBoundingClientRect().width)}x${Math.round(el.getBoundingClientRect().height)}`)"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", [PHONE, TABLET], ids=["390x844", "1024x768"])
def test_practitioner_pages_fit_the_screen_and_pass_axe(server, device, scheme):
    seeded = server.seeded
    width = device["viewport"]["width"]
    with chromium_context(device, base_url=server.url, color_scheme=scheme) as context:
        context.set_default_timeout(15_000)
        serve_axe(context)
        page = context.new_page()
        wide, found, small = {}, {}, {}

        def check(path):
            page.evaluate("document.querySelectorAll('details').forEach((d) => (d.open = true))")
            scroll = page.evaluate("document.documentElement.scrollWidth")
            if scroll > width:
                wide[path] = scroll
            # On a phone every control is a finger high and wide; a link inside a sentence is
            # the one exception (WCAG 2.5.8's inline links). The brand, a disclosure's row, a
            # way back, "Edit session" and the audit log's filters were 20 to 26 px high.
            if device is PHONE:
                tiny = page.evaluate(TOO_SMALL)
                if tiny:
                    small[path] = tiny
            violations = axe_violations(page)
            if violations:
                found[path] = violations
            name = re.sub(r"\W+", "-", path.strip("/")) or "queue"
            screenshot(page, f"practitioner-{name}-{width}-{scheme}", full_page=False)

        page.goto("/clinic/login")
        check("/clinic/login")
        sign_in(page)
        for template in PAGES:
            path = template.format(client=seeded["client_id"], session=seeded["session_id"])
            page.goto(path)
            check(path)
        # The invite page answers the client page's form (a QR code and the link).
        page.goto(f"/clinic/clients/{seeded['client_id']}")
        page.get_by_role("button", name="Invite to the app (QR code)").click()
        # The form's answer is a new page: check it once it is there (checking at once once
        # read a document between the two, whose documentElement was null).
        expect(page.get_by_role("heading", level=1)).to_have_text(
            re.compile(r"^Invite "), timeout=30_000
        )
        check("/clinic/clients/invite")
        assert wide == {}, f"pages wider than {width} px: {wide}"
        assert small == {}, f"controls under 44 px at {width} px: {small}"
        assert found == {}, found
