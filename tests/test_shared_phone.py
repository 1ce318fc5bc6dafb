"""A shared phone: a check-in queued offline by one client never lands on the next one's record.

The offline queue sends the client who made each check-in as X-Companion-Client on replay.
"""

import io
import re

from conftest import checkin_body, count
from PIL import Image


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 110)).save(out, "JPEG")
    return out.getvalue()


def test_a_check_in_made_by_another_client_is_refused_and_nothing_is_stored(world, app):
    other = str(world.client2["id"])
    r = world.c1.post(
        "/api/checkins",
        checkin_body(warning_signs={"fever": True}),
        headers={"X-Companion-Client": other},
    )
    assert r.status_code == 409 and r.json["error"]["code"] == "other_client"
    assert count(app, "checkins") == 0 and count(app, "flags") == 0


def test_own_or_no_header_is_filed_as_before(world, app):
    own = str(world.client1["id"])
    assert (
        world.c1.post(
            "/api/checkins", checkin_body(), headers={"X-Companion-Client": own}
        ).status_code
        == 201
    )
    assert world.c1.post("/api/checkins", checkin_body()).status_code == 201
    assert count(app, "checkins", "client_id = ?", (world.client1["id"],)) == 2


def test_an_empty_or_malformed_header_is_a_clear_400_and_nothing_is_stored(world, app):
    # An empty header names nobody: neither "another client" (409) nor a check-in filed as if
    # it were absent. The answer says what the header must be.
    for value in ("", " ", "abc", "4 2", "-1", "\u0661"):
        r = world.c1.post("/api/checkins", checkin_body(), headers={"X-Companion-Client": value})
        assert r.status_code == 400, (value[:10], r.status_code)
        assert r.json["error"]["code"] == "bad_header"
        assert "X-Companion-Client" in r.json["error"]["message"]
    long_id = {"X-Companion-Client": "9" * 5000}  # digits: a (nonexistent) other client's id
    assert world.c1.post("/api/checkins", checkin_body(), headers=long_id).status_code == 409
    assert count(app, "checkins") == 0
    checkin = world.c1.post("/api/checkins", checkin_body()).json
    url = f"/api/checkins/{checkin['id']}/photos"
    r = world.c1.post(
        url, data=_jpeg(), headers={"Content-Type": "image/jpeg", "X-Companion-Client": ""}
    )
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_header"
    assert count(app, "photos") == 0
    own = f" 0{world.client1['id']} "
    r = world.c1.post(
        url, data=_jpeg(), headers={"Content-Type": "image/jpeg", "X-Companion-Client": own}
    )
    assert r.status_code == 201


def test_a_photo_replayed_for_another_client_is_refused(world, app):
    checkin = world.c1.post("/api/checkins", checkin_body()).json
    url = f"/api/checkins/{checkin['id']}/photos"
    other = {"Content-Type": "image/jpeg", "X-Companion-Client": str(world.client2["id"])}
    r = world.c1.post(url, data=_jpeg(), headers=other)
    assert r.status_code == 409 and r.json["error"]["code"] == "other_client"
    assert count(app, "photos") == 0
    own = {"Content-Type": "image/jpeg", "X-Companion-Client": str(world.client1["id"])}
    assert world.c1.post(url, data=_jpeg(), headers=own).status_code == 201


def test_the_check_in_page_names_the_signed_in_client(world):
    html = world.c1.get("/checkin").get_data(as_text=True)
    assert re.search(r'data-client-id="(\d+)"', html).group(1) == str(world.client1["id"])


def test_openapi_documents_the_header_on_both_routes(world):
    paths = world.anon.get("/api/openapi.json").json["paths"]
    for path in ("/api/checkins", "/api/checkins/{checkin_id}/photos"):
        names = [p["name"] for p in paths[path]["post"].get("parameters", [])]
        assert "X-Companion-Client" in names


def test_a_spanish_client_reads_the_refusal_in_spanish(world):
    assert world.c1.patch("/api/me", {"language": "es"}).status_code == 200
    other = {"X-Companion-Client": str(world.client2["id"])}
    r = world.c1.post("/api/checkins", checkin_body(), headers=other)
    assert r.status_code == 409 and r.json["error"]["code"] == "other_client"
    assert r.json["error"]["message"].startswith("Este registro lo hizo")
