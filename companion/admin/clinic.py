"""The clinic's own face: its settings as clients see them, the accent colour's contrast rule,
and its logo (stored in the database, re-encoded by the check-in photo pipeline)."""

import io
import re
import secrets
from datetime import datetime

import sqlite_utils
from PIL import Image

from companion.db import iso, one, rows

HEX_COLOR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal text
LOGO_MAX_BYTES = 5 * 1024 * 1024
LOGO_SIDE = 512
EDITABLE = (
    "display_name",
    "phone",
    "address",
    "booking_url",
    "accent_color",
    "opening_hours",
    "emergency_number",
    "timezone",
)


def normalize_color(value: str) -> str:
    """Return a #rgb or #rrggbb colour as lower-case #rrggbb."""
    digits = value.lstrip("#").lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def contrast_with_white(color: str) -> float:
    """Return the WCAG 2 contrast ratio between a #rrggbb colour and white."""

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)


def logo_url(row: dict) -> str | None:
    """Where the clinic's logo is served; the version in the path makes it cacheable forever."""
    if not row.get("logo_version"):
        return None
    return f"/clinic/logo/{row['id']}/{row['logo_version']}.jpg"


def face(row: dict) -> dict:
    """Shape a clinic row for clients, pages and GET /api/clinic."""
    return {
        "id": row["id"],
        "name": row["name"],
        "display_name": row["display_name"] or row["name"],
        "phone": row["phone"],
        "address": row["address"],
        "booking_url": row["booking_url"],
        "accent_color": row["accent_color"],
        "opening_hours": row["opening_hours"],
        "emergency_number": row["emergency_number"],
        "timezone": row["timezone"],
        "logo_url": logo_url(row),
        "email_alerts": bool(row["email_alerts"]),
        "quiet_hours": {"start": row["quiet_start"], "end": row["quiet_end"]},
        "language": row["language"],
    }


def update(db: sqlite_utils.Database, clinic_id: int, values: dict) -> None:
    """Store the parsed settings given; null clears one (the display name falls back)."""
    changes = {k: values[k] for k in (*EDITABLE, "email_alerts", "language") if k in values}
    if "quiet_hours" in values:
        changes["quiet_start"] = values["quiet_hours"]["start"]
        changes["quiet_end"] = values["quiet_hours"]["end"]
    if changes:
        db["clinics"].update(clinic_id, changes)


def shrink_logo(jpeg: bytes) -> tuple[bytes, int, int]:
    """Scale a clean JPEG (from the photo pipeline) down to a logo's size."""
    img = Image.open(io.BytesIO(jpeg))
    img.thumbnail((LOGO_SIDE, LOGO_SIDE))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, optimize=True)
    return out.getvalue(), img.width, img.height


def save_logo(
    db: sqlite_utils.Database, clinic_id: int, jpeg: bytes, width: int, height: int, now: datetime
) -> None:
    """Store a clinic's logo and give it a new address."""
    db["clinic_logos"].upsert(
        {
            "clinic_id": clinic_id,
            "image": jpeg,
            "width": width,
            "height": height,
            "updated_at": iso(now),
        },
        pk="clinic_id",
    )
    db["clinics"].update(clinic_id, {"logo_version": secrets.token_urlsafe(12)})


def remove_logo(db: sqlite_utils.Database, clinic_id: int) -> None:
    db.execute("DELETE FROM clinic_logos WHERE clinic_id = :id", {"id": clinic_id})
    db["clinics"].update(clinic_id, {"logo_version": None})


def logo(db: sqlite_utils.Database, clinic_id: int, version: str) -> bytes | None:
    """Return the logo stored under this address, or None (an old or made-up one)."""
    row = one(
        db,
        "SELECT l.image FROM clinic_logos l JOIN clinics c ON c.id = l.clinic_id"
        " WHERE l.clinic_id = :id AND c.logo_version = :version",
        {"id": clinic_id, "version": version},
    )
    return row["image"] if row else None


def only_clinic(db: sqlite_utils.Database) -> dict | None:
    """Return the instance's clinic when it serves exactly one, else None."""
    found = rows(db, "SELECT * FROM clinics LIMIT 2")
    return found[0] if len(found) == 1 else None
