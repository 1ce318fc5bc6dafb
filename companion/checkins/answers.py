"""What an assessment tells the client, in their words and language (triage.py decides it).

Whole sentences per case, so each translates as a sentence (Spanish nouns have genders that
English ones do not). No scores out of 4, no hours, no sources: those are in the flags and
docs/clinical.md for the practitioner. Outside a request (the tests of triage) the words
are English; checkins/store.py asks for the client's language.
"""

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from companion.i18n import gettext as _
from companion.i18n import lazy_gettext as _l

# From this hour in the client's zone a review answer says the clinic looks "today, or first
# thing tomorrow if it has closed": issue 15's "today" stays true of a clinic still open, and a
# client at 10 pm is not left waiting for a call "today". checkin.js makes the same choice when
# it shows the answer (the page passes it this hour).
LATE_HOUR = 18
ReviewDay = Literal["today", "tomorrow"] | None

# How long until the skin settles, in whole days, never hours.
_SETTLE_WORDS = (
    (1, _l("over the next day")),
    (2, _l("over the next day or two")),
    (3, _l("over the next two to three days")),
    (5, _l("over the next four to five days")),
    (7, _l("over the next week")),
)

# What each review rule means in the client's words, for one message naming every reason.
REVIEW_WORDS = {
    "R1": _l("redness higher than expected"),
    "R2": _l("swelling higher than expected or rising"),
    "R3": _l("redness worse than at your last check-in"),
    "R4": _l("pain that is strong or rising"),
    "R5": _l("bruising that has lasted past a week"),
}


def _when(day: int) -> str:
    return _("on the day of your session") if day == 0 else _("on day %(day)s", day=day)


def settle_words(hours_left: float) -> str:
    days = max(1, -int(-hours_left // 24))  # whole days, rounded up
    words = next((w for most, w in _SETTLE_WORDS if days <= most), None)
    return str(words) if words else _("over the next week or so")


def reassurance(
    scores: tuple[str, ...],
    *,
    day: int,
    strong: bool,
    hours_left: float,
    deeper: bool,
    symptoms: dict,
    early: bool,
    bruising_young: bool,
    noted: bool,
) -> str:
    """An expected answer: why what the client sees is normal for this day and depth.

    `scores`: which of redness and swelling are above 0; `hours_left`: until the usual
    course settles (0 or less: past it); `early`: within the first 24 hours.
    """
    when = _when(day)
    after = " " + _("after a deeper treatment") if deeper else ""
    if not scores:
        text = [_("Your skin looks calm %(when)s, which is a good sign.", when=when)]
    elif strong:
        # No rule fires this early, but "raw" or "very swollen" is not what to call expected.
        strong_words = {
            ("redness",): _(
                "Redness this strong %(when)s can happen, but it is at the strong end. If it"
                " spreads, feels hot or gets worse, contact your clinic now.",
                when=when,
            ),
            ("swelling",): _(
                "Swelling this strong %(when)s can happen, but it is at the strong end. If it"
                " spreads, feels hot or gets worse, contact your clinic now.",
                when=when,
            ),
            ("redness", "swelling"): _(
                "Redness and swelling this strong %(when)s can happen, but they are at the strong"
                " end. If they spread, feel hot or get worse, contact your clinic now.",
                when=when,
            ),
        }
        text = [strong_words[scores]]
    elif hours_left > 0:
        settle = settle_words(hours_left)
        normal = {
            ("redness",): _(
                "Redness like yours is normal %(when)s%(after)s.", when=when, after=after
            ),
            ("swelling",): _(
                "Swelling like yours is normal %(when)s%(after)s.", when=when, after=after
            ),
            ("redness", "swelling"): _(
                "Redness and swelling like yours are normal %(when)s%(after)s.",
                when=when,
                after=after,
            ),
        }
        fades = (
            _("They usually fade %(settle)s.", settle=settle)
            if len(scores) == 2
            else _("It usually fades %(settle)s.", settle=settle)
        )
        text = [normal[scores], fades]
    else:
        still = {
            ("redness",): _(
                "Redness like yours is still part of normal healing%(after)s; it should keep"
                " fading.",
                after=after,
            ),
            ("swelling",): _(
                "Swelling like yours is still part of normal healing%(after)s; it should keep"
                " fading.",
                after=after,
            ),
            ("redness", "swelling"): _(
                "Redness and swelling like yours are still part of normal healing%(after)s; they"
                " should keep fading.",
                after=after,
            ),
        }
        text = [still[scores]]
    if symptoms.get("oozing") and early:
        text.append(_("Tiny spots of bleeding on the day of the session are normal."))
    if symptoms.get("peeling") or symptoms.get("itching"):
        text.append(_("Dryness, peeling and itching are part of normal healing in the first week."))
    if symptoms.get("bruising") and bruising_young:
        text.append(_("Bruising can take up to a week to fade."))
    if noted:
        text.append(
            _("Your practitioner will take a look at what you reported; no need to act now.")
        )
    return " ".join(text)


def review_day(received: datetime, now: datetime, timezone: str) -> ReviewDay:
    """When the clinic looks at a review answer received at `received`, as said at `now`:
    "today", "tomorrow" (received from LATE_HOUR on, read that evening), or None once that
    day has passed. Days and hours are the client's (`timezone`)."""
    zone = ZoneInfo(timezone)
    got, at = received.astimezone(zone), now.astimezone(zone)
    promised = got.date() + timedelta(days=1 if got.hour >= LATE_HOUR else 0)
    if at.date() == promised:
        return "today"
    return "tomorrow" if at.date() < promised else None


def review_message(rules: list[str], day: int, phone: str | None, when: ReviewDay = "today") -> str:
    """A review answer: the reasons in the client's words, and when the clinic looks (`when`,
    from review_day; None: the day it was promised for has passed)."""
    words = [str(REVIEW_WORDS[r]) for r in rules if r in REVIEW_WORDS]
    lead = ""
    if words:
        listed = words[0]
        if len(words) > 1:
            listed = _("%(first)s and %(last)s", first=", ".join(words[:-1]), last=words[-1])
        lead = _(
            "What you reported %(when)s needs a look: %(listed)s.", when=_when(day), listed=listed
        )
        lead += " "
    if when == "today":
        look = _("Your clinic will review this today and contact you if needed.")
    elif when == "tomorrow":
        look = _(
            "Your clinic will review this today, or first thing tomorrow if it has closed, and contact you if needed."
        )
    else:
        look = _("Your clinic has your answers and will contact you if needed.")
    if phone:
        rest = _(
            "Keep following your aftercare; if you get a fever, pus or spreading redness, contact"
            " your clinic now on %(phone)s.",
            phone=phone,
        )
    else:
        rest = _(
            "Keep following your aftercare; if you get a fever, pus or spreading redness, contact"
            " your clinic now."
        )
    return f"{lead}{look} {rest}"


def urgent_message(phone: str | None) -> str:
    first = (
        _("Contact your clinic now on %(phone)s.", phone=phone)
        if phone
        else _("Contact your clinic now.")
    )
    return (
        first
        + " "
        + _(
            "If you have trouble breathing, swelling around the eye or a high fever, seek emergency"
            " care."
        )
    )


def reviewed_message(clinic: str, day: int) -> str:
    """A review or urgent answer whose flags the clinic has since resolved (it looked, it
    called): said on the home page instead of the answer's own words."""
    return _(
        "%(clinic)s looked at what you reported on day %(day)s. Keep following your aftercare."
        " If anything gets worse, check in again or contact them.",
        clinic=clinic,
        day=day,
    )


def superseded_message(day: int, later_day: int) -> str:
    if day == later_day:  # "from day 2 arrived after your answer from day 2" reads as a riddle
        return _(
            "Saved. You had already sent a newer answer for day %(day)s, so your clinic goes by"
            " that one.",
            day=day,
        )
    return _(
        "Saved. This answer from day %(day)s arrived after your answer from day %(later)s, so"
        " your clinic goes by the newer one.",
        day=day,
        later=later_day,
    )
