"""Dates and phone numbers in the client's words (companion/humane.py)."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)

from companion.humane import babel_locale, human_when
from companion.reminders.words import day_and_time

LANGS = ("en", "es", None)

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)  # a Sunday morning in London


@pytest.mark.parametrize(
    ("moment", "tz", "locale", "said"),
    [
        ("2026-11-29T18:00:00+00:00", "Europe/London", "en_GB", "Today 18:00"),
        ("2026-11-30T08:30:00+00:00", "Europe/London", "en_GB", "Tomorrow 08:30"),
        ("2026-11-28T18:00:00+00:00", "Europe/London", "en_GB", "Yesterday 18:00"),
        ("2026-12-03T18:00:00+00:00", "Europe/London", "en_GB", "Thursday 18:00"),
        ("2026-12-26T10:00:00+00:00", "Europe/London", "en_GB", "Sat 26 Dec 10:00"),
        # The client's zone decides the day: 23:30 UTC is already tomorrow in Madrid.
        ("2026-11-29T23:30:00+00:00", "Europe/Madrid", "en_GB", "Tomorrow 00:30"),
        ("2026-11-30T08:30:00+00:00", "Europe/Madrid", "es", "Mañana 9:30"),
        ("2026-12-03T18:00:00+00:00", "Europe/Madrid", "es", "Jueves 19:00"),
        # Across the DST change, the wall clock of the day itself.
        ("2026-03-29T17:00:00+00:00", "Europe/London", "en_GB", "Sun 29 Mar 18:00"),
    ],
)
def test_human_when(moment, tz, locale, said):
    assert human_when(moment, tz, NOW, locale) == said


@pytest.mark.parametrize(
    ("moment", "locale", "said"),
    [
        # Inside a sentence: "This link opens this check-in only, until Today 20:00." read oddly.
        ("2026-11-29T20:00:00+00:00", "en_GB", "today 20:00"),
        ("2026-11-29T20:00:00+00:00", "es", "hoy 21:00"),
        ("2026-12-03T18:00:00+00:00", "en_GB", "Thursday 18:00"),  # English keeps its capital
        ("2026-12-03T18:00:00+00:00", "es", "jueves 19:00"),
    ],
)
def test_human_when_inside_a_sentence(moment, locale, said):
    tz = "Europe/Madrid" if locale == "es" else "Europe/London"
    assert human_when(moment, tz, NOW, locale, starts=False) == said


def test_babel_locale_follows_the_clients_language():
    assert babel_locale("es") == "es"
    assert babel_locale("en") == babel_locale(None) == babel_locale("xx") == "en_GB"


def test_reminder_times_read_as_words_on_the_pages(world):
    home = world.c1.get("/").get_data(as_text=True)
    said = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', home)
    assert said and all(re.fullmatch(r"(Today|Tomorrow|[A-Z][a-z]+day) \d\d:\d\d", s) for s in said)
    # The world's session was 2 hours ago: yesterday where the client is, between midnight
    # and 02:00 there (the suite runs at any hour).
    zone = ZoneInfo(world.client1["timezone"])
    performed = datetime.fromisoformat(world.session1["performed_at"]).astimezone(zone)
    days = (datetime.now(zone).date() - performed.date()).days
    assert "Day 0 after your session" not in home and "Day 1 after your session" not in home
    assert {0: "Your session was today", 1: "Your session was yesterday"}[days] in home


def test_email_dates_reuse_one_babel_locale_per_language(monkeypatch):
    """reminders/words.py writes an email's dates with humane's cached Locale, as the pages do:
    Babel parses no locale name per date (the words are the same)."""
    said = {
        lang: day_and_time("2026-12-03T18:00:00+00:00", "Europe/Madrid", lang) for lang in LANGS
    }
    real = Locale.parse.__func__
    parsed = []

    def parse(cls, identifier, *args, **kwargs):
        if not isinstance(identifier, Locale):
            parsed.append(identifier)
        return real(cls, identifier, *args, **kwargs)

    monkeypatch.setattr(Locale, "parse", classmethod(parse))
    for language in LANGS:
        assert (
            day_and_time("2026-12-03T18:00:00+00:00", "Europe/Madrid", language) == said[language]
        )
    assert parsed == []
    assert said["es"] == {"weekday": "jueves", "date": "3 de diciembre", "time": "19:00"}
    assert (
        said["en"] == said[None] == {"weekday": "Thursday", "date": "3 December", "time": "19:00"}
    )
