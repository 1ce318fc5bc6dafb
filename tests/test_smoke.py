from conftest import checkin_body


def test_world_builds_and_client_checks_in(world):
    r = world.c1.post("/api/checkins", checkin_body())
    assert r.status_code == 201, r.json
    assert r.json["assessment"]["status"] in {"expected", "review", "urgent"}
    assert world.c1.get("/api/aftercare").status_code == 200
    assert world.p1.get(f"/api/sessions/{world.session1['id']}").json["schedule"]
