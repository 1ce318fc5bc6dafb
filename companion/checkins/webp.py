"""Decode a still WebP straight at the stored size, through libwebp's own scaling.

Pillow's WebP reader goes through libwebp's animation decoder: it holds a full-size canvas (two
for animations), a bytes copy of it and the image, ~16 bytes a pixel (186 MB for an all-zero
12 MP file of 21 KB). libwebp itself can decode into a buffer of the stored size
(WebPDecoderConfig.options.use_scaling): a lossy picture is then decoded a few rows at a time
and only the small output is held; a lossless one (or a lossy one's alpha plane) still needs its
full-size pixels while it decodes (4 bytes a pixel; the alpha plane 1).

No binding on PyPI fits (PyPI `webp` wraps an older libwebp and pulls in numpy), so this calls
the libwebp that Pillow already loads, through ctypes: the structs below are libwebp's decode.h
of decoder ABI 0x0209 (libwebp 1.0 onwards; Pillow 13's wheels bundle 1.6), and libwebp checks
that ABI version when the config is set up. Where that library cannot be found (a Pillow built
without WebP), `features` answers None and WebP goes to Pillow, which refuses it.
"""

import ctypes
from dataclasses import dataclass

from PIL import Image

ABI_VERSION = 0x0209  # WEBP_DECODER_ABI_VERSION of decode.h
MODE_RGB, MODE_RGBA = 0, 1  # WEBP_CSP_MODE
VP8_STATUS_OK = 0
MAX_CHUNKS = 64  # chunks looked at for metadata: VP8X, ICCP, ANIM, ALPH, VP8, EXIF, XMP, ...
CHUNK_KEYS = {b"ICCP": "icc_profile", b"EXIF": "exif"}  # kept long enough to read, never stored
FORMAT_LOSSLESS = 2  # WebPBitstreamFeatures.format: 0 mixed (animation), 1 lossy, 2 lossless

C_INT = ctypes.c_int


class _Features(ctypes.Structure):  # WebPBitstreamFeatures
    _fields_ = [
        ("width", C_INT),
        ("height", C_INT),
        ("has_alpha", C_INT),
        ("has_animation", C_INT),
        ("format", C_INT),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBABuffer(ctypes.Structure):  # WebPRGBABuffer
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", C_INT), ("size", ctypes.c_size_t)]


class _YUVABuffer(ctypes.Structure):  # WebPYUVABuffer: only here for the union's size
    _fields_ = [
        *[(name, ctypes.c_void_p) for name in ("y", "u", "v", "a")],
        *[(name, C_INT) for name in ("y_stride", "u_stride", "v_stride", "a_stride")],
        *[(name, ctypes.c_size_t) for name in ("y_size", "u_size", "v_size", "a_size")],
    ]


class _BufferUnion(ctypes.Union):
    _fields_ = [("RGBA", _RGBABuffer), ("YUVA", _YUVABuffer)]


class _DecBuffer(ctypes.Structure):  # WebPDecBuffer
    _fields_ = [
        ("colorspace", C_INT),
        ("width", C_INT),
        ("height", C_INT),
        ("is_external_memory", C_INT),
        ("u", _BufferUnion),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):  # WebPDecoderOptions
    _fields_ = [
        *[
            (name, C_INT)
            for name in (
                "bypass_filtering",
                "no_fancy_upsampling",
                "use_cropping",
                "crop_left",
                "crop_top",
                "crop_width",
                "crop_height",
                "use_scaling",
                "scaled_width",
                "scaled_height",
                "use_threads",
                "dithering_strength",
                "flip",
                "alpha_dithering_strength",
            )
        ],
        ("pad", ctypes.c_uint32 * 5),
    ]


class _Config(ctypes.Structure):  # WebPDecoderConfig
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


def _load() -> ctypes.CDLL | None:
    """libwebp as Pillow links it: looking symbols up through Pillow's _webp module finds the
    library it was built against (the wheel's bundled copy, or the system's)."""
    try:
        # Imported here: a Pillow built without WebP has no _webp, which must not stop the app.
        from PIL import _webp
    except ImportError:  # pragma: no cover - Pillow without WebP
        return None
    lib = ctypes.CDLL(_webp.__file__)
    lib.WebPGetFeaturesInternal.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.POINTER(_Features),
        C_INT,
    ]
    lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), C_INT]
    lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
    lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_DecBuffer)]
    return lib


_LIB = _load()


@dataclass(frozen=True)
class Features:
    width: int
    height: int
    alpha: bool
    animated: bool
    lossless: bool

    def working_bytes(self) -> int:
        """What a scaled decode holds besides its output: full-size ARGB for lossless, the
        alpha plane (and, when that plane is itself lossless, its ARGB) for lossy with alpha."""
        pixels = self.width * self.height
        return 4 * pixels if self.lossless else (5 * pixels if self.alpha else 0)


class DecodeError(ValueError):
    """libwebp could not decode the file."""


def is_webp(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def features(data: bytes) -> Features | None:
    """Read a WebP file's headers (nothing decoded); None when libwebp is not available.

    Raises DecodeError for a file libwebp cannot make sense of."""
    if _LIB is None:
        return None  # pragma: no cover
    found = _Features()
    if _LIB.WebPGetFeaturesInternal(data, len(data), ctypes.byref(found), ABI_VERSION):
        raise DecodeError("not a readable WebP file")
    return Features(
        found.width,
        found.height,
        bool(found.has_alpha),
        bool(found.has_animation),
        found.format == FORMAT_LOSSLESS,
    )


def decode(data: bytes, found: Features, size: tuple[int, int]) -> Image.Image:
    """Decode a still WebP scaled to `size`, as RGB (RGBA when it has alpha); the ICC profile
    and EXIF (orientation) chunks go into `info`, as Pillow's reader would put them."""
    config = _Config()
    if not _LIB.WebPInitDecoderConfigInternal(ctypes.byref(config), ABI_VERSION):
        raise DecodeError(f"libwebp does not speak decoder ABI {ABI_VERSION:#06x}")
    mode = "RGBA" if found.alpha else "RGB"
    width, height = size
    out = ctypes.create_string_buffer(len(mode) * width * height)
    options = config.options
    options.use_scaling, options.scaled_width, options.scaled_height = 1, width, height
    buf = config.output
    buf.colorspace = MODE_RGBA if found.alpha else MODE_RGB
    buf.is_external_memory = 1  # decode into `out`: libwebp allocates no output of its own
    buf.u.RGBA.rgba = ctypes.addressof(out)
    buf.u.RGBA.stride = len(mode) * width
    buf.u.RGBA.size = len(out)
    status = _LIB.WebPDecode(data, len(data), ctypes.byref(config))
    _LIB.WebPFreeDecBuffer(ctypes.byref(config.output))
    if status != VP8_STATUS_OK:
        raise DecodeError(f"libwebp status {status}")
    img = Image.frombytes(mode, size, out)
    img.info.update(_metadata(data))
    return img


def _metadata(data: bytes) -> dict:
    """The ICCP and EXIF chunks of an extended WebP file, by Pillow's info keys."""
    info, pos = {}, 12
    if data[12:16] != b"VP8X":
        return info  # a simple file: one image chunk, no metadata
    for _ in range(MAX_CHUNKS):  # a file of empty chunks cannot keep us looping
        if pos + 8 > len(data):
            break
        tag, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag in CHUNK_KEYS:
            info[CHUNK_KEYS[tag]] = data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)  # chunks are padded to an even size
    return info
