"""Practitioner review in a real Chromium at tablet size: the queue, flag actions, the timeline.

Its own `companion run` server and its own Chromium (not the phone's), for the module.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from browser_support import (
    PASSWORD,
    TABLET,
    chromium_context,
    require_chromium,
    running_server,
    screenshot,
)
from conftest import World, checkin_body
from playwright.sync_api import expect

RESOLUTION_NOTE = "Called Alice: a small pustule, started on antiseptic; photo check tomorrow."


def seed(app) -> dict:
    world = World(app)
    carol = world.new_client(world.p1, "Carol")
    carol_session = world.new_session(world.p1, carol["id"])
    carol_phone = world.sign_in_client(world.p1, carol["id"])
    # Carol's flag is older but only "review": Alice's urgent one must still come first.
    answer = carol_phone.post(
        "/api/checkins", checkin_body(session_id=carol_session["id"], redness=2, swelling=1, pain=7)
    )
    assert answer.status_code == 201 and answer.json["assessment"]["status"] == "review", (
        answer.json
    )
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    calm = world.c1.post("/api/checkins", checkin_body(taken_at=earlier, redness=1, swelling=1))
    assert calm.status_code == 201, calm.json
    urgent = world.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    assert urgent.json["assessment"]["status"] == "urgent", urgent.json
    flags = world.p1.get("/api/flags?severity=urgent").json["flags"]
    [flag] = [f for f in flags if f["client_id"] == world.client1["id"] and f["rule"] == "U3"]
    return {"email": "one@clinic-one.net", "alice_id": world.client1["id"], "flag_id": flag["id"]}


@pytest.fixture(scope="module")
def server():
    require_chromium()
    with running_server(seed) as running:
        yield running


@pytest.fixture(scope="module")
def tablet(server):
    with chromium_context(TABLET, base_url=server.url) as context:
        context.set_default_timeout(15_000)
        yield context


@pytest.fixture
def page(tablet):
    page = tablet.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def test_practitioner_works_an_urgent_flag_and_reads_the_timeline(page, server):
    seeded = server.seeded
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(seeded["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/clinic/")
    expect(page).to_have_title(re.compile(r"^\(1 urgent\) Queue"))

    rows = page.locator("li.recovery")
    expect(rows).to_have_count(2)
    top = rows.first
    expect(top.locator(f'[data-flag-id="{seeded["flag_id"]}"]')).to_have_count(1)
    expect(top).to_have_class(re.compile(r"\bsev-urgent\b"))
    expect(top).to_contain_text("⚠ Urgent")
    expect(top).to_contain_text("Alice")
    expect(top).to_contain_text("U3")
    expect(top).to_contain_text("Nobody on it yet")
    expect(rows.nth(1)).to_contain_text("Carol")
    screenshot(page, "tablet-queue")

    top.get_by_role("button", name="I’m on it").click()
    expect(page.locator("p.notice").first).to_contain_text("You are on it")
    top = page.locator("li.recovery").first
    expect(top).to_contain_text("is on it")
    expect(top.get_by_role("button", name="I’m on it")).to_have_count(0)

    top.get_by_label("Resolution note for Alice").fill(RESOLUTION_NOTE)
    top.get_by_role("button", name="Resolve").click()
    expect(page.locator("p.notice").first).to_have_text("Recovery resolved.")
    expect(rows).to_have_count(1)  # gone from the active queue
    expect(rows.first).to_contain_text("Carol")
    screenshot(page, "tablet-queue-after-resolve")
    assert server.query("SELECT status, note FROM flags WHERE id = ?", (seeded["flag_id"],)) == [
        ("resolved", RESOLUTION_NOTE)
    ]
    page.get_by_label("Status").select_option("resolved")
    page.get_by_role("button", name="Filter").click()
    done = page.locator("li.recovery")
    expect(done).to_have_count(1)
    expect(done.first).to_contain_text(RESOLUTION_NOTE)
    expect(done.first).to_contain_text("Resolved by")
    expect(done.first).not_to_contain_text("Waiting")

    page.get_by_role("link", name="Clients").click()
    page.get_by_role("link", name="Alice", exact=True).click()
    expect(page).to_have_url(f"{server.url}/clinic/clients/{seeded['alice_id']}")
    chart = page.locator("svg.chart").first
    expect(chart).to_be_visible()
    # One redness circle per check-in, plus a ring around the point that raised the flag.
    expect(chart.locator(".point")).to_have_count(2)
    expect(chart.locator(".point.flagged")).to_have_count(1)  # a link to its check-in row
    assert chart.locator("circle").count() == 3
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100, box
    expect(page.locator("section.session").first).to_contain_text(
        f"resolved it: “{RESOLUTION_NOTE}”"
    )
    screenshot(page, "tablet-client-timeline")
