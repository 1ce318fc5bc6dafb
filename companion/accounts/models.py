"""The accounts API contract: setup, sign-in, your settings, colleagues, clients, invites.

Past 300 lines on purpose: declarations only, one feature's request and reply shapes as one list.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from companion.accounts import passwords
from companion.clinical import SEVERITIES_DESC, Severity
from companion.contract import (
    Body,
    Boolean,
    Choice,
    ChoiceList,
    Clock,
    Custom,
    Email,
    Name,
    Nested,
    Phone,
    Query,
    Reply,
    Text,
    TimeZone,
    Truncated,
    Whole,
    encodable,
    fail,
)
from companion.converters import MAX_ID
from companion.errors import N_
from companion.i18n import LANGUAGES, Language
from companion.reminders.channels import CHANNELS
from companion.treatments.models import Session

ROLES = ("owner", "practitioner")
QUIET_HOURS_SHAPE = N_('Must be an object like {"start": "21:00", "end": "08:00"}.')
NO_NUL = "^[^\\u0000]*$"


def _password(value: Any) -> str:
    # Kept exactly as typed: stripping it would make it unusable at sign-in.
    if not isinstance(value, str) or not value:
        raise fail("This field is required.")
    reason = passwords.problem(value)
    if reason:
        raise fail(reason)
    return value


def _new_password(value: Any) -> str:
    # Only its shape here: the policy, which needs the person's email and name, runs later.
    if not isinstance(value, str) or not 1 <= len(value) <= passwords.MAX_LENGTH:
        raise fail(f"Give your new password ({passwords.MIN_LENGTH} to 200 characters).")
    return value


def _attempt(name: str, limit: int):
    """Any text of 1 to `limit` characters is a sign-in attempt; nothing is stripped."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= limit or not encodable(value):
            raise fail(f"Give your {name} (1 to {limit} characters).")
        return value

    return check


def _severities(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(s in SEVERITIES_DESC for s in value):
        raise fail("A list of: " + ", ".join(SEVERITIES_DESC) + ".")
    return value


def Password() -> Any:  # noqa: N802
    schema = {
        "type": "string",
        "minLength": passwords.MIN_LENGTH,
        "maxLength": passwords.MAX_LENGTH,
        "pattern": NO_NUL,
    }
    return Custom(_password, schema, base=str)


def Attempt(name: str, limit: int) -> Any:  # noqa: N802
    schema = {"type": "string", "minLength": 1, "maxLength": limit, "pattern": NO_NUL}
    # A missing or null value is a bad attempt too, with the same message.
    return Custom(_attempt(name, limit), schema, base=str, required=True, absent_checked=True)


# Requests ---------------------------------------------------------------------------------------


class QuietHoursInput(Body):
    start: Clock(required=True)
    end: Clock(required=True)


# A zone and quiet hours as a PATCH changes them: a client's own (PATCH /api/me, a client's
# record) and what a clinic's new clients start with (PATCH /api/clinic). null is refused (it
# could mean "none" or "the default"): no quiet hours are the same start and end.
ZONE_IN_PATCH = TimeZone(null_in_patch=N_("Give an IANA time zone such as Europe/London."))
QUIET_HOURS_IN_PATCH = Nested(
    QuietHoursInput,
    QUIET_HOURS_SHAPE,
    null_in_patch=N_(
        'Give quiet hours like {"start": "21:00", "end": "08:00"}; for none, give the same'
        " start and end."
    ),
)


class PractitionerInput(Body):
    email: Email()
    name: Name()
    password: Password()


class ColleagueInput(PractitionerInput):
    """A colleague an owner adds: a practitioner unless made an owner."""

    role: Choice(ROLES, required=False)


class RoleInput(Body):
    role: Choice(ROLES)


class PasswordChangeInput(Body):
    current_password: Attempt("current password", 200)
    # The policy's reason comes back in fields.password, as wherever a password is set.
    new_password: Custom(
        _new_password,
        {
            "type": "string",
            "minLength": passwords.MIN_LENGTH,
            "maxLength": passwords.MAX_LENGTH,
            "pattern": NO_NUL,
        },
        base=str,
    )


class SetupInput(PractitionerInput):
    clinic_name: Name()
    clinic_phone: Phone()
    timezone: TimeZone(required=True)


class LoginInput(Body):
    email: Attempt("email", 254)
    password: Attempt("password", 200)
    # Where two-factor sign-in is on: the authenticator app's code, or a recovery code.
    code: Text(40, required=False)


class ClientSettingsInput(Body):
    """What a client may change about themselves (PATCH /api/me)."""

    timezone: ZONE_IN_PATCH
    quiet_hours: QUIET_HOURS_IN_PATCH
    discreet: Boolean()
    # null: the default (push where a live device exists, email where an address exists).
    channels: ChoiceList(
        CHANNELS, message=N_('A list of "push" and "email", or null for the default.')
    )
    # The language of the client's app, reminders and emails.
    language: Choice(LANGUAGES, required=False)


class ClientInput(ClientSettingsInput):
    name: Name()
    email: Email(required=False)
    phone: Phone()


class PractitionerSettingsInput(Body):
    """What a practitioner may change about themselves (PATCH /api/me)."""

    name: Name()
    alert_severities: Custom(
        _severities,
        {"type": "array", "items": {"enum": list(SEVERITIES_DESC)}, "uniqueItems": False},
        required=False,
        base=list[str],
    )


# Responses --------------------------------------------------------------------------------------


class Clinic(Reply):
    id: int
    name: str
    phone: str | None
    timezone: str


class Practitioner(Reply):
    id: int
    clinic_id: int
    email: str
    name: str
    active: bool
    role: Literal["owner", "practitioner"]
    alert_severities: list[Severity]
    two_factor: bool


class QuietHours(Reply):
    start: str
    end: str


class Client(Reply):
    id: int
    clinic_id: int
    name: str
    email: str | None
    phone: str | None
    timezone: str
    quiet_hours: QuietHours
    discreet: bool
    channels: list[Literal["push", "email"]] | None
    language: Language
    created_at: datetime


class ClientListed(Client):
    last_session_at: datetime | None


class ClientWithSessions(Client):
    sessions: list[Session]


class Me(Reply):
    kind: Literal["practitioner", "client"]
    clinic: Clinic
    # Exactly one of these, by kind.
    practitioner: Practitioner = Field(default=None)
    client: Client = Field(default=None)


class PractitionerList(Reply):
    practitioners: list[Practitioner]


class ClientList(Reply):
    clients: list[ClientListed]


class Invite(Reply):
    token: str
    url: str
    expires_at: datetime
    qr_svg: str
    # Phones still signed in as this client (after any sign_out_devices asked for).
    devices_signed_in: int


class ClientFilter(Query):
    q: Truncated(100, description="Part of a name, email or phone")
    limit: Whole(1, 500, {}, default=100, description="1 to 500")
    offset: Whole(0, MAX_ID, {"minimum": 0, "maximum": MAX_ID}, default=0)


# Two-factor sign-in and clients' phones ---------------------------------------------------------


class CodeInput(Body):
    code: Text(40)


class PasswordInput(Body):
    password: Attempt("password", 200)


class TwoFactorRequiredInput(Body):
    required: Boolean(required=True)


class InviteInput(Body):
    """Optional: sign the client's phones that are signed in now out, as the invite is made."""

    sign_out_devices: Boolean()


class TwoFactorStatus(Reply):
    enabled: bool
    setup_pending: bool
    required_by_clinic: bool
    recovery_codes_left: int


class TwoFactorSetup(Reply):
    secret: str
    otpauth_url: str
    qr_svg: str


class RecoveryCodes(Reply):
    recovery_codes: list[str]


class ClinicTwoFactor(Reply):
    required: bool


class Device(Reply):
    id: str
    label: str
    first_seen_at: datetime
    last_seen_at: datetime


class DeviceList(Reply):
    devices: list[Device]


class SignedOut(Reply):
    signed_out: int
