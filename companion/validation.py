"""Validate JSON and form input field by field, collecting a clear message per field."""

import math
import re
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from companion.errors import Invalid

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE = re.compile(r"^\+?[0-9 ().-]{5,30}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_ZONES: set[str] = set()


def valid_timezone(name: str) -> bool:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return name in _ZONES


def encodable(text: str) -> bool:
    """Tell whether text can be stored: no NUL, no lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Fields:
    """Read fields from a mapping, recording an error per bad field; done() raises Invalid."""

    def __init__(self, data: object, allowed: set[str] | None = None, partial: bool = False):
        self.errors: dict[str, str] = {}
        self.clean: dict = {}
        self.partial = partial
        if not isinstance(data, dict):
            raise Invalid({"body": "Expected a JSON object."})
        self.data = data
        if allowed is not None:
            for key in data:
                if key not in allowed:
                    self.errors[str(key)[:60]] = "Unknown field."

    def _get(self, name: str, required: bool):
        if name not in self.data or self.data[name] is None:
            if required and not self.partial:
                self.errors[name] = "This field is required."
            return None
        return self.data[name]

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        max_len: int = 200,
        pattern: re.Pattern | None = None,
        message: str = "Not valid.",
    ) -> None:
        value = self._get(name, required)
        if value is None:
            if not required and name in self.data:
                self.clean[name] = None
            return
        if not isinstance(value, str):
            self.errors[name] = "Must be text."
            return
        value = value.strip()
        if not encodable(value):
            self.errors[name] = "Must be text without NUL characters or broken Unicode."
        elif required and not value:
            self.errors[name] = "This field is required."
        elif len(value) > max_len:
            self.errors[name] = f"At most {max_len} characters."
        elif value and pattern is not None and not pattern.match(value):
            self.errors[name] = message
        else:
            self.clean[name] = value or None if not required else value

    def email(self, name: str, *, required: bool = True) -> None:
        self.text(
            name,
            required=required,
            max_len=254,
            pattern=EMAIL,
            message="Not a valid email address.",
        )
        if self.clean.get(name):
            self.clean[name] = self.clean[name].lower()

    def phone(self, name: str, *, required: bool = False) -> None:
        self.text(
            name, required=required, max_len=30, pattern=PHONE, message="Not a valid phone number."
        )

    def number(
        self, name: str, *, lo: float, hi: float, integer: bool = False, required: bool = True
    ) -> None:
        value = self._get(name, required)
        if value is None:
            return
        kind = "a whole number" if integer else "a number"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or isinstance(value, float)
            and not math.isfinite(value)
            or integer
            and value != int(value)
        ):
            self.errors[name] = f"Must be {kind}."
        elif not lo <= value <= hi:
            self.errors[name] = f"Must be between {lo:g} and {hi:g}."
        else:
            self.clean[name] = int(value) if integer else float(value)

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = True) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if value not in options or not isinstance(value, str):
            self.errors[name] = "Must be one of: " + ", ".join(options) + "."
        else:
            self.clean[name] = value

    def boolean(self, name: str, *, required: bool = False) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, bool):
            self.errors[name] = "Must be true or false."
        else:
            self.clean[name] = value

    def timezone(self, name: str, *, required: bool = False) -> None:
        self.text(name, required=required, max_len=64)
        value = self.clean.get(name)
        if value is not None and not valid_timezone(value):
            del self.clean[name]
            self.errors[name] = "Unknown time zone; use an IANA name such as Europe/London."

    def clock(self, name: str, *, required: bool = False) -> None:
        self.text(
            name,
            required=required,
            max_len=5,
            pattern=HHMM,
            message="Use 24-hour HH:MM, e.g. 21:00.",
        )

    def moment(self, name: str, *, required: bool = True) -> None:
        """An ISO 8601 date-time that states its UTC offset."""
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, str) or len(value) > 40:
            self.errors[name] = "Must be an ISO 8601 date-time with offset."
            return
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            self.errors[name] = (
                "Must be an ISO 8601 date-time with offset, e.g. 2026-05-01T14:30:00+01:00."
            )
            return
        if parsed.tzinfo is None:
            self.errors[name] = "Include the UTC offset, e.g. +01:00 or Z."
        elif not 2000 <= parsed.year <= 2100:
            self.errors[name] = "Must be between the years 2000 and 2100."
        else:
            self.clean[name] = parsed

    def text_list(
        self,
        name: str,
        *,
        required: bool = True,
        max_items: int = 10,
        max_len: int = 80,
        min_items: int = 0,
    ) -> None:
        value = self._get(name, required)
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.errors[name] = "Must be a list of text."
            return
        items = [v.strip() for v in value if v.strip()]
        if len(items) < min_items:
            self.errors[name] = f"Give at least {min_items}."
        elif len(items) > max_items:
            self.errors[name] = f"At most {max_items} items."
        elif any(len(v) > max_len or not encodable(v) for v in items):
            self.errors[name] = f"Each item at most {max_len} characters."
        else:
            self.clean[name] = items

    def flags(self, name: str, keys: tuple[str, ...]) -> None:
        """An object of booleans with known keys; missing keys are false."""
        value = self._get(name, False)
        if value is None:
            if not self.partial:
                self.clean[name] = dict.fromkeys(keys, False)
            return
        if not isinstance(value, dict):
            self.errors[name] = "Must be an object of true/false values."
            return
        unknown = [k for k in value if k not in keys]
        bad = [k for k in keys if k in value and not isinstance(value[k], bool)]
        if unknown:
            self.errors[name] = (
                "Unknown keys: "
                + ", ".join(map(str, unknown[:5]))
                + "; allowed: "
                + ", ".join(keys)
                + "."
            )
        elif bad:
            self.errors[name] = "Must be true or false: " + ", ".join(bad) + "."
        else:
            self.clean[name] = {k: bool(value.get(k, False)) for k in keys}

    def done(self) -> dict:
        if self.errors:
            raise Invalid(self.errors)
        return self.clean


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
