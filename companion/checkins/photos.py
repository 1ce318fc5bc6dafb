"""Check-in photos: accept real images only, re-encode without metadata, store on disk."""

import io
import uuid
from pathlib import Path

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError

from companion.errors import ApiError

ACCEPTED = {"JPEG", "PNG", "WEBP", "HEIF", "MPO"}
MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is ~48M; past this, refuse before decoding
MAX_SIDE = 1600
PER_CHECKIN = 3

try:  # HEIC from iPhones, where the pillow-heif wheel is available
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional codec
    pass


def process(data: bytes) -> tuple[bytes, int, int]:
    """Check an upload by its content, then re-encode it as a plain JPEG (no EXIF, no GPS)."""
    if len(data) > MAX_BYTES:
        raise ApiError(413, "too_large", f"A photo can be at most {MAX_BYTES // 1024 // 1024} MB.")
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ApiError(
            422,
            "not_an_image",
            "This is not a photo we can read (JPEG, PNG, WebP or HEIC).",
            {"photo": "Unsupported or damaged image."},
        ) from None
    if fmt not in ACCEPTED:
        raise ApiError(
            422,
            "not_an_image",
            "Send a JPEG, PNG, WebP or HEIC photo.",
            {"photo": f"{fmt} images are not accepted."},
        )
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise ApiError(
            422,
            "image_too_big",
            "This image has too many pixels.",
            {"photo": f"At most {MAX_PIXELS:,} pixels."},
        )
    try:
        img.load()
        img = ImageOps.exif_transpose(
            img
        )  # keep the orientation the EXIF asked for, then drop EXIF
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise ApiError(
            422,
            "not_an_image",
            "This photo is damaged and cannot be read.",
            {"photo": "Damaged image."},
        ) from None
    return out.getvalue(), img.width, img.height


def folder() -> Path:
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
