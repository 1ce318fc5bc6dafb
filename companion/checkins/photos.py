"""Check-in photos: accept real images only, re-encode their pixels alone, store on disk.

An upload is refused as cheaply as it can be: its size from the request, the check-in's photo
count and the client's hourly allowance from the database, its format and dimensions from the
image header; only then is it decoded, JPEGs at the smallest scale that still covers the stored
size (Pillow's draft mode). What is stored is a new JPEG made from the pixels only: no EXIF, GPS,
XMP, ICC profile, comment or text chunk survives (a profile's colours are converted to sRGB).
"""

import ctypes
import io
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils
from flask import Flask, current_app
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from companion.db import iso, one, parse_iso, write
from companion.errors import Conflict, Invalid, NotFound, RateLimited, TooLarge

ACCEPTED = {"JPEG", "PNG", "WEBP", "HEIF", "MPO"}
MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 24_000_000  # what a phone camera makes (6000 x 4000); read from the header
# What the decoded image may take in memory (Pillow keeps RGB as 4 bytes a pixel): a 24 MP
# JPEG decodes at half scale (24 MB); formats without a draft mode (PNG, WebP, HEIC) are held
# to the same budget, so an all-zero 154 KB PNG cannot ask for hundreds of megabytes.
MAX_DECODED_BYTES = 48 * 1024 * 1024
MAX_SIDE = 1600
PER_CHECKIN = 3
DECODERS = 1  # photos decoded at once in one process
DECODE_WAIT_SECONDS = 20
SRGB = ImageCms.createProfile("sRGB")

UNREADABLE = (
    "This is not a photo we can read (JPEG, PNG, WebP or HEIC).",
    "Unsupported or damaged image.",
)


class BadImage(Invalid):
    """An upload that is not a photo we can use: invalid input, with its own code."""

    def __init__(self, code: str, message: str, reason: str):
        super().__init__({"photo": reason}, message)
        self.code = code


_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only

try:  # HEIC from iPhones, where the pillow-heif wheel is available
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional codec
    pass


def process(data: bytes) -> tuple[bytes, int, int]:
    """Check an upload by its content, then re-encode its pixels alone as a plain JPEG."""
    if len(data) > MAX_BYTES:
        raise TooLarge(f"A photo can be at most {MAX_BYTES // 1024 // 1024} MB.")
    img = _open(data)
    try:
        img.load()
        icc = img.info.get("icc_profile")
        # In place, before turning: the box is square, so the size comes out the same, and
        # the turn then copies 1600 pixels a side rather than the whole decoded image.
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        # Keep the orientation the EXIF asked for; the EXIF itself is not kept.
        img = ImageOps.exif_transpose(img)
        rgb = _to_srgb(img, icc)
        pixels = Image.new("RGB", rgb.size)  # a new image: no info, no metadata to carry over
        pixels.paste(rgb)
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=85, optimize=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage(
            "not_an_image", "This photo is damaged and cannot be read.", "Damaged image."
        ) from None
    return out.getvalue(), pixels.width, pixels.height


def _open(data: bytes) -> Image.Image:
    """Read the header only: refuse a format or a size we will not decode; set the draft scale."""
    size = _webp_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        # Pillow's WebP reader allocates the whole canvas when it opens the file.
        raise BadImage(
            "image_too_big", "This image has too many pixels.", f"At most {MAX_PIXELS:,} pixels."
        )
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage("not_an_image", *UNREADABLE) from None
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
    scale = min(1.0, MAX_SIDE / max(width, height))
    try:
        # JPEG (and HEIC with an embedded thumbnail) decode at the smallest scale that is
        # still at least the stored size; other formats ignore this.
        img.draft(None, (max(1, round(width * scale)), max(1, round(height * scale))))
    except (OSError, ValueError):
        raise BadImage("not_an_image", *UNREADABLE) from None
    if _working_bytes(img, width, height) > MAX_DECODED_BYTES:
        raise BadImage(
            "image_too_big",
            "This image has too many pixels.",
            "Too many pixels for this format; send the photo as the camera took it.",
        )
    return img


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Read a WebP file's canvas size from its first chunk; None when it is not WebP."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 ":
        width, height = int.from_bytes(data[26:28], "little"), int.from_bytes(data[28:30], "little")
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _working_bytes(img: Image.Image, width: int, height: int) -> int:
    """Estimate what decoding and shrinking the image holds in memory at once, in bytes."""
    held = img.width * img.height * _bytes_per_pixel(img.mode)  # at the draft scale
    if img.mode in ("RGBA", "LA", "PA"):
        held *= 2  # resizing works on a premultiplied copy
    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        # A progressive JPEG keeps every DCT coefficient (2 bytes) of the full-size image.
        sampling = [(h, v) for _, h, v, _ in getattr(img, "layer", []) if h > 0 and v > 0]
        h_max = max((h for h, _ in sampling), default=1)
        v_max = max((v for _, v in sampling), default=1)
        coefficients = sum((width * h // h_max) * (height * v // v_max) for h, v in sampling)
        held += 2 * (coefficients or 4 * width * height)  # no usable sampling: assume 4 full
    return held


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow keeps in memory for one pixel of a mode (RGB is stored as 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Return the image as sRGB pixels: convert through its ICC profile when it has one."""
    if icc and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, source, SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken or unusual profile: keep the pixels as they are
    return img.convert("RGB")


def folder() -> Path:
    """Return the folder photos are stored under (PHOTOS_DIR)."""
    return Path(current_app.config["PHOTOS_DIR"])


def save(client_id: int, jpeg: bytes) -> tuple[str, str]:
    """Write a processed photo under the client's folder; return (id, relative filename)."""
    photo_id = str(uuid.uuid4())
    rel = f"{client_id}/{photo_id}.jpg"
    path = folder() / rel
    # Owner-only, like the database: folders 0700, files 0600 (touch sets the mode).
    folder().mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
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
    # Refusals that need no decoding come first: a full check-in, then the hourly allowance.
    _check_room(db, checkin["id"])
    _rate_limit(db, client_id, now)
    guard = _guard(current_app)
    try:
        with guard.decoding():
            jpeg, width, height = process(data)
    except Invalid:
        guard.refused(client_id, now)
        raise
    with write(db):
        _check_room(db, checkin["id"])  # again, inside the write lock: a concurrent upload
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


def _check_room(db: sqlite_utils.Database, checkin_id: str) -> None:
    count = one(
        db,
        "SELECT count(*) AS n FROM photos WHERE checkin_id = :checkin_id",
        {"checkin_id": checkin_id},
    )["n"]
    if count >= PER_CHECKIN:
        raise Conflict(f"A check-in can have at most {PER_CHECKIN} photos.", "too_many_photos")


def _rate_limit(db: sqlite_utils.Database, client_id: int, now: datetime) -> None:
    """Refuse past PHOTO_RATE_PER_HOUR uploads in the last hour: photos stored (any worker)
    plus uploads this process refused for their content (a hostile client's attempts count)."""
    limit = current_app.config["PHOTO_RATE_PER_HOUR"]
    since = now - timedelta(hours=1)
    stored = one(
        db,
        "SELECT count(*) AS n, min(created_at) AS first FROM photos"
        " WHERE client_id = :client_id AND created_at > :since",
        {"client_id": client_id, "since": iso(since)},
    )
    refused = _guard(current_app).refusals(client_id, since)
    if stored["n"] + len(refused) < limit:
        return
    times = refused + ([parse_iso(stored["first"])] if stored["first"] else [])
    wait = min(times) + timedelta(hours=1) - now
    raise RateLimited(
        "Too many photos in the last hour; try later.",
        max(1, int(wait.total_seconds()) + 1),
        "too_many_photos_per_hour",
    )


class Guard:
    """Per process: one photo decoded at a time, and the uploads refused for their content."""

    def __init__(self) -> None:
        # One decode at a time keeps a worker's memory to one photo's worth, however many
        # threads take uploads at once; each decode is bounded (under 0.5 s), so waits are short.
        self._decoding = threading.BoundedSemaphore(DECODERS)
        self._lock = threading.Lock()
        self._refused: dict[int, list[datetime]] = {}

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """Hold one of the process's decoding slots, or refuse when none frees up in time."""
        if not self._decoding.acquire(timeout=DECODE_WAIT_SECONDS):
            raise RateLimited("The server is busy with other photos; try again.", 5, "busy")
        try:
            yield
        finally:
            self._decoding.release()
            if _malloc_trim is not None:
                # Hand the decode's freed memory back to the system: glibc keeps it in the
                # request thread's arena otherwise, and a worker's size creeps up per thread.
                _malloc_trim(0)

    def refused(self, client_id: int, when: datetime) -> None:
        """Remember an upload refused for its content, against the client's hourly allowance."""
        with self._lock:
            self._refused.setdefault(client_id, []).append(when)

    def refusals(self, client_id: int, since: datetime) -> list[datetime]:
        """Return when this process refused the client's uploads since `since`."""
        with self._lock:
            kept = [t for t in self._refused.get(client_id, []) if t > since]
            if kept:
                self._refused[client_id] = kept
            else:
                self._refused.pop(client_id, None)
            return kept


def _guard(app: Flask) -> Guard:
    guard = app.extensions.get("photo_guard")
    return guard if guard is not None else app.extensions.setdefault("photo_guard", Guard())


def find(db: sqlite_utils.Database, photo_id: str) -> dict | None:
    """Return a stored photo's row with its client's clinic, or None."""
    return one(
        db,
        "SELECT p.*, c.clinic_id FROM photos p JOIN clients c ON c.id = p.client_id"
        " WHERE p.id = :id",
        {"id": photo_id},
    )
