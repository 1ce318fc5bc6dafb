"""What an upload's header tells before anything is decoded: refuse it as cheaply as we can.

The format, the pixel count (for WebP from its first chunk, before Pillow allocates a canvas)
and the memory a decode at the draft scale would hold are read from the header; an upload
past any of them is refused here, never decoded. checkins/photos.py decodes what passes.
"""

import io

from PIL import Image, UnidentifiedImageError

from companion.errors import Invalid

ACCEPTED = {"JPEG", "PNG", "WEBP", "HEIF", "MPO"}
MAX_PIXELS = 24_000_000  # what a phone camera makes (6000 x 4000); read from the header
# What the decoded image may take in memory (Pillow keeps RGB as 4 bytes a pixel): a 24 MP
# JPEG decodes at half scale (24 MB); formats without a draft mode (PNG, WebP, HEIC) are held
# to the same budget, so an all-zero 154 KB PNG cannot ask for hundreds of megabytes.
MAX_DECODED_BYTES = 48 * 1024 * 1024
MAX_SIDE = 1600

UNREADABLE = (
    "This is not a photo we can read (JPEG, PNG, WebP or HEIC).",
    "Unsupported or damaged image.",
)


class BadImage(Invalid):
    """An upload that is not a photo we can use: invalid input, with its own code."""

    def __init__(self, code: str, message: str, reason: str):
        super().__init__({"photo": reason}, message)
        self.code = code


def open_checked(data: bytes) -> Image.Image:
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
