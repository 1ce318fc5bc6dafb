"""Check-in photos: accept real images only, re-encode without metadata, store on disk."""

import io
import uuid
from datetime import datetime
from pathlib import Path

import sqlite_utils
from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from companion.db import iso, one, write
from companion.errors import Conflict, Invalid, NotFound, TooLarge

ACCEPTED = {"JPEG", "PNG", "WEBP", "HEIF", "MPO"}
MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is ~48M; past this, refuse before decoding
MAX_SIDE = 1600
PER_CHECKIN = 3


class BadImage(Invalid):
    """An upload that is not a photo we can use: invalid input, with its own code."""

    def __init__(self, code: str, message: str, reason: str):
        super().__init__({"photo": reason}, message)
        self.code = code


try:  # HEIC from iPhones, where the pillow-heif wheel is available
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional codec
    pass


def process(data: bytes) -> tuple[bytes, int, int]:
    """Check an upload by its content, then re-encode it as a plain JPEG (no EXIF, no GPS)."""
    if len(data) > MAX_BYTES:
        raise TooLarge(f"A photo can be at most {MAX_BYTES // 1024 // 1024} MB.")
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise BadImage(
            "not_an_image",
            "This is not a photo we can read (JPEG, PNG, WebP or HEIC).",
            "Unsupported or damaged image.",
        ) from None
    if fmt not in ACCEPTED:
        raise BadImage(
            "not_an_image",
            "Send a JPEG, PNG, WebP or HEIC photo.",
            f"{fmt} images are not accepted.",
        )
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise BadImage(
            "image_too_big", "This image has too many pixels.", f"At most {MAX_PIXELS:,} pixels."
        )
    try:
        img.load()
        # Keep the orientation the EXIF asked for, then drop EXIF.
        img = ImageOps.exif_transpose(img)
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage(
            "not_an_image", "This photo is damaged and cannot be read.", "Damaged image."
        ) from None
    return out.getvalue(), img.width, img.height


def folder() -> Path:
    """Return the folder photos are stored under (PHOTOS_DIR)."""
    return Path(current_app.config["PHOTOS_DIR"])


def save(client_id: int, jpeg: bytes) -> tuple[str, str]:
    """Write a processed photo under the client's folder; return (id, relative filename)."""
    photo_id = str(uuid.uuid4())
    rel = f"{client_id}/{photo_id}.jpg"
    path = folder() / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(jpeg)
    tmp.replace(path)
    return photo_id, rel


def add(
    db: sqlite_utils.Database, client_id: int, checkin_id: str, data: bytes, now: datetime
) -> dict:
    """Attach an uploaded photo to one of the client's check-ins; return what the API shows."""
    checkin = one(
        db,
        "SELECT id FROM checkins WHERE id = :id AND client_id = :client_id",
        {"id": checkin_id, "client_id": client_id},
    )
    if checkin is None:
        raise NotFound("check-in")
    jpeg, width, height = process(data)
    with write(db):
        count = one(
            db,
            "SELECT count(*) AS n FROM photos WHERE checkin_id = :checkin_id",
            {"checkin_id": checkin["id"]},
        )["n"]
        if count >= PER_CHECKIN:
            raise Conflict(f"A check-in can have at most {PER_CHECKIN} photos.", "too_many_photos")
        photo_id, rel = save(client_id, jpeg)
        db["photos"].insert(
            {
                "id": photo_id,
                "checkin_id": checkin["id"],
                "client_id": client_id,
                "filename": rel,
                "width": width,
                "height": height,
                "bytes": len(jpeg),
                "created_at": iso(now),
            }
        )
    return {
        "id": photo_id,
        "url": f"/api/photos/{photo_id}",
        "width": width,
        "height": height,
        "bytes": len(jpeg),
    }


def find(db: sqlite_utils.Database, photo_id: str) -> dict | None:
    """Return a stored photo's row with its client's clinic, or None."""
    return one(
        db,
        "SELECT p.*, c.clinic_id FROM photos p JOIN clients c ON c.id = p.client_id"
        " WHERE p.id = :id",
        {"id": photo_id},
    )
