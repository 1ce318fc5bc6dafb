"""The clinical vocabulary, defined once: severities, flag states, symptoms, warning signs, rules.

Ids and wording follow docs/clinical.md (the red-flag rules U1-U5, R1-R5, N1-N3).
Triage, the API contract, the pages and the exports import these; none spells them again.
"""

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from companion.i18n import lazy_gettext as _l

# Lowest first: a severity's rank is its index.
SEVERITIES = ("info", "review", "urgent")
Severity = Literal["info", "review", "urgent"]
# Most urgent first, as lists and filters show them.
SEVERITIES_DESC = tuple(reversed(SEVERITIES))

FLAG_STATUSES = ("open", "acknowledged", "resolved")
FlagStatus = Literal["open", "acknowledged", "resolved"]
ACTIVE_STATUSES = ("open", "acknowledged")

SYMPTOMS = ("bruising", "peeling", "itching", "oozing", "bumps", "patches")
WARNING_SIGNS = ("spreading_redness", "fever", "pus", "eye_or_breathing", "blisters")

RULES: dict[str, dict] = {
    "U1": {"severity": "urgent", "title": "Spreading redness, red streaks or hot skin"},
    "U2": {"severity": "urgent", "title": "Fever or chills"},
    "U3": {"severity": "urgent", "title": "Pus, yellow crusts or discharge"},
    "U4": {"severity": "urgent", "title": "Eye swelling, vision change or trouble breathing"},
    "U5": {"severity": "urgent", "title": "Blisters (suspected cold sore)"},
    "R1": {"severity": "review", "title": "Redness above the expected course"},
    "R2": {"severity": "review", "title": "Swelling rising or above the expected course"},
    "R3": {"severity": "review", "title": "Worse than the last check-in"},
    "R4": {"severity": "review", "title": "Severe or rising pain"},
    "R5": {"severity": "review", "title": "Bruising after day 7"},
    "N1": {"severity": "info", "title": "New bumps or spots from day 3"},
    "N2": {"severity": "info", "title": "Dark or light patches"},
    "N3": {"severity": "info", "title": "Two check-ins in a row missed"},
}


def severity_rank(severity: str) -> int:
    """Return the rank of a severity: info 0, review 1, urgent 2."""
    return SEVERITIES.index(severity)


def day_number(performed_at: datetime, at: datetime, timezone: str) -> int:
    """Return "Day N": the client's local calendar day since the session, the session's day being 0.

    The one definition of a day after the session, used by every page, export, chart, rule
    text and the client app. It matches the protocol's wall-clock steps ("day 2, 18:00" fires
    on Day 2). A moment before the session (a phone clock running behind) counts as Day 0.
    The rules' thresholds stay in hours, as the clinical reference gives them ("48 h or later").
    """
    zone = ZoneInfo(timezone)
    days = (at.astimezone(zone).date() - performed_at.astimezone(zone).date()).days
    return max(0, days)


# The scales and signs in the client's words (docs/clinical.md, "Symptom scales"): the
# check-in page shows these; the words are the reference's, for people without training.
# Lazy: each is translated into the language of the page that shows it (companion/i18n.py).
REDNESS_WORDS = (
    _l("None, normal skin colour"),
    _l("Slight pink"),
    _l("Clearly red, like mild sunburn"),
    _l("Deep red"),
    _l("Very red or purple, raw"),
)
SWELLING_WORDS = (
    _l("None"),
    _l("Barely noticeable"),
    _l("Visible puffiness"),
    _l("Clearly swollen, raised"),
    _l("Very swollen, spreading beyond the treated area, or eyes puffy or closing"),
)
SYMPTOM_WORDS = {
    "bruising": _l("Bruising"),
    "peeling": _l("Dryness, flaking or peeling"),
    "itching": _l("Itching"),
    "oozing": _l("Pinpoint bleeding or oozing"),
    "bumps": _l("Bumps or spots"),
    "patches": _l("Dark or light patches"),
}
WARNING_SIGN_WORDS = {  # U1-U5, in that order
    "spreading_redness": _l("Redness spreading, red streaks, or skin hot and getting worse"),
    "fever": _l("Fever of 38 °C / 100.4 °F or more, or chills"),
    "pus": _l("Pus, yellow crusts or discharge"),
    "eye_or_breathing": _l("Swelling around the eye, vision change, or trouble breathing"),
    "blisters": _l("Groups of blisters, often tingling"),
}

# The treated areas the session form offers (a practitioner may type others: kept as typed).
# A client reads these in their language; the practitioner's pages and the API keep the ids.
AREA_WORDS = {
    "face": _l("face"),
    "forehead": _l("forehead"),
    "cheeks": _l("cheeks"),
    "under eyes": _l("under eyes"),
    "neck": _l("neck"),
    "décolletage": _l("décolletage"),
    "scalp": _l("scalp"),
    "scars": _l("scars"),
    "body": _l("body"),
}
AREAS = tuple(AREA_WORDS)


def area_words(areas: list[str]) -> list[str]:
    """A session's areas in the reader's language; one typed outside the list, or one in the
    reader's language already (English "Neck"), stays as typed."""
    shown = []
    for area in areas:
        key = area.strip().lower()
        word = str(AREA_WORDS[key]) if key in AREA_WORDS else key
        shown.append(area if word == key else word)
    return shown
