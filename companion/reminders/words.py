"""Words in a client's language where there is no request: push, email and calendar texts.

The dispatcher sends outside any request (and often outside an app context), so these read
the gettext catalogs directly with Babel rather than through flask-babel's request locale.
Same catalogs (companion/translations), same extraction: `words(language).gettext("...")`
is marked like `_("...")` (scripts/catalogs). Practitioners' alerts stay English.
"""

from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time
from babel.support import NullTranslations, Translations

from companion.humane import babel_locale, cached_locale
from companion.i18n import DEFAULT_LANGUAGE, LANGUAGES

FOLDER = Path(__file__).resolve().parent.parent / "translations"


@cache
def words(language: str | None) -> NullTranslations:
    """The catalog of a client's language (English, the source text, when unknown)."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    return Translations.load(str(FOLDER), [language], domain="messages")


def day_and_time(at: datetime | str, timezone: str, language: str | None) -> dict[str, str]:
    """A moment on the client's wall clock in their language's words, absolute (an email is
    read later): weekday "Sunday", date "29 November", time "18:00" ("domingo", "29 de
    noviembre", "18:00"); the sentence around them is the catalog's."""
    local = (datetime.fromisoformat(at) if isinstance(at, str) else at).astimezone(
        ZoneInfo(timezone)
    )
    locale = cached_locale(babel_locale(language))
    return {
        "weekday": format_date(local, "EEEE", locale=locale),
        "date": format_skeleton("MMMMd", local, locale=locale),
        "time": format_time(local, "short", locale=locale),
    }


def discreet_body(language: str | None) -> str:
    """What a discreet client's notifications, emails and calendar say (docs/clinical.md)."""
    return words(language).gettext("New aftercare reminder")
