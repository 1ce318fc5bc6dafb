"""What an upload's header tells before anything is decoded: refuse it as cheaply as we can.

The format, the pixel count and the memory a decode at the draft scale would hold are read
from the header; an upload past any of them is refused here, never decoded. checkins/photos.py
decodes what passes, except a still WebP: libwebp decodes it here, straight at the stored size
(checkins/webp.py), since Pillow's reader allocates a full-size canvas as it opens the file.
"""

import io

from PIL import Image, UnidentifiedImageError

from companion.checkins import webp
from companion.errors import N_, Invalid

ACCEPTED = {"JPEG", "PNG", "WEBP", "HEIF", "MPO"}
MAX_PIXELS = 24_000_000  # what a phone camera makes (6000 x 4000); read from the header
# What the decoded image may take in memory (Pillow keeps RGB as 4 bytes a pixel): a 24 MP
# JPEG decodes at half scale (24 MB); formats without a draft mode (PNG, WebP, HEIC) are held
# to the same budget, so an all-zero 154 KB PNG cannot ask for hundreds of megabytes.
MAX_DECODED_BYTES = 48 * 1024 * 1024
MAX_SIDE = 1600
# libwebp decodes every pixel of a lossy WebP before scaling it (no draft mode): ~0.3-0.4 s of
# CPU for 12 MP of texture, so WebP stops there (a lossless one or one with alpha is held to
# the memory budget too: it keeps full-size pixels while it decodes).
MAX_WEBP_PIXELS = 12_000_000

UNREADABLE = (
    N_("This is not a photo we can read (JPEG, PNG, WebP or HEIC)."),
    N_("Unsupported or damaged image."),
)


class BadImage(Invalid):
    """An upload that is not a photo we can use: invalid input, with its own code."""

    def __init__(self, code: str, message: str, reason: str):
        super().__init__({"photo": reason}, message)
        self.code = code


def _too_many_for_format() -> BadImage:
    return BadImage(
        "image_too_big",
        N_("This image has too many pixels."),
        N_("Too many pixels for this format; send the photo as the camera took it."),
    )


def open_checked(data: bytes) -> Image.Image:
    """Read the header only: refuse a format or a size we will not decode; set the draft scale.

    A still WebP is the exception: Pillow's reader would allocate its full-size canvas on
    opening, so it is decoded here instead, by libwebp at the stored size (checkins/webp.py)."""
    if webp.is_webp(data):
        still = _webp_still(data)
        if still is not None:
            return still
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        width, height = img.size
    except Image.DecompressionBombError:  # over Pillow's own limit, so far past ours
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadImage("not_an_image", *UNREADABLE) from None
    if fmt not in ACCEPTED:
        raise BadImage(
            "not_an_image",
            N_("Send a JPEG, PNG, WebP or HEIC photo."),
            N_("%(format)s images are not accepted.", format=fmt),
        )
    _check_pixels(width, height)
    try:
        # JPEG (and HEIC with an embedded thumbnail) decode at the smallest scale that is
        # still at least the stored size; other formats ignore this.
        img.draft(None, stored_size(width, height))
    except (OSError, ValueError):
        raise BadImage("not_an_image", *UNREADABLE) from None
    if _working_bytes(img, width, height) > MAX_DECODED_BYTES:
        raise _too_many_for_format()
    return img


def stored_size(width: int, height: int) -> tuple[int, int]:
    """The size a photo is stored at: its longer side at most MAX_SIDE."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _webp_still(data: bytes) -> Image.Image | None:
    """Decode a still WebP at the stored size after checking its headers; None for an
    animation (Pillow's reader takes its first frame, within the budget) or without libwebp."""
    if data[12:16] == b"VP8X" and len(data) >= 30:  # the canvas an extended file claims
        _check_pixels(*(1 + int.from_bytes(data[i : i + 3], "little") for i in (24, 27)))
    try:
        found = webp.features(data)
    except webp.DecodeError:
        raise BadImage("not_an_image", *UNREADABLE) from None
    if found is None:
        return None  # pragma: no cover - Pillow without WebP: Pillow refuses it
    _check_pixels(found.width, found.height)
    if found.animated:
        # Pillow's animation decoder: two full-size canvases, a bytes copy and the image.
        if 16 * found.width * found.height > MAX_DECODED_BYTES:
            raise _too_many_for_format()
        return None
    if found.width * found.height > MAX_WEBP_PIXELS or found.working_bytes() > MAX_DECODED_BYTES:
        raise _too_many_for_format()
    try:
        return webp.decode(data, found, stored_size(found.width, found.height))
    except webp.DecodeError:
        raise BadImage(
            "not_an_image",
            N_("This photo is damaged and cannot be read."),
            N_("Damaged image."),
        ) from None


def _too_many_pixels() -> BadImage:
    return BadImage(
        "image_too_big",
        N_("This image has too many pixels."),
        N_("At most %(max)s pixels.", max=format(MAX_PIXELS, ",")),
    )


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS or width < 1 or height < 1:
        raise _too_many_pixels()


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
