"""The check-in API contract: what the phone reports and what it is told back."""

from datetime import datetime, timedelta
from typing import Literal

from pydantic import create_model

from companion.clinical import SYMPTOMS, WARNING_SIGNS, Severity
from companion.contract import Body, FlagSet, Id, Moment, Number, Query, Reply, Text, Uuid
from companion.errors import N_

# A phone's clock may run a little fast; more than this ahead of ours is a wrong clock.
CLOCK_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=90)


class CheckinInput(Body):
    id: Uuid(N_("Must be a UUID made on the phone, e.g. crypto.randomUUID()."))
    session_id: Number(1, 2**62, integer=True, required=False)
    taken_at: Moment(
        max_ahead=CLOCK_SKEW,
        ahead_message=N_("This is in the future; check the phone's clock."),
        max_age=MAX_AGE,
        age_message=N_("This is more than 90 days ago."),
    )
    redness: Number(0, 4, integer=True)
    swelling: Number(0, 4, integer=True)
    pain: Number(0, 10, integer=True)
    symptoms: FlagSet(SYMPTOMS)
    warning_signs: FlagSet(WARNING_SIGNS)
    note: Text(2000, required=False)


class Finding(Reply):
    rule: str
    severity: Severity
    reason: str


class Assessment(Reply):
    status: Literal["expected", "review", "urgent"]
    message: str
    flags: list[Finding]


class Photo(Reply):
    id: str
    url: str
    width: int
    height: int
    bytes: int


# The reported signs, one boolean per key of the clinical vocabulary.
Symptoms = create_model("Symptoms", __base__=Reply, **{k: (bool, ...) for k in SYMPTOMS})
WarningSigns = create_model(
    "WarningSigns", __base__=Reply, **{k: (bool, ...) for k in WARNING_SIGNS}
)


class Checkin(Reply):
    id: str
    client_id: int
    session_id: int | None
    taken_at: datetime
    received_at: datetime
    redness: int
    swelling: int
    pain: int
    symptoms: Symptoms
    warning_signs: WarningSigns
    note: str | None
    day: int | None
    assessment: Assessment
    photos: list[Photo]


class CheckinList(Reply):
    checkins: list[Checkin]


# A practitioner must say whose check-ins; a client's own are implied.
CLIENT_ID_NEEDED = "Give the client's id."


class CheckinFilter(Query):
    client_id: Id(CLIENT_ID_NEEDED, description="Required for a practitioner: whose check-ins")
