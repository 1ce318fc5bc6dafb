"""Check-ins through the API: idempotent replay, late arrival, isolation, photos, assessment."""

import io
import re
import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import checkin_body, count
from PIL import Image


def test_replay_returns_the_stored_answer_and_stores_nothing_new(world, app):
    body = checkin_body(redness=3, warning_signs={"fever": True})
    first = world.c1.post("/api/checkins", body)
    assert first.status_code == 201
    assert first.json["assessment"]["status"] == "urgent"
    assert {"rule": "U2", "severity": "urgent"}.items() <= first.json["assessment"]["flags"][
        0
    ].items()
    replay = world.c1.post("/api/checkins", body | {"redness": 0})  # a replay is the stored answer
    assert replay.status_code == 200 and replay.json == first.json
    assert count(app, "checkins") == 1 and count(app, "flags") == 1
    alerts = count(app, "notifications", "owner_kind = 'practitioner'")
    assert alerts == 1  # the urgent flag alerted once, not once per replay


def test_an_id_used_by_another_client_is_a_conflict(world, app):
    body = checkin_body()
    assert world.c1.post("/api/checkins", body).status_code == 201
    r = world.c2.post("/api/checkins", body)
    assert r.status_code == 409 and r.json["error"]["fields"] == {"id": "Already used."}
    assert count(app, "checkins") == 1


def test_late_arrival_counts_for_the_day_it_was_taken(world):
    s = world.new_session(world.p1, world.client1["id"], hours_ago=100)
    performed = datetime.fromisoformat(s["performed_at"])
    # Taken offline at 30 h, arrives now (70 h later): the day it was taken (the client's
    # local calendar day since the session's, clinical.day_number), expected course.
    taken = performed + timedelta(hours=30)
    r = world.c1.post(
        "/api/checkins", checkin_body(taken_at=taken.isoformat(), redness=2, swelling=2)
    )
    assert r.status_code == 201
    zone = ZoneInfo(world.client1["timezone"])
    day = (taken.astimezone(zone).date() - performed.astimezone(zone).date()).days
    assert day in (1, 2) and r.json["day"] == day and r.json["session_id"] == s["id"]
    assert r.json["assessment"]["status"] == "expected"
    assert r.json["taken_at"].startswith(
        (performed + timedelta(hours=30)).astimezone(UTC).strftime("%Y-%m-%dT%H")
    )


def test_checkin_belongs_to_the_session_before_it_unless_named(world):
    older = world.session1
    newer = world.new_session(world.p1, world.client1["id"], hours_ago=1)
    r = world.c1.post("/api/checkins", checkin_body())
    assert r.json["session_id"] == newer["id"]
    before_newer = datetime.fromisoformat(newer["performed_at"]) - timedelta(minutes=30)
    r = world.c1.post("/api/checkins", checkin_body(taken_at=before_newer.isoformat()))
    assert r.json["session_id"] == older["id"]
    r = world.c1.post("/api/checkins", checkin_body(session_id=world.session2["id"]))
    assert r.status_code == 404  # another client's session does not exist for you


def test_a_reminder_of_a_deleted_session_opens_a_form_that_can_be_sent(world):
    """A push or calendar event already on the phone names its session in /checkin?session=N;
    once the clinic deleted that session (recorded by mistake), the form carried the id and
    every send answered 404 "No such session", the answers stuck in the form."""

    def form_session(path):
        html = world.c1.get(path).get_data(as_text=True)
        return re.search(r'<form id="checkin-form" data-session-id="([^"]*)"', html).group(1)

    mistaken = world.new_session(world.p1, world.client1["id"], hours_ago=1)
    assert form_session(f"/checkin?session={mistaken['id']}") == str(mistaken["id"])
    assert world.p1.delete(f"/api/sessions/{mistaken['id']}").status_code == 204
    assert form_session(f"/checkin?session={mistaken['id']}") == ""  # the latest one's
    r = world.c1.post("/api/checkins", checkin_body())
    assert r.status_code == 201 and r.json["session_id"] == world.session1["id"]
    # Another client's session id is no one's to name here either; the client's own stays.
    assert form_session(f"/checkin?session={world.session2['id']}") == ""
    assert form_session(f"/checkin?session={world.session1['id']}") == str(world.session1["id"])


@pytest.mark.parametrize(
    "field, value",
    [
        ("id", "not-a-uuid"),
        ("id", 5),
        ("taken_at", "yesterday"),
        ("taken_at", "2026-01-01T10:00:00"),
        ("redness", 5),
        ("redness", -1),
        ("redness", 2.5),
        ("redness", True),
        ("swelling", "2"),
        ("pain", 11),
        ("symptoms", {"sneezing": True}),
        ("symptoms", {"bruising": "yes"}),
        ("warning_signs", ["fever"]),
        ("note", "x" * 2001),
        ("session_id", 0),
        ("unknown", 1),
    ],
)
def test_bad_checkins_get_a_clear_error_per_field(world, app, field, value):
    r = world.c1.post("/api/checkins", checkin_body(**{field: value}))
    assert r.status_code == 422
    assert field in r.json["error"]["fields"]
    assert count(app, "checkins") == 0


def test_taken_at_is_checked_against_the_server_clock(world, app):
    future = datetime.now(UTC) + timedelta(hours=2)
    r = world.c1.post("/api/checkins", checkin_body(taken_at=future.isoformat()))
    assert r.status_code == 422 and "future" in r.json["error"]["fields"]["taken_at"]
    before = datetime.fromisoformat(world.session1["performed_at"]) - timedelta(hours=1)
    r = world.c1.post(
        "/api/checkins", checkin_body(taken_at=before.isoformat(), session_id=world.session1["id"])
    )
    assert r.status_code == 422


def test_a_phone_clock_running_fast_does_not_date_a_check_in_after_it_arrived(world):
    # Up to 10 minutes ahead is accepted (a fast phone clock), but a check-in cannot have
    # been taken after the server received it: stored as taken on arrival. Otherwise the next
    # answer, from a right clock, would count as older and its flags would not open.
    s = world.new_session(world.p1, world.client1["id"], hours_ago=50)
    ahead = datetime.now(UTC) + timedelta(minutes=5)
    r = world.c1.post("/api/checkins", checkin_body(taken_at=ahead.isoformat(), pain=1))
    assert r.status_code == 201 and r.json["taken_at"] <= r.json["received_at"]
    r = world.c1.post("/api/checkins", checkin_body(pain=8, session_id=s["id"]))
    assert r.json["assessment"]["status"] == "review"
    assert [f["rule"] for f in r.json["assessment"]["flags"]] == ["R4"]


@pytest.mark.parametrize("ids", [("f", "0"), ("0", "f")])
def test_of_two_check_ins_taken_at_the_same_moment_the_later_arrival_is_the_newer(world, ids):
    world.new_session(world.p1, world.client1["id"], hours_ago=50)
    taken = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    first, second = (f"{c * 8}-0000-4000-8000-000000000000" for c in ids)
    r = world.c1.post("/api/checkins", checkin_body(id=first, taken_at=taken, pain=1))
    assert r.status_code == 201
    r = world.c1.post("/api/checkins", checkin_body(id=second, taken_at=taken, pain=8))
    assert r.json["assessment"]["status"] == "review", r.json["assessment"]
    assert [f["rule"] for f in r.json["assessment"]["flags"]] == ["R4"]


def test_clients_see_only_their_own_checkins(world):
    mine = world.c1.post("/api/checkins", checkin_body()).json["id"]
    world.c2.post("/api/checkins", checkin_body())
    assert [c["id"] for c in world.c1.get("/api/checkins").json["checkins"]] == [mine]
    assert mine not in str(world.c2.get("/api/checkins").json)
    assert world.p2.get(f"/api/checkins?client_id={world.client1['id']}").status_code == 404
    assert [
        c["id"]
        for c in world.p1.get(f"/api/checkins?client_id={world.client1['id']}").json["checkins"]
    ] == [mine]


def test_checkin_flood_is_rate_limited(world, app):
    app.config["CHECKIN_RATE_PER_HOUR"] = 3
    for _ in range(3):
        assert world.c1.post("/api/checkins", checkin_body()).status_code == 201
    r = world.c1.post("/api/checkins", checkin_body())
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert count(app, "checkins") == 3


# Photos ----------------------------------------------------------------------------------


def image_bytes(fmt="JPEG", size=(64, 48), exif=None, colour=(210, 100, 90)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, colour)
    kwargs = {"exif": exif} if exif is not None else {}
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 0.0), "W", (0.0, 7.0, 0.0)
    return exif.tobytes()


@pytest.fixture
def checkin(world):
    return world.c1.post("/api/checkins", checkin_body()).json


def upload(api, checkin_id, data, ctype="image/jpeg"):
    return api.post(
        f"/api/checkins/{checkin_id}/photos", data=data, headers={"Content-Type": ctype}
    )


@pytest.mark.parametrize(
    "fmt, ctype", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_photos_are_accepted_resized_and_served_only_to_client_and_clinic(
    world, checkin, fmt, ctype
):
    r = upload(world.c1, checkin["id"], image_bytes(fmt, size=(4000, 3000)), ctype)
    assert r.status_code == 201, r.json
    assert max(r.json["width"], r.json["height"]) == 1600
    url = r.json["url"]
    for api, status in [
        (world.c1, 200),
        (world.p1, 200),
        (world.c2, 404),
        (world.p2, 404),
        (world.anon, 401),
    ]:
        resp = api.get(url)
        assert resp.status_code == status
        if status == 200:
            assert resp.mimetype == "image/jpeg" and resp.headers["Cache-Control"] == "no-store"
        resp.close()
    assert world.c1.get("/api/checkins").json["checkins"][0]["photos"][0]["url"] == url


def test_heic_is_accepted_where_pillow_can_read_it(world, checkin):
    pillow_heif = pytest.importorskip("pillow_heif")
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (32, 32), "red")).save(buf, quality=50)
    assert upload(world.c1, checkin["id"], buf.getvalue(), "image/heic").status_code == 201


def test_exif_gps_is_gone_after_upload(world, checkin, app):
    data = image_bytes(exif=gps_exif())
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the upload really has GPS
    r = upload(world.c1, checkin["id"], data)
    stored = world.p1.get(r.json["url"])
    img = Image.open(io.BytesIO(stored.get_data()))
    stored.close()
    assert not img.getexif() and "exif" not in img.info
    assert b"PhoneMaker" not in stored.get_data()


def decompression_bomb() -> bytes:
    """A tiny PNG (109 KB) of 30000 x 30000 black pixels, 1 bit each: 112 MB once inflated.

    Written chunk by chunk with zlib: having Pillow encode the 900-megapixel image took
    15 s of the suite (2.4 s this way), for the same kind of file.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    side = 30000
    row = bytes(1 + side // 8)  # filter type 0, then 3750 bytes of 8 black pixels
    deflate = zlib.compressobj(9)
    pixels = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, data, ctype, status",
    [
        ("renamed executable", b"\x7fELF\x02\x01\x01" + b"\x00" * 2000, "image/jpeg", 422),
        ("windows executable", b"MZ\x90\x00" + b"\x00" * 2000, "image/png", 422),
        ("html polyglot", b"<html><script>alert(1)</script></html>", "image/jpeg", 422),
        ("gif", None, "image/gif", 422),
        ("truncated jpeg", None, "image/jpeg", 422),
        ("not an image type", None, "application/octet-stream", 415),
        ("form upload", None, "multipart/form-data", 415),
    ],
)
def test_bad_uploads_are_refused_by_content(world, checkin, app, name, data, ctype, status):
    if name == "gif":
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "GIF")
        data = buf.getvalue()
    elif data is None:
        data = image_bytes()[:200] if name == "truncated jpeg" else image_bytes()
    r = upload(world.c1, checkin["id"], data, ctype)
    assert r.status_code == status, (name, r.json)
    assert count(app, "photos") == 0


def test_a_50_mb_upload_is_refused(world, checkin, app):
    r = upload(world.c1, checkin["id"], b"\xff\xd8\xff" + b"\x00" * (50 * 1024 * 1024))
    assert r.status_code == 413
    assert count(app, "photos") == 0


def test_a_decompression_bomb_is_refused(world, checkin, app):
    r = upload(world.c1, checkin["id"], decompression_bomb(), "image/png")
    assert r.status_code == 422
    assert count(app, "photos") == 0


def test_jpeg_with_trailing_payload_is_reencoded(world, checkin):
    polyglot = image_bytes() + b"<?php system($_GET['c']); ?>"
    r = upload(world.c1, checkin["id"], polyglot)
    assert r.status_code == 201
    stored = world.c1.get(r.json["url"])
    assert b"<?php" not in stored.get_data()
    stored.close()


def test_at_most_three_photos_and_only_on_your_own_checkin(world, checkin, app):
    for blue in range(3):  # three different photos (a retry of one is answered 200)
        assert (
            upload(world.c1, checkin["id"], image_bytes(colour=(210, 100, 60 * blue))).status_code
            == 201
        )
    assert upload(world.c1, checkin["id"], image_bytes(colour=(0, 0, 0))).status_code == 409
    assert upload(world.c2, checkin["id"], image_bytes()).status_code == 404
    assert upload(world.c1, str(uuid.uuid4()), image_bytes()).status_code == 404
    assert count(app, "photos") == 3
