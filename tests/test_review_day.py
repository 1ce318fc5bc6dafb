"""A review answer says when the clinic looks: "today" by day, "today, or first thing tomorrow
if it has closed" late at night, in the client's zone (answers.review_day, LATE_HOUR), in English
and Spanish; a home page read later says it again for then, not for the moment it came in."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import checkin_body
from test_isolation import template_world_fixture, world_fixture  # noqa: F401

import companion.checkins.api
import companion.checkins.pages
from companion.checkins import answers
from companion.i18n import in_language

LONDON, NEW_YORK, TOKYO = "Europe/London", "America/New_York", "Asia/Tokyo"


def at(zone: str, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize(
    ("zone", "received", "read", "said"),
    [
        # By day: today, until the hour before LATE_HOUR ends.
        (NEW_YORK, "2026-11-30 09:00", "2026-11-30 09:00", "today"),
        (NEW_YORK, "2026-11-30 17:59:59", "2026-11-30 17:59:59", "today"),
        # From 18:00 local (23:00 UTC in New York): tomorrow, all evening and up to midnight.
        (NEW_YORK, "2026-11-30 18:00", "2026-11-30 18:00", "tomorrow"),
        (NEW_YORK, "2026-11-30 22:00", "2026-11-30 23:59:59", "tomorrow"),
        # ...which is "today" once that day has come, and nothing once it has gone.
        (NEW_YORK, "2026-11-30 22:00", "2026-12-01 08:00", "today"),
        (NEW_YORK, "2026-11-30 22:00", "2026-12-02 08:00", None),
        (NEW_YORK, "2026-11-30 10:00", "2026-12-01 10:00", None),
        # Just after midnight it is today (the clinic opens later this day).
        (TOKYO, "2026-11-30 00:30", "2026-11-30 00:30", "today"),
        # Summer time: 18:30 in London is 17:30 UTC, already late there.
        (LONDON, "2026-07-01 18:30", "2026-07-01 18:30", "tomorrow"),
        (LONDON, "2026-07-01 17:59", "2026-07-01 17:59", "today"),
    ],
)
def test_review_day_at_the_boundaries(zone, received, read, said):
    assert answers.review_day(at(zone, received), at(zone, read), zone) == said


def test_the_review_message_says_the_day_in_english_and_spanish(app):
    cases = {
        "today": ("will review this today", "revisará hoy"),
        "tomorrow": ("today, or first thing tomorrow if it has closed", "mañana a primera hora"),
        None: ("has your answers", "ya tiene tus respuestas"),
    }
    for when, (english, spanish) in cases.items():
        with app.test_request_context(), in_language("en"):
            text = answers.review_message(["R4"], 1, "+44 20 7946 0000", when)
        assert english in text and "pain that is strong or rising" in text, text
        assert text.endswith("contact your clinic now on +44 20 7946 0000."), text
        with app.test_request_context(), in_language("es"):
            text = answers.review_message(["R4"], 1, None, when)
        assert spanish in text, text
        assert "today" not in text and "tomorrow" not in text


class Clock:
    """The moment the API and the pages take as now (the rest of the world is real time)."""

    def __init__(self, monkeypatch, now: datetime):
        self.now = now
        for module in (companion.checkins.api, companion.checkins.pages):
            monkeypatch.setattr(module, "utcnow", lambda: self.now)


def next_local(hour: int, zone: str) -> datetime:
    """The first `hour`:00 in `zone` over an hour after the real now: the world's check-ins
    were taken at the real now, and a review sent (5 minutes before the hour) earlier than
    them is judged as an older answer, not a review (a CI run at 11:58 London time failed so)."""
    local = datetime.now(ZoneInfo(zone)).replace(minute=0, second=0, microsecond=0)
    local = local.replace(hour=hour)
    if local <= datetime.now(ZoneInfo(zone)) + timedelta(hours=1):
        local += timedelta(days=1)
    return local.astimezone(UTC)


def send_review(world, now: datetime) -> dict:
    body = checkin_body(
        taken_at=(now - timedelta(minutes=5)).isoformat(), redness=1, swelling=1, pain=7
    )
    r = world.c1.post("/api/checkins", body)
    assert r.status_code == 201, r.json
    assert r.json["assessment"]["status"] == "review", r.json
    return r.json["assessment"]


def test_a_review_sent_at_10_pm_says_tomorrow_and_the_home_page_keeps_it_true(world, monkeypatch):
    assert world.client1["timezone"] == LONDON
    late = next_local(22, LONDON)
    clock = Clock(monkeypatch, late)
    assessment = send_review(world, late)
    # Issue 15's "today" stays, with the truth for a clinic that has closed by now.
    late_words = "will review this today, or first thing tomorrow if it has closed"
    assert late_words in assessment["message"], assessment["message"]
    home = world.c1.get("/").get_data(as_text=True)
    assert "Your clinic will look at this today or first thing tomorrow" in home
    assert late_words in home
    # The next morning the same answer is for today; two days on, the day has passed.
    clock.now = late + timedelta(hours=10)
    home = world.c1.get("/").get_data(as_text=True)
    assert "Your clinic will look at this today" in home and "tomorrow" not in home
    clock.now = late + timedelta(hours=34)
    home = world.c1.get("/").get_data(as_text=True)
    assert "Your clinic has your answers" in home
    assert "will review this today" not in home and "tomorrow" not in home


def test_a_review_by_day_says_today_in_spanish_and_at_night_manana(world, monkeypatch):
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    noon = next_local(12, LONDON)
    clock = Clock(monkeypatch, noon)
    assert "revisará hoy" in send_review(world, noon)["message"]
    clock.now = noon + timedelta(hours=10)  # 22:00
    assessment = send_review(world, clock.now)
    assert "revisará hoy o, si ya ha cerrado, mañana a primera hora" in assessment["message"], (
        assessment["message"]
    )
    assert "Tu clínica lo revisará hoy o mañana a primera hora" in world.c1.get("/").get_data(
        as_text=True
    )


def test_the_checkin_page_carries_both_words_and_the_hour_for_its_script(world):
    page = world.c1.get("/checkin").get_data(as_text=True)
    review = page[page.index('id="answer-review"') :]
    assert f'data-zone="{LONDON}"' in review and f'data-late-hour="{answers.LATE_HOUR}"' in review
    assert 'data-tomorrow="Your clinic will look at this today or first thing tomorrow"' in review
    assert "will check it today, or first thing tomorrow if it has closed, and contact" in review


def test_once_the_clinic_has_resolved_it_the_home_page_says_so_not_call_now(world):
    """An urgent answer's "Contact your clinic now" and call button stay on the client's home
    only while its flags wait: once the clinic has resolved every flag of the session (it
    called), the home page says the clinic has reviewed it; a new urgent answer shows again."""
    body = checkin_body(redness=2, swelling=1, pain=3, warning_signs={"pus": True})
    assert world.c1.post("/api/checkins", body).json["assessment"]["status"] == "urgent"
    home = world.c1.get("/").get_data(as_text=True)
    assert "Contact your clinic now" in home and "assessment-urgent" in home
    session_id = world.session1["id"]
    assert world.p1.post(f"/api/queue/{session_id}/acknowledge", {}).status_code == 200
    home = world.c1.get("/").get_data(as_text=True)
    assert "Contact your clinic now" in home  # claimed, not yet resolved: still urgent
    r = world.p1.post(f"/api/queue/{session_id}/resolve", {"note": "Called her; seen tomorrow."})
    assert r.status_code == 200, r.json
    home = world.c1.get("/").get_data(as_text=True)
    assert "Contact your clinic now" not in home and "assessment-urgent" not in home
    assert "Your clinic has reviewed this" in home
    assert "looked at what you reported on day 0" in home
    assert "Called her" not in home  # the practitioner's note is not the client's to read
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    assert "Tu clínica ya lo ha revisado" in world.c1.get("/").get_data(as_text=True)
    # A new urgent answer opens a new flag: the home page says to call again.
    again = checkin_body(redness=2, swelling=1, pain=3, warning_signs={"fever": True})
    assert world.c1.post("/api/checkins", again).json["assessment"]["status"] == "urgent"
    home = world.c1.get("/").get_data(as_text=True)
    assert "assessment-urgent" in home and "Tu clínica ya lo ha revisado" not in home
