"""Check-in photos: accept real images only, re-encode their pixels alone, store on disk.

An upload is refused as cheaply as it can be: its size from the request, the check-in's photo
count and the client's hourly allowance from the database, its format and dimensions from the
image header (checkins/photo_header.py); only then is it decoded, JPEGs at the smallest scale
that still covers the stored size (Pillow's draft mode), a still WebP by libwebp straight at the
stored size (checkins/webp.py). What is stored is a new JPEG made from the pixels only: no EXIF, GPS,
XMP, ICC profile, comment or text chunk survives (a profile's colours are converted to sRGB).

A photo is the SHA-256 of its uploaded bytes on its check-in: a phone that sends it again (its
answer lost on a flaky network, the offline queue retrying) gets the stored photo back, not a copy.
"""

import ctypes
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils
from PIL import Image, ImageCms, ImageOps

from companion.checkins.photo_header import MAX_SIDE, BadImage, open_checked
from companion.db import iso, one, parse_iso, write
from companion.errors import N_, Conflict, Invalid, NotFound, RateLimited, TooLarge

MAX_BYTES = 15 * 1024 * 1024
PER_CHECKIN = 3
DECODERS = 1  # photos decoded at once in one process
DECODE_WAIT_SECONDS = 20
SRGB = ImageCms.createProfile("sRGB")

_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only

try:  # HEIC from iPhones, where the pillow-heif wheel is available
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional codec
    pass


def process(data: bytes) -> tuple[bytes, int, int]:
    """Check an upload by its content, then re-encode its pixels alone as a plain JPEG."""
    if len(data) > MAX_BYTES:
        raise TooLarge(N_("A photo can be at most %(mb)s MB.", mb=MAX_BYTES // 1024 // 1024))
    img = open_checked(data)
    try:
        img.load()
        icc = img.info.get("icc_profile")
        # In place, before turning: the box is square, so the size comes out the same, and
        # the turn then copies 1600 pixels a side rather than the whole decoded image.
        img.thumbnail((MAX_SIDE, MAX_SIDE))
        # Keep the orientation the EXIF asked for; the EXIF itself is not kept.
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            # See-through parts (a clinic's PNG logo, a screenshot) become white, not the
            # black or stray colour their hidden colour channels hold.
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        rgb = _to_srgb(img, icc)
        pixels = Image.new("RGB", rgb.size)  # a new image: no info, no metadata to carry over
        pixels.paste(rgb)
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=85, optimize=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage(
            "not_an_image",
            N_("This photo is damaged and cannot be read."),
            N_("Damaged image."),
        ) from None
    return out.getvalue(), pixels.width, pixels.height


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Return the image as sRGB pixels: convert through its ICC profile when it has one."""
    if icc and img.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, source, SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken or unusual profile: keep the pixels as they are
    return img.convert("RGB")


def save(folder: Path, client_id: int, jpeg: bytes) -> tuple[str, str]:
    """Write a processed photo under the client's folder; return (id, relative filename)."""
    photo_id = str(uuid.uuid4())
    rel = f"{client_id}/{photo_id}.jpg"
    path = folder / rel
    # Owner-only, like the database: folders 0700, files 0600 (touch sets the mode).
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(jpeg)
    tmp.replace(path)
    return photo_id, rel


def add(
    db: sqlite_utils.Database,
    client_id: int,
    checkin_id: str,
    data: bytes,
    now: datetime,
    *,
    folder: Path,
    per_hour: int,
    guard: "Guard",
) -> tuple[dict, bool]:
    """Attach an uploaded photo to one of the client's check-ins; return what the API shows,
    and False when the same bytes were already stored on that check-in (a retry).

    folder is PHOTOS_DIR, per_hour PHOTO_RATE_PER_HOUR, guard the process's (guard_of(app)).
    """
    checkin = one(
        db,
        "SELECT id FROM checkins WHERE id = :id AND client_id = :client_id",
        {"id": checkin_id, "client_id": client_id},
    )
    if checkin is None:
        raise NotFound("check-in")
    digest = hashlib.sha256(data).hexdigest()
    # A retry is answered before any refusal: its photo is stored, not one too many.
    if (stored := _stored(db, checkin["id"], digest)) is not None:
        return stored, False
    # Refusals that need no decoding come first: a full check-in, then the hourly allowance.
    _check_room(db, checkin["id"])
    _rate_limit(db, client_id, now, per_hour, guard)
    try:
        with guard.decoding():
            jpeg, width, height = process(data)
    except Invalid:
        guard.refused(client_id, now)
        raise
    with write(db):
        # Again, inside the write lock: the same photo sent twice at once is stored once.
        if (stored := _stored(db, checkin["id"], digest)) is not None:
            return stored, False
        _check_room(db, checkin["id"])  # a concurrent upload may have filled it
        photo_id, rel = save(folder, client_id, jpeg)
        row = {"id": photo_id, "width": width, "height": height, "bytes": len(jpeg)}
        db["photos"].insert(
            {
                **row,
                "checkin_id": checkin["id"],
                "client_id": client_id,
                "filename": rel,
                "created_at": iso(now),
                "upload_sha256": digest,
            }
        )
    return _shown(row), True


def _stored(db: sqlite_utils.Database, checkin_id: str, digest: str) -> dict | None:
    """The photo already stored from these uploaded bytes on this check-in, as the API shows it."""
    row = one(
        db,
        "SELECT id, width, height, bytes FROM photos"
        " WHERE checkin_id = :checkin_id AND upload_sha256 = :digest",
        {"checkin_id": checkin_id, "digest": digest},
    )
    return None if row is None else _shown(row)


def _shown(row: dict) -> dict:
    return {**row, "url": f"/api/photos/{row['id']}"}


def _check_room(db: sqlite_utils.Database, checkin_id: str) -> None:
    count = one(
        db,
        "SELECT count(*) AS n FROM photos WHERE checkin_id = :checkin_id",
        {"checkin_id": checkin_id},
    )["n"]
    if count >= PER_CHECKIN:
        raise Conflict(
            N_("A check-in can have at most %(n)s photos.", n=PER_CHECKIN), "too_many_photos"
        )


def _rate_limit(
    db: sqlite_utils.Database, client_id: int, now: datetime, limit: int, guard: "Guard"
) -> None:
    """Refuse past `limit` uploads in the last hour: photos stored (any worker) plus
    uploads this process refused for their content (a hostile client's attempts count)."""
    since = now - timedelta(hours=1)
    stored = one(
        db,
        "SELECT count(*) AS n, min(created_at) AS first FROM photos"
        " WHERE client_id = :client_id AND created_at > :since",
        {"client_id": client_id, "since": iso(since)},
    )
    refused = guard.refusals(client_id, since)
    if stored["n"] + len(refused) < limit:
        return
    times = refused + ([parse_iso(stored["first"])] if stored["first"] else [])
    wait = min(times) + timedelta(hours=1) - now
    raise RateLimited(
        N_("Too many photos in the last hour; try later."),
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
            raise RateLimited(N_("The server is busy with other photos; try again."), 5, "busy")
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


def guard_of(app) -> Guard:
    """Return the Flask app's one Guard (kept in app.extensions), made on first use."""
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
