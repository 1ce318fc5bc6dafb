"""The admin contract: GET and PATCH /api/clinic, the logo upload, the protocol preview."""

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from companion.accounts.models import QUIET_HOURS_IN_PATCH, ZONE_IN_PATCH, QuietHours
from companion.admin.clinic import HEX_COLOR, MIN_CONTRAST, contrast_with_white, normalize_color
from companion.contract import (
    Body,
    Boolean,
    Choice,
    Clock,
    Moment,
    Name,
    Phone,
    Reply,
    Text,
    TimeZone,
    encodable,
    fail,
)
from companion.contract.core import Spec, field_type
from companion.i18n import LANGUAGES, Language
from companion.reminders.protocol import MAX_STEPS, StepInput

EMERGENCY_NUMBER = re.compile(r"^[0-9]{2,6}$")  # 000, 15, 112, 911, 999, 10111


def _color(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not HEX_COLOR.match(value.strip()):
        raise fail("Give a colour as #rrggbb, e.g. #0f766e.")
    color = normalize_color(value.strip())
    ratio = contrast_with_white(color)
    if ratio < MIN_CONTRAST:
        raise fail(
            f"Too light: white text on it has a contrast of {ratio:.1f}:1; WCAG AA needs"
            f" {MIN_CONTRAST}:1. Choose a darker colour."
        )
    return color


def _link(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.strip()) > 500 or not encodable(value):
        raise fail("Give a web address of at most 500 characters.")
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail(
            "Give a full web address starting with https:// or http://,"
            " e.g. https://example.com/book."
        )
    if any(c.isspace() for c in value):
        raise fail("A web address has no spaces.")
    return value


def _optional(check, schema: dict) -> Any:
    """An optional field whose null (or empty text) clears the stored value."""
    return field_type(str, Spec(lambda value, context: check(value), False, null=None), schema)


class ClinicInput(Body):
    """What an owner may change of the clinic's face (PATCH /api/clinic); null clears."""

    display_name: Name(required=False)
    phone: Phone()
    address: Text(300, required=False)
    booking_url: _optional(
        _link, {"type": "string", "maxLength": 500, "pattern": "^(https?://[^\\s]+)?$"}
    )
    accent_color: _optional(
        _color,
        {
            "type": "string",
            "pattern": "^(#([0-9a-fA-F]{6}|[0-9a-fA-F]{3}))?$",
            "description": "Hex colour with a contrast of at least 4.5:1 against white",
        },
    )
    opening_hours: Text(500, required=False)
    # Emergency services where the clinic is: the short number as dialled, digits only.
    emergency_number: Text(
        16,
        required=False,
        pattern=EMERGENCY_NUMBER,
        message="Give the short number for emergency services as dialled: 2 to 6 digits only,"
        " e.g. 112, 999 or 911.",
    )
    # Urgent alerts also go by email to every active owner, as well as by push.
    email_alerts: Boolean()
    # The clinic's own zone (create-practitioner's default is UTC): new clients' default, the
    # days of the clinic's exports and the audit log's times; existing clients keep theirs.
    timezone: ZONE_IN_PATCH
    # What a new client starts with (each client keeps and changes their own afterwards).
    quiet_hours: QUIET_HOURS_IN_PATCH
    language: Choice(LANGUAGES, required=False)


class ClinicProfile(Reply):
    id: int
    name: str
    display_name: str
    phone: str | None
    address: str | None
    booking_url: str | None
    accent_color: str | None
    opening_hours: str | None
    emergency_number: str | None
    timezone: str
    logo_url: str | None
    email_alerts: bool
    quiet_hours: QuietHours
    language: Language


class PreviewOptions(Body):
    """The sample session of a protocol preview (all optional)."""

    timezone: TimeZone()
    performed_at: Moment(required=False)
    quiet_start: Clock()
    quiet_end: Clock()
    # The client's language the titles are shown in (each step's own, else its English).
    language: Choice(LANGUAGES, required=False)


class ProtocolPreviewInput(PreviewOptions):
    """POST /api/protocol/preview: steps as PUT /api/protocol takes them, and a sample session."""

    steps: list[StepInput] = Field(min_length=1, max_length=MAX_STEPS)


class PlannedStep(Reply):
    key: str
    kind: str
    title: str
    when: str
    due_at: str
    local: str
    day: int
    moved_from: str | None
    status: str
    skip_reason: str | None


class ProtocolPreview(Reply):
    timezone: str
    performed_at: str
    quiet_start: str | None
    quiet_end: str | None
    language: Language
    plan: list[PlannedStep]
