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


def test_a_timeline_prints_dark_on_white_without_the_menu_even_in_dark_mode(page, server):
    """Issue 6: the chart is server-side SVG so that it prints well. Printed from a tablet in
    dark mode, the page must still come out as dark ink on white paper (printers drop the
    dark background but would keep the light text), without the menu and buttons."""
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(server.seeded["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/clinic/clients/{server.seeded['alice_id']}")
    page.emulate_media(media="print", color_scheme="dark")

    def luminance(css: str) -> float:
        r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    text = page.evaluate("getComputedStyle(document.body).color")
    assert luminance(text) < 0.3, text  # dark ink
    stroke = page.evaluate(
        "getComputedStyle(document.querySelector('svg.chart .line.redness')).stroke"
    )
    assert luminance(stroke) < 0.6, stroke  # the paper palette's red, not the pale screen one
    expect(page.locator("header.bar, .bar").first).to_be_hidden()
    expect(page.get_by_role("link", name="Erase client…")).to_be_hidden()
    expect(page.locator("svg.chart").first).to_be_visible()
    page.emulate_media(media="screen", color_scheme="dark")
    assert luminance(page.evaluate("getComputedStyle(document.body).color")) > 0.7
    expect(page.locator(".bar").first).to_be_visible()


def test_a_timeline_at_tablet_portrait_splits_no_score_and_scrolls_no_sideways(page, server):
    """768 px (a tablet held upright): the eight-column check-ins table used to split its
    words to fit ("Redn|ess", "2/1|0"); it now becomes one card per check-in there."""
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(server.seeded["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/clinic/clients/{server.seeded['alice_id']}")
    cells = page.locator("table.wide td.short")
    expect(cells.first).to_be_visible()
    lines = page.evaluate(
        """() => [...document.querySelectorAll('table.wide td.short')].map((td) => {
             const range = document.createRange();
             range.selectNodeContents(td);
             return [td.textContent, new Set([...range.getClientRects()].map((r) => r.top)).size];
           })"""
    )
    assert lines and all(n == 1 for _, n in lines), lines
    assert page.evaluate("document.documentElement.scrollWidth") <= 768


def test_a_flag_ring_near_the_session_leaves_the_scores_readable(page, server):
    """A check-in hours after the session sits at the left edge of the chart: its flag ring
    must not cover the score labels of the y axis (it covered the right edge of the '2')."""
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(server.seeded["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/clinic/clients/{server.seeded['alice_id']}")
    chart = page.locator("svg.chart").first
    rings = [r.bounding_box() for r in chart.locator("circle.ring").all()]
    labels = [t.bounding_box() for t in chart.locator("text.ylabel").all()]
    assert rings and len(labels) == 5
    for ring in rings:
        for label in labels:
            apart = (
                ring["x"] >= label["x"] + label["width"]
                or ring["y"] >= label["y"] + label["height"]
                or label["y"] >= ring["y"] + ring["height"]
            )
            assert apart, (ring, label)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(int(v) / 255 for v in re.findall(r"\d+", css)[:3])


def _over(back: tuple[float, ...], colour: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    return tuple(b * (1 - alpha) + c * alpha for b, c in zip(back, colour, strict=True))


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    def luminance(rgb):
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_expected_bands_show_and_the_scores_stand_out_over_them(page, server, scheme):
    """The expected-healing bands were a faint grey wash on a dark card (16% of the pale line
    colours); the lines and points over them must keep WCAG's 3:1 for graphics on every part
    of the chart: the card, each band, and where the two bands overlap. The colours are the
    ones the browser resolves, composed as it paints them (swelling's band over redness')."""
    page.emulate_media(color_scheme=scheme)
    page.goto("/clinic/login")
    page.get_by_label("Email").fill(server.seeded["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/clinic/clients/{server.seeded['alice_id']}")
    styles = page.evaluate(
        """() => {
          const chart = document.querySelector('svg.chart');
          let box = chart;
          while (getComputedStyle(box).backgroundColor === 'rgba(0, 0, 0, 0)') box = box.parentElement;
          const style = (sel) => getComputedStyle(chart.querySelector(sel));
          const band = (sel) => [style(sel).fill, Number(style(sel).fillOpacity)];
          return {
            card: getComputedStyle(box).backgroundColor,
            redness: band('.band-redness'), swelling: band('.band-swelling'),
            marks: {
              'redness line': style('.line.redness').stroke,
              'swelling line': style('.line.swelling').stroke,
              'redness point': style('.mark.redness').fill,
              'swelling point': style('.mark.swelling').stroke,
              'flag ring': style('.ring').stroke,
            },
          };
        }"""
    )
    card = _rgb(styles["card"])
    redness = _over(card, _rgb(styles["redness"][0]), styles["redness"][1])
    swelling = _over(card, _rgb(styles["swelling"][0]), styles["swelling"][1])
    both = _over(redness, _rgb(styles["swelling"][0]), styles["swelling"][1])
    grounds = {"card": card, "redness band": redness, "swelling band": swelling, "both": both}
    low = {
        (mark, ground): round(_contrast(_rgb(colour), back), 2)
        for mark, colour in styles["marks"].items()
        for ground, back in grounds.items()
        if _contrast(_rgb(colour), back) < 3
    }
    assert low == {}, (scheme, styles)
    # Each band stands apart from the card by its colour (a distance in RGB, 0-255 a channel):
    # the faint dark bands were 40 and 48 from it, the light ones 43 and 38.
    for name, band in (("redness", redness), ("swelling", swelling)):
        apart = sum((255 * (a - b)) ** 2 for a, b in zip(band, card, strict=True)) ** 0.5
        assert apart >= 50, (scheme, name, round(apart), styles)
