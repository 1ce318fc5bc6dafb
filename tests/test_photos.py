"""Photos carry nothing but pixels, and are refused before they are decoded when they must be."""

import io
import struct
import uuid
from pathlib import Path

import pytest
from conftest import checkin_body, count, sql
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from companion.checkins import photos, webp
from companion.cli import migrate
from companion.db import get_db, utcnow

SECRET = "Alice-at-51.5N-0.12W"  # what each kind of metadata carries; never stored
XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
    f'-syntax-ns#"><rdf:Description about="{SECRET}"/></rdf:RDF></x:xmpmeta>'
)


def exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = SECRET  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 0.0), "W", (0.0, 7.0, 0.0)
    return exif


def icc_profile() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    data = profile.tobytes()
    return data + SECRET.encode()  # a profile with a private tail: still a readable profile


def png_text(kind: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    if kind == "tEXt":
        info.add_text("comment", SECRET)  # the issue's case: Pillow wrote it as a JPEG COM
    elif kind == "zTXt":
        info.add_text("Comment", SECRET * 20, zip=True)
    elif kind == "iTXt":
        info.add_itxt("Comment", SECRET, lang="en", tkey="Comment")
    return info


def image(fmt: str, size=(640, 480), colour=(210, 100, 90), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt, **save)
    return buf.getvalue()


def shades(n: int) -> list[bytes]:
    """n different JPEGs: a retried upload is the same bytes, three photos are three files."""
    return [image("JPEG", colour=(210, 100, 90 + 40 * i)) for i in range(n)]


CARRIERS = {
    "jpeg exif and gps": ("JPEG", {"exif": exif_with_gps()}, {"exif"}),
    "jpeg xmp": ("JPEG", {"xmp": XMP.encode()}, {"xmp"}),
    "jpeg icc": ("JPEG", {"icc_profile": icc_profile()}, {"icc_profile"}),
    "jpeg comment": ("JPEG", {"comment": SECRET}, {"comment"}),
    "png tEXt": ("PNG", {"pnginfo": png_text("tEXt")}, {"comment"}),
    "png zTXt": ("PNG", {"pnginfo": png_text("zTXt")}, {"Comment"}),
    "png iTXt": ("PNG", {"pnginfo": png_text("iTXt")}, {"Comment"}),
    "png exif": ("PNG", {"exif": exif_with_gps()}, {"exif"}),
    "png icc": ("PNG", {"icc_profile": icc_profile()}, {"icc_profile"}),
    "webp exif, xmp and icc": (
        "WEBP",
        {"exif": exif_with_gps(), "xmp": XMP.encode(), "icc_profile": icc_profile()},
        {"exif", "xmp", "icc_profile"},
    ),
}


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of a JPEG file, in order (entropy-coded data skipped)."""
    assert data[:2] == b"\xff\xd8"
    markers, i = [0xD8], 2
    while i < len(data):
        assert data[i] == 0xFF, f"no marker at {i}"
        marker = data[i + 1]
        markers.append(marker)
        if marker == 0xD9:
            return markers
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        i += 2 + length
        if marker == 0xDA:  # scan data runs to the next marker that is not stuffing or RST
            while not (data[i] == 0xFF and data[i + 1] not in (0x00, *range(0xD0, 0xD8))):
                i += 1
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i + 4 : i + 8])
        i += 12 + length
    return chunks


@pytest.fixture
def checkin(world):
    return world.c1.post("/api/checkins", checkin_body()).json


def upload(api, checkin_id, data, ctype="image/jpeg"):
    return api.post(
        f"/api/checkins/{checkin_id}/photos", data=data, headers={"Content-Type": ctype}
    )


def stored_bytes(app, photo_id: str) -> bytes:
    ((filename,),) = sql(app, "SELECT filename FROM photos WHERE id = ?", (photo_id,))
    return (Path(app.config["PHOTOS_DIR"]) / filename).read_bytes()


# Nothing but pixels -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", CARRIERS)
def test_stored_photos_keep_no_metadata(world, checkin, app, kind):
    fmt, save, carried = CARRIERS[kind]
    data = image(fmt, **save)
    uploaded = Image.open(io.BytesIO(data))
    uploaded.load()
    assert carried <= set(uploaded.info)  # the upload really carries it
    r = upload(world.c1, checkin["id"], data, f"image/{fmt.lower()}")
    assert r.status_code == 201, r.json
    stored = stored_bytes(app, r.json["id"])
    markers = jpeg_markers(stored)
    # SOI, JFIF APP0, tables, frame, scans, EOI: no APP1-APP15 (EXIF, XMP, ICC...), no COM.
    assert set(markers) <= {0xD8, 0xE0, 0xDB, 0xC4, 0xC0, 0xC1, 0xC2, 0xDD, 0xDA, 0xD9}, [
        hex(m) for m in markers
    ]
    assert stored.count(b"\xff\xe0") == 1 and stored[6:11] == b"JFIF\x00"
    assert SECRET.encode() not in stored and b"PhoneMaker" not in stored
    img = Image.open(io.BytesIO(stored))
    assert not img.getexif() and set(img.info) <= {
        "jfif",
        "jfif_version",
        "jfif_unit",
        "jfif_density",
        "progressive",
        "progression",
    }


def test_the_metadata_parsers_see_what_pillow_writes():
    """The checks above can fail: the parsers find each kind in a file that carries it."""
    jpeg = image("JPEG", exif=exif_with_gps(), comment=SECRET, icc_profile=icc_profile())
    assert {0xE1, 0xE2, 0xFE} <= set(jpeg_markers(jpeg))
    png = image("PNG", pnginfo=png_text("iTXt"), exif=exif_with_gps())
    assert {b"iTXt", b"eXIf", b"IHDR", b"IDAT", b"IEND"} <= set(png_chunks(png))


def test_exif_orientation_is_applied_to_the_pixels(world, checkin, app):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    r = upload(world.c1, checkin["id"], image("JPEG", size=(640, 480), exif=exif))
    assert (r.json["width"], r.json["height"]) == (480, 640)
    assert Image.open(io.BytesIO(stored_bytes(app, r.json["id"]))).size == (480, 640)


# Refused before decoding -----------------------------------------------------------------


def refuse_decoding(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("the upload was decoded")

    monkeypatch.setattr(photos, "process", no)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", no)


def test_a_full_checkin_is_refused_before_the_photo_is_opened(world, checkin, app, monkeypatch):
    *room, extra = shades(photos.PER_CHECKIN + 1)
    for data in room:
        assert upload(world.c1, checkin["id"], data).status_code == 201
    refuse_decoding(monkeypatch)
    monkeypatch.setattr(photos.Image, "open", lambda *a, **k: pytest.fail("opened"))
    r = upload(world.c1, checkin["id"], extra)
    assert r.status_code == 409 and r.json["error"]["code"] == "too_many_photos"
    assert count(app, "photos") == photos.PER_CHECKIN


@pytest.mark.parametrize(
    "name, fmt, mode, size",
    [
        ("25 MP grey PNG", "PNG", "L", (5000, 5000)),
        ("the issue's all-zero 6300 x 6300 PNG", "PNG", "RGBA", (6300, 6300)),
        ("9 MP PNG with alpha (72 MB to shrink)", "PNG", "RGBA", (3000, 3000)),
        ("14 MP progressive JPEG (coefficients kept)", "JPEG", "RGB", (4000, 3500)),
        # Past Pillow's own bomb limit (2 x 89 MP), where Image.open itself refuses
        ("a 900 MP grey PNG bomb of 0.9 MB", "PNG", "L", (30000, 30000)),
    ],
)
def test_too_many_pixels_is_refused_from_the_header(
    world, checkin, app, monkeypatch, name, fmt, mode, size
):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt, **({"progressive": True} if fmt == "JPEG" else {}))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", lambda self: pytest.fail("decoded"))
    r = upload(world.c1, checkin["id"], buf.getvalue(), f"image/{fmt.lower()}")
    assert r.status_code == 422 and r.json["error"]["code"] == "image_too_big", (name, r.json)
    assert count(app, "photos") == 0


def test_a_huge_webp_is_refused_before_pillow_allocates_its_canvas(
    world, checkin, app, monkeypatch
):
    data = bytearray(image("WEBP", size=(64, 48), exif=exif_with_gps()))  # a VP8X file
    assert data[12:16] == b"VP8X"
    data[24:30] = (16000 - 1).to_bytes(3, "little") + (16000 - 1).to_bytes(3, "little")
    monkeypatch.setattr(photos.Image, "open", lambda *a, **k: pytest.fail("opened"))
    r = upload(world.c1, checkin["id"], bytes(data), "image/webp")
    assert r.status_code == 422 and r.json["error"]["code"] == "image_too_big"


def webp_file(mode: str, size, colour, **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "WEBP", **save)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode, size, colour, save, expected",
    [
        ("RGB", (4000, 3000), (210, 100, 90), {"quality": 90}, (210, 100, 90)),
        ("RGB", (4000, 3000), (210, 100, 90), {"lossless": True}, (210, 100, 90)),
        # See-through parts become white; with alpha, up to ~9 MP (the alpha may need 5 bytes
        # a pixel while it decodes).
        ("RGBA", (3000, 2250), (210, 100, 90, 0), {"quality": 90}, (255, 255, 255)),
    ],
)
def test_a_still_webp_is_decoded_by_libwebp_at_the_stored_size(
    world, checkin, app, monkeypatch, mode, size, colour, save, expected
):
    """Pillow's WebP reader holds three full-size copies (~186 MB at 12 MP): never used for a
    still WebP, which libwebp decodes straight into a 1600 x 1200 buffer."""
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_open", lambda self: pytest.fail("Pillow"))
    sizes = []
    real_decode = webp.decode

    def decode(data, found, size):
        sizes.append(size)
        return real_decode(data, found, size)

    monkeypatch.setattr(webp, "decode", decode)
    r = upload(world.c1, checkin["id"], webp_file(mode, size, colour, **save), "image/webp")
    assert r.status_code == 201, r.json
    assert sizes == [(1600, 1200)] and (r.json["width"], r.json["height"]) == (1600, 1200)
    stored = Image.open(io.BytesIO(stored_bytes(app, r.json["id"])))
    assert stored.size == (1600, 1200)
    assert all(abs(a - b) <= 4 for a, b in zip(stored.getpixel((800, 600)), expected, strict=True))


def test_a_webp_exif_orientation_is_applied_to_the_pixels(world, checkin, app):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    r = upload(world.c1, checkin["id"], image("WEBP", size=(640, 480), exif=exif), "image/webp")
    assert r.status_code == 201 and (r.json["width"], r.json["height"]) == (480, 640)


def test_a_webp_too_big_to_decode_cheaply_is_refused_from_its_header(
    world, checkin, app, monkeypatch
):
    data = bytearray(webp_file("RGB", (64, 48), "red"))  # a simple (VP8) file
    assert data[12:16] == b"VP8 "
    data[26:30] = (5000).to_bytes(2, "little") + (3000).to_bytes(2, "little")  # 15 MP
    monkeypatch.setattr(webp, "decode", lambda *a, **k: pytest.fail("decoded"))
    monkeypatch.setattr(photos.Image, "open", lambda *a, **k: pytest.fail("opened"))
    r = upload(world.c1, checkin["id"], bytes(data), "image/webp")
    assert r.status_code == 422 and r.json["error"]["code"] == "image_too_big", r.json
    assert count(app, "photos") == 0


def test_a_damaged_webp_is_refused_not_a_500(world, checkin, app):
    data = webp_file("RGB", (640, 480), "red", quality=90)
    for broken in (data[: len(data) // 2], data[:20], data[:12] + b"VP8 " + b"\xff" * 40):
        r = upload(world.c1, checkin["id"], broken, "image/webp")
        assert r.status_code == 422 and r.json["error"]["code"] == "not_an_image", r.json
    assert count(app, "photos") == 0


def animated_webp(size) -> bytes:
    frames = [Image.new("RGB", size, colour) for colour in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def test_an_animated_webp_keeps_its_first_frame_or_is_refused_when_large(world, checkin, app):
    r = upload(world.c1, checkin["id"], animated_webp((320, 240)), "image/webp")
    assert r.status_code == 201, r.json
    assert Image.open(io.BytesIO(stored_bytes(app, r.json["id"]))).getpixel((160, 120))[0] > 200
    # Pillow's animation decoder holds ~16 bytes a pixel: 4 MP is past the budget.
    r = upload(world.c1, checkin["id"], animated_webp((2000, 2000)), "image/webp")
    assert r.status_code == 422 and r.json["error"]["code"] == "image_too_big", r.json


def test_a_large_baseline_jpeg_is_decoded_at_a_reduced_scale(world, checkin, monkeypatch):
    decoded = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def load(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    r = upload(world.c1, checkin["id"], image("JPEG", size=(4000, 3000)))
    assert r.status_code == 201 and (r.json["width"], r.json["height"]) == (1600, 1200)
    assert decoded and max(decoded) == (2000, 1500)  # draft mode: DCT scaling by 1/2


# Rate limits and one decode at a time --------------------------------------------------------


def test_uploads_are_rate_limited_per_client(world, app):
    app.config["PHOTO_RATE_PER_HOUR"] = 4
    first = world.c1.post("/api/checkins", checkin_body()).json
    second = world.c1.post("/api/checkins", checkin_body()).json
    for checkin_id, data in zip((first["id"], first["id"], second["id"]), shades(3), strict=True):
        assert upload(world.c1, checkin_id, data).status_code == 201
    assert upload(world.c1, second["id"], b"not an image at all").status_code == 422
    r = upload(world.c1, second["id"], shades(4)[3])  # 3 stored + 1 refused for its content
    assert r.status_code == 429 and r.json["error"]["code"] == "too_many_photos_per_hour"
    assert 3500 <= int(r.headers["Retry-After"]) <= 3601
    assert count(app, "photos") == 3
    other = world.c2.post("/api/checkins", checkin_body()).json  # another client is not held
    assert upload(world.c2, other["id"], image("JPEG")).status_code == 201


def test_the_rate_limit_is_checked_before_decoding(world, checkin, app, monkeypatch):
    app.config["PHOTO_RATE_PER_HOUR"] = 1
    first, second = shades(2)
    assert upload(world.c1, checkin["id"], first).status_code == 201
    refuse_decoding(monkeypatch)
    assert upload(world.c1, checkin["id"], second).status_code == 429


def test_one_photo_is_decoded_at_a_time_per_process(world, checkin, app, monkeypatch):
    monkeypatch.setattr(photos, "DECODE_WAIT_SECONDS", 0.05)
    with photos.guard_of(app).decoding():  # another request is decoding
        r = upload(world.c1, checkin["id"], image("JPEG"))
    assert r.status_code == 429 and r.json["error"]["code"] == "busy"
    assert r.headers["Retry-After"] == "5"
    assert upload(world.c1, checkin["id"], image("JPEG")).status_code == 201


# A retried upload (the answer lost on a flaky network, the outbox sending again) ----------------


def photo_files(app) -> list[Path]:
    return sorted(Path(app.config["PHOTOS_DIR"]).rglob("*.jpg"))


def test_a_retried_upload_answers_the_stored_photo_and_stores_no_second_copy(world, checkin, app):
    data = image("JPEG")
    first = upload(world.c1, checkin["id"], data)
    assert first.status_code == 201
    again = upload(world.c1, checkin["id"], data)
    assert again.status_code == 200, again.json  # as a replayed check-in id answers
    assert again.json == first.json
    assert count(app, "photos") == 1 and len(photo_files(app)) == 1
    listed = world.c1.get("/api/checkins").json["checkins"][0]["photos"]
    assert [p["id"] for p in listed] == [first.json["id"]]
    # Another photo is another photo; the same photo on another check-in is stored there too.
    assert upload(world.c1, checkin["id"], image("JPEG", colour=(9, 9, 9))).status_code == 201
    second = world.c1.post("/api/checkins", checkin_body()).json
    assert upload(world.c1, second["id"], data).status_code == 201
    assert count(app, "photos") == 3 and len(photo_files(app)) == 3


def test_a_retry_is_answered_before_the_room_and_rate_checks_and_is_not_decoded(
    world, checkin, app, monkeypatch
):
    """The last photo's answer lost: its retry is not 'too many photos' nor another upload."""
    app.config["PHOTO_RATE_PER_HOUR"] = photos.PER_CHECKIN
    sent = shades(photos.PER_CHECKIN)
    stored = [upload(world.c1, checkin["id"], data).json for data in sent]
    refuse_decoding(monkeypatch)
    for data, photo in zip(sent, stored, strict=True):
        r = upload(world.c1, checkin["id"], data)
        assert (r.status_code, r.json) == (200, photo)
    assert count(app, "photos") == photos.PER_CHECKIN


def test_a_retry_landing_while_the_first_upload_decodes_stores_one_photo(
    world, checkin, app, monkeypatch
):
    """Two sends of one photo at once: the one that writes second answers the first's photo."""
    data = image("JPEG")
    real_process = photos.process
    early = []

    def process_while_the_retry_lands(upload_bytes):
        if not early:  # the retry was decoded and stored meanwhile
            early.append(None)  # (its own decoding passes straight through)
            early[0], _ = photos.add(
                get_db(),
                world.client1["id"],
                checkin["id"],
                data,
                utcnow(),
                folder=Path(app.config["PHOTOS_DIR"]),
                per_hour=100,
                guard=photos.Guard(),
            )
        return real_process(upload_bytes)

    monkeypatch.setattr(photos, "process", process_while_the_retry_lands)
    r = upload(world.c1, checkin["id"], data)
    assert (r.status_code, r.json) == (200, early[0])
    assert count(app, "photos") == 1 and len(photo_files(app)) == 1


def test_m015_keeps_photos_stored_twice_before_it_and_answers_retries_after(world, checkin, app):
    """An instance upgraded from before m015 may hold the same photo twice (no digest): the
    upgrade keeps both rows, and what is uploaded afterwards is identified again."""
    data = image("JPEG")
    first = upload(world.c1, checkin["id"], data).json
    sql(  # as the version before left it: no digest column, and the photo stored twice
        app,
        "INSERT INTO photos (id, checkin_id, client_id, filename, width, height, bytes,"
        " created_at) SELECT 'twice', checkin_id, client_id, filename, width, height, bytes,"
        " created_at FROM photos",
    )
    for statement in (
        "DROP INDEX photos_checkin_upload",
        "ALTER TABLE photos DROP COLUMN upload_sha256",
        "DELETE FROM _sqlite_migrations WHERE name = 'm015_photo_upload_digest'",
    ):
        sql(app, statement)
    assert migrate(app) == ["m015_photo_upload_digest"]
    assert count(app, "photos") == 2
    assert upload(world.c1, checkin["id"], data).status_code == 201  # no digest stored then
    again = upload(world.c1, checkin["id"], image("JPEG", colour=(1, 2, 3)))
    assert again.status_code == 409  # three photos: the check-in is full
    assert first["id"] in {
        p["id"] for p in world.c1.get("/api/checkins").json["checkins"][0]["photos"]
    }


def test_an_unknown_checkin_is_still_404(world):
    assert upload(world.c1, str(uuid.uuid4()), image("JPEG")).status_code == 404


def test_a_progressive_jpeg_with_zero_sampling_factors_is_refused_not_a_500(world, checkin):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, "JPEG", progressive=True)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc2")  # FFC2, length, precision, height, width, count, components
    for component in range(3):
        data[sof + 10 + 3 * component + 1] = 0  # horizontal and vertical sampling 0
    assert Image.open(io.BytesIO(bytes(data))).layer[0][1:3] == (0, 0)
    r = upload(world.c1, checkin["id"], bytes(data))
    assert r.status_code == 422 and r.json["error"]["code"] == "not_an_image"
