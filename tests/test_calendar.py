"""The phone's own calendar (issue 13): a private feed per client, parsed with icalendar,
alarms at the planned due times in three zones across a DST change; revocation, erasure, no
cookie needed, other clients' feeds unreachable."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from conftest import sql
from icalendar import Calendar

from companion import throttle
from companion.accounts import clinics
from companion.admin import clinic
from companion.db import get_db
from companion.reminders import calendar
from companion.treatments import store as treatments
from companion.web import redact_tokens

PUBLIC = "https://aftercare.clinic-one.net"


@pytest.fixture
def world(world):
    world.app.config["PUBLIC_URL"] = PUBLIC
    return world


def feed_path(api) -> str:
    url = api.get("/api/aftercare").json["calendar_url"]
    assert url.startswith(PUBLIC + "/calendar/") and url.endswith(".ics")
    return url[len(PUBLIC) :]


def parse(response) -> Calendar:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/calendar"
    return Calendar.from_ical(response.data)


def events(cal: Calendar) -> list:
    return [c for c in cal.walk("VEVENT")]


def test_aftercare_carries_the_links_and_the_feed_needs_no_cookie(world):
    data = world.c1.get("/api/aftercare").json
    token = data["calendar_url"].rsplit("/", 1)[1][: -len(".ics")]
    assert len(token) >= 40  # 32 random bytes
    assert data["webcal_url"] == "webcal://" + data["calendar_url"].split("://", 1)[1]
    cid = parse_qs(urlsplit(data["google_calendar_url"]).query)["cid"][0]
    assert cid == data["webcal_url"]
    # A calendar app has no cookie: a fresh client fetches it.
    bare = world.app.test_client()
    r = bare.get(feed_path(world.c1))
    cal = parse(r)
    assert "Set-Cookie" not in r.headers
    assert "private" in r.headers["Cache-Control"]
    found = events(cal)
    planned = sql(
        world.app,
        "SELECT count(*) FROM notifications WHERE owner_kind = 'client' AND owner_id = ?"
        " AND status = 'pending'",
        (world.client1["id"],),
    )[0][0]
    assert planned and len(found) >= planned
    for event in found:
        assert event.walk("VALARM"), event["SUMMARY"]
        assert str(event["URL"]).startswith(PUBLIC + "/")


def test_the_refresh_hints_are_durations_calendar_apps_read(world):
    """REFRESH-INTERVAL (RFC 7986) and X-PUBLISHED-TTL (Outlook, Apple) are RFC 5545
    durations: "1:00:00" (Python's str of a timedelta) is read by neither."""
    raw = world.anon.get(feed_path(world.c1)).get_data(as_text=True)
    assert "\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in raw
    assert "\r\nX-PUBLISHED-TTL:PT1H\r\n" in raw


def test_other_clients_feeds_are_unreachable_and_tokens_are_checked(world):
    mine, theirs = feed_path(world.c1), feed_path(world.c2)
    assert mine != theirs
    assert world.anon.get("/calendar/" + "x" * 43 + ".ics").status_code == 404
    assert world.anon.get("/calendar/short.ics").status_code == 404
    a = parse(world.anon.get(mine))
    b = parse(world.anon.get(theirs))
    uids_a = {str(e["UID"]) for e in events(a)}
    uids_b = {str(e["UID"]) for e in events(b)}
    assert uids_a and uids_b and not uids_a & uids_b
    ids_b = {
        r[0]
        for r in sql(
            world.app,
            "SELECT id FROM notifications WHERE owner_id = ? AND owner_kind = 'client'",
            (world.client2["id"],),
        )
    }
    assert all(int(u.split("-")[1].split("@")[0]) in ids_b for u in uids_b)
    assert not any(int(u.split("-")[1].split("@")[0]) in ids_b for u in uids_a)


def test_the_client_and_the_practitioner_revoke_it(world):
    old = feed_path(world.c1)
    r = world.c1.post("/api/calendar/reset")
    assert r.status_code == 200
    new = r.json["calendar_url"][len(PUBLIC) :]
    assert new != old
    assert world.anon.get(old).status_code == 404
    assert world.anon.get(new).status_code == 200
    assert feed_path(world.c1) == new
    # The clinic does it for a lost phone; another clinic cannot.
    assert world.p2.post(f"/api/clients/{world.client1['id']}/calendar/reset").status_code == 404
    assert world.anon.get(new).status_code == 200
    r = world.p1.post(f"/api/clients/{world.client1['id']}/calendar/reset")
    assert r.status_code == 200
    assert world.anon.get(new).status_code == 404
    assert world.anon.get(r.json["calendar_url"][len(PUBLIC) :]).status_code == 200
    actions = [
        a
        for (a,) in sql(
            world.app, "SELECT actor_kind FROM audit_log WHERE action = ?", ("calendar_link_reset",)
        )
    ]
    assert sorted(actions) == ["client", "practitioner"]


def test_the_pages_revoke_it_too(world):
    old = feed_path(world.c1)
    page = world.c1.get("/settings").get_data(as_text=True)
    assert "Add to my calendar" in page and "/calendar/reset" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = world.c1.http.post("/calendar/reset", data={"csrf_token": csrf})
    assert r.status_code == 302
    assert world.anon.get(old).status_code == 404


def test_an_erased_client_has_no_feed(world):
    path = feed_path(world.c1)
    assert world.p1.delete(f"/api/clients/{world.client1['id']}").status_code == 204
    assert world.anon.get(path).status_code in (404, 410)


def test_it_follows_cancellation_and_re_planning(world):
    path = feed_path(world.c1)
    before = {str(e["UID"]): e for e in events(parse(world.anon.get(path)))}
    session = world.session1["id"]
    moved = datetime.now(UTC) - timedelta(minutes=30)
    r = world.p1.patch(f"/api/sessions/{session}", {"performed_at": moved.isoformat()})
    assert r.status_code == 200, r.json
    after = events(parse(world.anon.get(path)))
    due = {
        f"notification-{i}@aftercare.clinic-one.net": d
        for i, d in sql(
            world.app,
            "SELECT id, due_at FROM notifications WHERE owner_id = ? AND owner_kind = 'client'"
            " AND status = 'pending'",
            (world.client1["id"],),
        )
    }
    for event in after:
        uid = str(event["UID"])
        if uid in due:
            assert event["DTSTART"].dt == datetime.fromisoformat(due[uid]).replace(microsecond=0)
    assert {str(e["UID"]) for e in after} != set(before)
    # A deleted session's reminders leave the calendar.
    assert world.p1.delete(f"/api/sessions/{session}").status_code == 204
    assert events(parse(world.anon.get(path))) == []


def test_discreet_mode_holds_in_the_calendar(world):
    world.c1.patch("/api/me", {"discreet": True})
    cal = parse(world.anon.get(feed_path(world.c1)))
    for event in events(cal):
        assert str(event["SUMMARY"]) == "New aftercare reminder"
        assert "DESCRIPTION" not in event or "sun" not in str(event["DESCRIPTION"]).lower()
    assert str(cal["X-WR-CALNAME"]) == "Companion"  # nor the clinic's name
    assert "Clinic One" not in cal.to_ical().decode()


# Three zones, each across its next DST change: the alarms fire at the planned instants and
# the wall-clock steps ("day 2, 18:00") stay at 18:00 local after the clocks change.
DST_CASES = [
    ("America/New_York", datetime(2027, 3, 12, 15, 0)),  # clocks go forward 14 March
    ("Europe/London", datetime(2027, 3, 26, 15, 0)),  # forward 28 March
    ("Australia/Sydney", datetime(2027, 4, 2, 15, 0)),  # back 4 April
]


@pytest.mark.parametrize(("zone", "local_start"), DST_CASES)
def test_alarms_match_the_plan_across_dst(world, zone, local_start):
    tz = ZoneInfo(zone)
    performed = local_start.replace(tzinfo=tz)
    now = performed.astimezone(UTC) + timedelta(minutes=5)
    client = world.new_client(world.p1, f"Client in {zone}", timezone=zone)
    with world.app.app_context():
        db = get_db()
        client_row = dict(
            db.conn.execute("SELECT * FROM clients WHERE id = ?", (client["id"],)).fetchone()
        )
        values = {
            "performed_at": performed,
            "areas": ["face"],
            "needle_depth_mm": 0.5,
            "device": "pen",
            "products": [],
            "notes": None,
        }
        with db.atomic():
            session = treatments.create_session(db, client_row, 1, values, now)
        face = clinic.face(clinics.get_clinic(db, client_row["clinic_id"]))
        body = calendar.feed(db, client_row, face, now, PUBLIC)
    plan = {
        f"notification-{i}@aftercare.clinic-one.net": (datetime.fromisoformat(d), k)
        for i, d, k in sql(
            world.app,
            "SELECT id, due_at, step_key FROM notifications WHERE session_id = ?"
            " AND status = 'pending'",
            (session["id"],),
        )
    }
    assert len(plan) >= 5
    cal = Calendar.from_ical(body)
    found = events(cal)
    assert {str(e["UID"]) for e in found} == set(plan)
    zones = [str(t["TZID"]) for t in cal.walk("VTIMEZONE")]
    assert zones == [zone]
    assert {c.name for c in cal.walk("VTIMEZONE")[0].subcomponents} >= {"STANDARD", "DAYLIGHT"}
    offsets = set()
    for event in found:
        start = event["DTSTART"]
        assert start.params["TZID"] == zone
        due, key = plan[str(event["UID"])]
        assert start.dt == due  # the same instant as the outbox row
        (alarm,) = event.walk("VALARM")
        assert alarm["ACTION"] == "DISPLAY"
        assert alarm["TRIGGER"].dt == timedelta(0)  # at the event's start: the due time
        local = start.dt.astimezone(tz)
        offsets.add(local.utcoffset())
        assert not (local.hour >= 21 or local.hour < 8), (key, local)  # quiet hours kept
    assert len(offsets) == 2, "the plan should straddle the DST change"
    # The wall-clock steps keep their hour on both sides of the change.
    wall = {"evening-routine": (19, 0), "day1-morning": (8, 30), "book-next-session": (10, 0)}
    seen = {}
    for event in found:
        due, key = plan[str(event["UID"])]
        if key in wall:
            seen[key] = due.astimezone(tz)
            assert (seen[key].hour, seen[key].minute) == wall[key], (key, seen[key])
    assert set(seen) == set(wall)
    assert seen["evening-routine"].utcoffset() != seen["book-next-session"].utcoffset()


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.mark.parametrize(
    ("agent", "button", "href"),
    [
        (IPHONE, "Add to my calendar</a>", "webcal://"),
        (ANDROID, "Add to Google Calendar</a>", "https://calendar.google.com/calendar/render?cid="),
        (DESKTOP, "Add to my calendar</a>", "webcal://"),
    ],
)
def test_the_offer_is_worded_for_the_phone(world, agent, button, href):
    page = world.c1.get("/welcome", headers={"User-Agent": agent}).get_data(as_text=True)
    step = page[page.index('id="step-calendar"') :]
    step = step[: step.index("</li>")]
    link = re.search(r'<a class="button primary" href="([^"]+)"[^>]*>([^<]+</a>)', step)
    assert link.group(2) == button and link.group(1).startswith(href)
    assert ("<strong>Subscribe</strong>" in step) == (agent == IPHONE)
    assert ("calendar address" in step.lower()) == (agent == DESKTOP)
    # What the phone's calendar does with the feed's alarms: iPhone's keeps them unless
    # "Remove Alerts" is on; Google Calendar ignores a subscribed feed's alarms altogether.
    assert ("<strong>Remove Alerts</strong> off" in step) == (agent == IPHONE)
    assert ("alert at the right time" in step) == (agent != ANDROID)
    assert ("notification (0 minutes before)" in step) == (agent == ANDROID)
    assert ("remove the alerts, keep them" in step) == (agent == DESKTOP)  # an iPad says Mac


CLIENT_PAGES = ["/", "/welcome", "/checkin", "/reminders", "/settings", "/offline", "/start"]


def test_no_page_a_phone_may_keep_holds_the_name_or_the_calendar_address(world):
    # The service worker keeps only pages that are not no-store (sw.js CACHEABLE_PAGES, marked
    # by web.shell_page): none of them may hold who the client is or their capability URL.
    token = feed_path(world.c1).rsplit("/", 1)[1][: -len(".ics")]
    name = world.client1["name"]
    welcome = world.c1.get("/welcome", headers={"User-Agent": DESKTOP})
    assert name in welcome.get_data(as_text=True) and token in welcome.get_data(as_text=True)
    assert welcome.headers["Cache-Control"] == "no-store"
    kept = []
    for path in CLIENT_PAGES:
        r = world.c1.get(path, headers={"User-Agent": DESKTOP})
        assert r.status_code in (200, 302), path
        if "no-store" not in r.headers["Cache-Control"]:
            kept.append(path)
            assert name not in r.get_data(as_text=True), path
            assert token not in r.get_data(as_text=True), path
    assert kept == ["/checkin", "/offline"]


def test_the_practitioner_page_resets_it_and_logs_never_show_tokens(world):
    old = feed_path(world.c1)
    page = world.p1.get(f"/clinic/clients/{world.client1['id']}").get_data(as_text=True)
    assert "Reset calendar link" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = world.p1.http.post(
        f"/clinic/clients/{world.client1['id']}/calendar/reset", data={"csrf_token": csrf}
    )
    assert r.status_code == 302
    assert world.anon.get(old).status_code == 404
    assert redact_tokens(f"GET {old} HTTP/1.1") == "GET /calendar/[token] HTTP/1.1"


def test_fetches_are_limited_per_token_with_retry_after(world, monkeypatch):
    world.app.config["CALENDAR_RATE_PER_HOUR"] = 3
    clock = [1000.0]
    monkeypatch.setattr(throttle.time, "monotonic", lambda: clock[0])
    bare = world.app.test_client()
    mine, theirs = feed_path(world.c1), feed_path(world.c2)
    for _ in range(3):  # at 1000, 1100 and 1200 s
        parse(bare.get(mine))
        clock[0] += 100
    clock[0] = 1800.0
    r = bare.get(mine)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == str(1000 + 3600 - 1800)  # when the first fetch leaves
    assert "fetched too often" in r.get_data(as_text=True)
    parse(bare.get(theirs))  # another client's feed is not held
    assert bare.get("/calendar/" + "x" * 43 + ".ics").status_code == 404  # unknown: not counted
    clock[0] = 4600.0  # the first fetch is an hour old: one more is allowed, then none
    parse(bare.get(mine))
    assert bare.get(mine).status_code == 429
    # A new address (the client reset it) starts with its own allowance.
    new = world.c1.post("/api/calendar/reset").json["calendar_url"][len(PUBLIC) :]
    parse(bare.get(new))


def test_a_zero_allowance_refuses_every_fetch_with_429_not_500(world):
    # COMPANION_CALENDAR_RATE_PER_HOUR=0: an operator turning the feeds off.
    world.app.config["CALENDAR_RATE_PER_HOUR"] = 0
    r = world.app.test_client().get(feed_path(world.c1))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3600"
