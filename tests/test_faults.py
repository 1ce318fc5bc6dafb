"""Storage faults during a check-in: a clear 503, nothing half-stored, and the replay lands once."""

import pytest
from conftest import checkin_body, sql

from companion import db as companion_db


def stored_ids(app) -> set[str]:
    return {r[0] for r in sql(app, "SELECT id FROM checkins")}


@pytest.mark.parametrize(
    "fault, pragma",
    [
        ("database read-only", "PRAGMA query_only = ON"),
        # The file may not grow past its current size: SQLite answers SQLITE_FULL
        # ("database or disk is full") as soon as a write needs a new page.
        ("disk full", "PRAGMA max_page_count = {pages}"),
    ],
)
def test_storage_fault_gives_503_then_the_replay_lands_exactly_once(
    world, app, monkeypatch, fault, pragma
):
    real_connect = companion_db.connect

    def faulty(path):
        db = real_connect(path)
        pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
        db.conn.execute(pragma.format(pages=pages))
        return db

    monkeypatch.setattr(companion_db, "connect", faulty)
    companion_db.forget_connection(app)  # the next request opens a faulty one
    refused, landed = [], set()
    for _ in range(30):
        body = checkin_body(warning_signs={"pus": True}, note="n" * 2000)
        r = world.c1.post("/api/checkins", body)
        assert r.status_code in (201, 503), r.json
        if r.status_code == 503:
            assert r.json["error"]["code"] == "storage_unavailable" and r.headers["Retry-After"]
            refused.append(body)
            if len(refused) == 3:
                break
        else:
            landed.add(body["id"])
    assert refused, f"{fault}: no write was refused"
    assert stored_ids(app) == landed  # nothing half-stored
    monkeypatch.setattr(companion_db, "connect", real_connect)
    companion_db.forget_connection(app)  # the storage is back
    # The phone's outbox kept each refused check-in and sends the same bodies again.
    for body in refused:
        assert world.c1.post("/api/checkins", body).status_code == 201
        assert world.c1.post("/api/checkins", body).status_code == 200
    assert stored_ids(app) == landed | {b["id"] for b in refused}
