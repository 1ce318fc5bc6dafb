"""Erasure leaves nothing: no byte in any file of the instance, the audit kept, ids never reused."""

import http.client
import io
import os
import sqlite3
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import PASSWORD, checkin_body, sql
from PIL import Image

from companion import db as db_module
from companion import migrations
from companion.db import connect
from testkit import processes
from testkit.processes import COMPANION, Http, free_port, wait_for_health


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 90, 80)).save(buf, "JPEG")
    return buf.getvalue()


def post_bytes(port: int, cookies: str, path: str, data: bytes, content_type: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST", path, body=data, headers={"Content-Type": content_type, "Cookie": cookies}
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def files_holding(folder: Path, needles: dict[str, bytes]) -> list[tuple[str, str]]:
    """Every (file, what) where a file under `folder` holds one of the needles' bytes."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), what) for what, needle in needles.items() if needle in data]
    return found


def test_an_erased_client_leaves_no_byte_in_any_file_of_a_running_instance(tmp_path):
    """`companion run` with its dispatcher: after DELETE answers, grep every file while it runs."""
    instance = tmp_path / "instance"
    port = free_port()
    proc = subprocess.Popen(
        [COMPANION, "run", "--port", str(port)],
        env=processes.env_for(
            instance,
            COMPANION_VAPID_SUBJECT="mailto:ops@clinic-tests.net",
            COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS="1",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, proc)
        mark = uuid.uuid4().hex[:12]
        secrets = {
            "name": f"Quilla Vantress {mark}",
            "phone": f"+44 7700 9{int(mark, 16) % 100000:05d}",
            "email": f"quilla.{mark}@example.org",
            "notes": f"session notes {mark} allergic to lidocaine",
            "checkin note": f"checkin note {mark} it itches behind the ear",
        }
        dr = Http(port)
        status, _, _ = dr.call(
            "POST",
            "/api/setup",
            {
                "clinic_name": "Erasure Clinic",
                "timezone": "Europe/London",
                "email": "dr@erasure-clinic.net",
                "name": "Dr Erasure",
                "password": PASSWORD,
            },
        )
        assert status == 201
        status, client, _ = dr.call(
            "POST",
            "/api/clients",
            {"name": secrets["name"], "phone": secrets["phone"], "email": secrets["email"]},
        )
        assert status == 201, client
        secrets["phone"] = client["phone"]  # as stored
        cid = client["id"]
        status, session, _ = dr.call(
            "POST",
            f"/api/clients/{cid}/sessions",
            {
                "performed_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
                "areas": ["face"],
                "needle_depth_mm": 0.5,
                "device": "pen",
                "products": [],
                "notes": secrets["notes"],
            },
        )
        assert status == 201, session
        status, invite, _ = dr.call("POST", f"/api/clients/{cid}/invites")
        assert status == 201
        phone = Http(port)
        assert phone.call("POST", f"/api/invites/{invite['token']}/redeem")[0] == 200
        body = checkin_body(note=secrets["checkin note"], warning_signs={"pus": True})
        status, checkin, _ = phone.call("POST", "/api/checkins", body)
        assert status == 201, checkin
        photo = jpeg()
        path = f"/api/checkins/{checkin['id']}/photos"
        assert post_bytes(port, phone.cookie_header(), path, photo, "image/jpeg") == 201
        assert dr.call("GET", f"/api/clients/{cid}")[0] == 200
        assert dr.call("GET", f"/api/clients/{cid}/export?format=json")[0] == 200
        needles = {what: text.encode() for what, text in secrets.items()}
        # The check: before the erasure it finds every string, so it can fail.
        before = {what for _, what in files_holding(instance, needles)}
        assert before == set(secrets)
        photo_files = [p for p in (instance / "photos").rglob("*") if p.is_file()]
        assert photo_files

        assert dr.call("DELETE", f"/api/clients/{cid}")[0] == 204

        assert proc.poll() is None  # still running
        assert files_holding(instance, needles) == []
        assert not any(p.exists() for p in photo_files)
        # Writes after the erasure still leave nothing (old frames are not reused into view).
        for _ in range(3):
            assert dr.call("POST", "/api/clients", {"name": "Someone Else"})[0] == 201
        time.sleep(1.5)  # a dispatcher pass and its checkpoint
        assert files_holding(instance, needles) == []
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_connection_deletes_securely_whatever_sqlite_was_built_with(tmp_path, monkeypatch):
    """This machine's SQLite zeroes deleted content by default; one built without it would not."""
    real_connect = sqlite3.connect

    def built_without_secure_delete(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(db_module.sqlite3, "connect", built_without_secure_delete)
    db = connect(str(tmp_path / "x.sqlite3"))
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1


def audit_rows(app, client_id: int) -> list[tuple]:
    return sql(
        app,
        "SELECT clinic_id, actor_kind, action, detail FROM audit_log WHERE client_id = ?"
        " ORDER BY id",
        (client_id,),
    )


def test_erasure_keeps_every_audit_row_and_the_reads_and_refusals_in_it(world, app):
    w = world
    cid = w.client1["id"]
    assert w.p1.get(f"/api/clients/{cid}").status_code == 200
    assert w.p1.get(f"/api/clients/{cid}/export?format=json").status_code == 200
    assert w.c1.get("/api/flags").status_code == 403  # a refusal, by the client's phone
    refusals = sql(
        app,
        "SELECT count(*) FROM audit_log WHERE action = 'access_refused'"
        " AND actor_kind = 'client' AND actor_id = ?",
        (cid,),
    )[0][0]
    assert refusals == 1
    before = audit_rows(app, cid)
    assert ("client_exported" in {r[2] for r in before}) and len(before) >= 4

    assert w.p1.delete(f"/api/clients/{cid}").status_code == 204

    after = audit_rows(app, cid)
    assert after[: len(before)] == before
    assert [r[2] for r in after[len(before) :]] == ["client_erased"]
    assert after[-1][0] == w.clinic1["id"]
    still = sql(
        app,
        "SELECT count(*) FROM audit_log WHERE action = 'access_refused'"
        " AND actor_kind = 'client' AND actor_id = ?",
        (cid,),
    )[0][0]
    assert still == 1
    # The address the client's phone acted from goes; the practitioners' stay.
    addresses = sql(
        app,
        "SELECT actor_kind, count(address) FROM audit_log WHERE client_id = ? OR"
        " (actor_kind = 'client' AND actor_id = ?) GROUP BY actor_kind",
        (cid, cid),
    )
    assert dict(addresses)["client"] == 0 and dict(addresses)["practitioner"] >= 4
    # Personal data never entered the audit log.
    for row in sql(app, "SELECT * FROM audit_log"):
        assert not any(isinstance(v, str) and "Alice" in v for v in row), row


def test_the_erase_page_says_what_erasure_keeps(world):
    """The confirmation page must not promise that the audit entries go (issue 12 keeps them)."""
    page = world.p1.get(f"/clinic/clients/{world.client1['id']}/erase").get_data(as_text=True)
    assert "their audit entries" not in page and "Only an anonymous note" not in page
    assert "The audit log keeps" in page


def test_an_erased_clients_id_is_never_given_again_nor_its_history(world, app):
    w = world
    cid = w.client1["id"]
    assert w.p1.get(f"/api/clients/{cid}/export?format=json").status_code == 200
    assert w.p1.delete(f"/api/clients/{cid}").status_code == 204
    # The erased id was the highest (Bob, the other clinic's, came after Alice): SQLite's
    # plain rowid would give max(id) + 1, which is Bob's + 1, so erase Bob too.
    assert w.p2.delete(f"/api/clients/{w.client2['id']}").status_code == 204
    for api in (w.p1, w.p2):
        new = api.post("/api/clients", {"name": "Carol"}).json
        assert new["id"] not in (cid, w.client2["id"])
        assert new["id"] > w.client2["id"]
        # The new client's record and audit show nothing of the erased one's.
        history = api.get(f"/api/audit?client_id={new['id']}").json["entries"]
        assert {e["action"] for e in history} == {"client_created"}
    # The erased client's history is still there, under its id and its clinic.
    kept = w.p1.get(f"/api/audit?client_id={cid}").json["entries"]
    assert {"client_exported", "client_erased"} <= {e["action"] for e in kept}
    # ...and another clinic never sees it, whatever id it asks for.
    assert w.p2.get(f"/api/audit?client_id={cid}").json["entries"] == []


def test_an_erased_sessions_id_is_never_given_again(world, app):
    w = world
    last = max(w.session1["id"], w.session2["id"])
    api, cid = (w.p1, w.client1["id"]) if last == w.session1["id"] else (w.p2, w.client2["id"])
    assert api.delete(f"/api/sessions/{last}").status_code == 204
    assert w.new_session(api, cid)["id"] > last


def _tables_with_integer_ids(conn) -> dict[str, str]:
    return {
        name: schema
        for name, schema in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
            " AND name NOT LIKE '\\_%' ESCAPE '\\'"
        )
    }


def test_the_migration_rebuilds_tables_keeping_rows_keys_and_indexes(tmp_path):
    """An instance from before m006, with data in it: every row, foreign key and index kept."""
    path = str(tmp_path / "old.sqlite3")
    db = connect(path)
    migrations.migrations.apply(db, stop_before="m006_ids_never_reused")
    conn = db.conn
    conn.execute("INSERT INTO clinics VALUES (1, 'C', NULL, 'Europe/London', 'now')")
    conn.execute(
        "INSERT INTO practitioners (id, clinic_id, email, name, password_hash, created_at)"
        " VALUES (1, 1, 'a@b.c', 'Dr', 'x', 'now')"
    )
    for i in (1, 2, 3):
        conn.execute(
            "INSERT INTO clients (id, clinic_id, name, timezone, created_at, updated_at)"
            " VALUES (:i, 1, 'n', 'Europe/London', 'now', 'now')",
            {"i": i},
        )
        conn.execute(
            "INSERT INTO treatment_sessions (id, clinic_id, client_id, performed_at, areas,"
            " needle_depth_mm, device, products, created_at, updated_at)"
            " VALUES (:i, 1, :i, 'now', '[]', 0.5, 'pen', '[]', 'now', 'now')",
            {"i": i},
        )
    # Client 4 was erased before the upgrade: only the audit remembers it.
    conn.execute(
        "INSERT INTO audit_log (at, actor_kind, clinic_id, client_id, action)"
        " VALUES ('now', 'practitioner', 1, 4, 'client_erased')"
    )
    schema_before = {
        r[0]: r[1]
        for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        if r[1]
    }
    fks_before = {
        t: conn.execute(f"PRAGMA foreign_key_list({t})").fetchall()
        for t in _tables_with_integer_ids(conn)
    }
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in _tables_with_integer_ids(conn)
    }

    migrations.apply(db)

    tables = _tables_with_integer_ids(conn)
    for table in ("clinics", "practitioners", "clients", "treatment_sessions", "flags"):
        assert "AUTOINCREMENT" in tables[table], table
    # Tables made by later migrations (e.g. m010's clinic_logos) are not part of the rebuild.
    assert {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts} == counts
    indexes_after = {
        r[0]: r[1]
        for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        if r[1]
    }
    assert {name: indexes_after.get(name) for name in schema_before} == schema_before
    assert {t: conn.execute(f"PRAGMA foreign_key_list({t})").fetchall() for t in fks_before} == (
        fks_before
    )
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # Cascades still work, and no id comes back, not even the one erased before the upgrade.
    conn.execute("DELETE FROM clients WHERE id = 3")
    assert conn.execute("SELECT count(*) FROM treatment_sessions").fetchone()[0] == 2
    conn.execute(
        "INSERT INTO clients (clinic_id, name, timezone, created_at, updated_at)"
        " VALUES (1, 'new', 'Europe/London', 'now', 'now')"
    )
    assert conn.execute("SELECT max(id) FROM clients").fetchone()[0] == 5
    db.close()
    assert os.path.exists(path)


def test_client_exports_and_the_audit_filter_by_clinic_as_well_as_by_id(world, app):
    """Rows of another clinic that carry this client's id (an id reused before m006) stay out."""
    w = world
    cid, other = w.client1["id"], w.clinic2["id"]
    sql(
        app,
        "INSERT INTO audit_log (at, actor_kind, actor_id, clinic_id, client_id, action, detail)"
        " VALUES ('2026-01-01T00:00:00.000000Z', 'practitioner', 99, ?, ?, 'client_exported',"
        " 'format=csv')",
        (other, cid),
    )
    r = w.c1.post("/api/checkins", checkin_body(note="in clinic one"))
    assert r.status_code == 201
    stray = checkin_body(note="stray from clinic two")
    sql(
        app,
        "INSERT INTO checkins (id, client_id, clinic_id, session_id, taken_at, received_at,"
        " redness, swelling, pain, symptoms, warning_signs, note, assessment)"
        " SELECT ?, client_id, ?, NULL, taken_at, received_at, redness, swelling, pain,"
        " symptoms, warning_signs, ?, assessment FROM checkins WHERE id = ?",
        (stray["id"], other, stray["note"], r.json["id"]),
    )
    bundle = w.p1.get(f"/api/clients/{cid}/export?format=json").json
    assert all(e["actor_id"] != 99 for e in bundle["audit"])
    assert bundle["checkins_without_session"] == []
    for fmt in ("csv", "fhir"):
        text = w.p1.get(f"/api/clients/{cid}/export?format={fmt}").get_data(as_text=True)
        assert "in clinic one" in text and "stray" not in text, fmt
    entries = w.p1.get(f"/api/audit?client_id={cid}").json["entries"]
    assert entries and all(e["actor_id"] != 99 for e in entries)
