"""Dates as a client reads them: "Today 18:00", "Tomorrow 08:30", "Thursday 18:00".

One place, used by every client page as the `when` Jinja filter. Formatting is Babel's (CLDR
data for the locale: words for today and tomorrow, weekday names, 24-hour or 12-hour clock).
"""

from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time
from flask import Flask

from companion.db import parse_iso, utcnow

# A language on the client record maps to the locale its dates are written in. English
# clinics here write 24-hour times ("18:00"), as British English does.
LOCALES = {"en": "en_GB", "es": "es"}
DEFAULT_LOCALE = "en_GB"


def babel_locale(language: str | None) -> str:
    """Return the Babel locale for a client's language ("en" when unknown)."""
    return LOCALES.get(language or "", DEFAULT_LOCALE)


@cache
def cached_locale(name: str) -> Locale:
    """One Babel Locale per name: Babel's format_*() would parse the name on every call."""
    return Locale.parse(name)


def _relative_day(days: int, locale: Locale) -> str | None:
    # CLDR's words for yesterday / today / tomorrow ("hoy", "mañana"); Babel has no public
    # function for them, only this data.
    words = locale._data["date_fields"]["day"]["relative"]
    return words.get(days) if days in (-1, 0, 1) else None


def human_when(
    moment: datetime | str, tz: str, now: datetime, locale: str = DEFAULT_LOCALE, *, starts=True
) -> str:
    """Say when `moment` is on the client's wall clock: "Today 18:00", "Thursday 08:30".

    starts=False for inside a sentence: the day as the language writes it there ("until
    today 20:00", "caduca: hoy 15:27", "until Thursday 08:30")."""
    locale = cached_locale(locale)
    zone = ZoneInfo(tz)
    local = (parse_iso(moment) if isinstance(moment, str) else moment).astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    time = format_time(local, "short", locale=locale)
    word = _relative_day(days, locale)
    if word:
        day = word[:1].upper() + word[1:] if starts else word
    elif -7 < days < 7:
        day = format_date(local, "EEEE", locale=locale)
        day = day[:1].upper() + day[1:] if starts else day
    else:
        day = format_skeleton("MMMEd", local, locale=locale)
    return f"{day} {time}"


def human_day(day: date, locale: str = DEFAULT_LOCALE) -> str:
    """A calendar date in words: "Thursday 3 December"."""
    return format_skeleton("MMMMEEEEd", day, locale=cached_locale(locale))


def init_app(app: Flask) -> None:
    def when(moment, client: dict, now: datetime | None = None) -> str:
        locale = babel_locale(client.get("language"))
        return human_when(moment, client["timezone"], now or utcnow(), locale)

    app.add_template_filter(when, "when")
