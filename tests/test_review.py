"""Review: the flags API and queue order, exports that round-trip, erasure that leaves nothing, audit."""

import csv
import html as htmllib
import io
import re
import sqlite3
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import checkin_body
from fhir.resources.R4B.bundle import Bundle
from PIL import Image


def taken(hours_after: float, session: dict) -> str:
    return (
        datetime.fromisoformat(session["performed_at"]) + timedelta(hours=hours_after)
    ).isoformat()


def db_counts(app) -> dict:
    conn = sqlite3.connect(app.config["DATABASE"])
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 90, 80)).save(buf, "JPEG")
    return buf.getvalue()


def test_queue_orders_urgent_first_then_oldest_and_counts(world):
    w = world
    old = w.new_client(w.p1, "Old review")
    s_old = w.new_session(w.p1, old["id"], hours_ago=60)
    c_old = w.sign_in_client(w.p1, old["id"])
    assert (
        c_old.post(
            "/api/checkins", checkin_body(redness=3, swelling=1, pain=2, taken_at=taken(52, s_old))
        ).status_code
        == 201
    )
    w.c1.post("/api/checkins", checkin_body(warning_signs={"fever": True}))
    r = w.p1.get("/api/flags")
    assert r.status_code == 200
    flags = r.json["flags"]
    assert [f["severity"] for f in flags][0] == "urgent" and flags[0]["rule"] == "U2"
    assert {f["rule"] for f in flags[1:]} == {"R1"}
    assert r.json["counts"] == {"urgent": 1, "review": 1, "info": 0}
    assert flags[0]["client_id"] == w.client1["id"] and flags[0]["latest"]["redness"] == 2
    assert w.p2.get("/api/flags").json["flags"] == []
    assert w.p1.get("/api/flags?severity=review").json["flags"][0]["rule"] == "R1"
    assert w.p1.get("/api/flags?severity=loud").status_code == 422


def test_worse_answer_escalates_the_same_flag(world):
    w = world
    s = w.new_session(w.p1, w.client1["id"], hours_ago=80)
    w.c1.post("/api/checkins", checkin_body(session_id=s["id"], pain=7, taken_at=taken(30, s)))
    w.c1.post("/api/checkins", checkin_body(session_id=s["id"], pain=9, taken_at=taken(60, s)))
    r4 = [f for f in w.p1.get("/api/flags?status=all").json["flags"] if f["rule"] == "R4"]
    assert len(r4) == 1 and r4[0]["severity"] == "urgent"
    events = w.p1.get(f"/api/flags/{r4[0]['id']}").json["events"]
    assert [e["action"] for e in events] == ["open", "escalate"]


def test_flag_actions_and_isolation(world):
    w = world
    w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    flag = w.p1.get("/api/flags").json["flags"][0]
    fid = flag["id"]
    for path in ("acknowledge", "called", "resolve"):
        assert w.p2.post(f"/api/flags/{fid}/{path}").status_code == 404
        assert w.c1.post(f"/api/flags/{fid}/{path}").status_code == 403
    assert w.p1.post(f"/api/flags/{fid}/acknowledge").json["status"] == "acknowledged"
    called = w.p1.post(f"/api/flags/{fid}/called", {"note": "Left a voicemail"}).json
    assert called["called_at"]
    done = w.p1.post(f"/api/flags/{fid}/resolve", {"note": "Seen in clinic"}).json
    assert done["status"] == "resolved" and done["note"] == "Seen in clinic"
    assert w.p1.post(f"/api/flags/{fid}/resolve", {"note": "Again"}).status_code == 409
    assert w.p1.post(f"/api/flags/{fid}/resolve").status_code == 422  # a note is required
    assert w.p1.post(f"/api/flags/{fid}/resolve", {"note": 5}).status_code == 422
    assert w.p1.get("/api/flags").json["flags"] == []


def test_client_csv_export_round_trips(world):
    w = world
    sent = [
        checkin_body(redness=r, swelling=s, pain=p, note=n, symptoms={"peeling": True})
        for r, s, p, n in [(2, 1, 3, "fine"), (1, 0, 1, '=HYPERLINK("x")'), (0, 0, 0, "")]
    ]
    for body in sent:
        assert w.c1.post("/api/checkins", body).status_code == 201
    r = w.p1.get(f"/api/clients/{w.client1['id']}/export?format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    back = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {row["id"] for row in back} == {b["id"] for b in sent}
    by_id = {row["id"]: row for row in back}
    for b in sent:
        row = by_id[b["id"]]
        assert (int(row["redness"]), int(row["swelling"]), int(row["pain"])) == (
            b["redness"],
            b["swelling"],
            b["pain"],
        )
        assert row["symptoms.peeling"] == "True" and row["warning_signs.fever"] == "False"
    assert by_id[sent[1]["id"]]["note"].startswith("'=")  # no formula injection
    assert by_id[sent[2]["id"]]["note"] == ""  # an empty cell stays empty, not a lone '
    assert "'" not in r.get_data(as_text=True).replace("'=HYPERLINK", "")
    assert w.p2.get(f"/api/clients/{w.client1['id']}/export?format=csv").status_code == 404


def test_clinic_csv_exports_by_date_range(world):
    w = world
    w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    today = datetime.now(UTC).date()
    r = w.p1.get(f"/api/exports/checkins.csv?from={today}&to={today + timedelta(days=1)}")
    assert len(list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))) == 1
    r = w.p1.get(f"/api/exports/checkins.csv?to={today}")
    assert list(csv.DictReader(io.StringIO(r.get_data(as_text=True)))) == []
    flags = list(
        csv.DictReader(io.StringIO(w.p1.get("/api/exports/flags.csv").get_data(as_text=True)))
    )
    assert [f["rule"] for f in flags] == ["U3"]
    assert w.p2.get("/api/exports/flags.csv").get_data(as_text=True).count("\n") == 1
    assert w.p1.get("/api/exports/flags.csv?from=yesterday").status_code == 422


def test_clinic_csv_exports_name_their_range_and_refuse_one_given_backwards(world):
    p1 = world.p1
    disposition = {
        "": "flags.csv",
        "?from=2026-11-01": "flags-from-2026-11-01.csv",
        "?to=2026-12-01": "flags-until-2026-12-01.csv",
        "?from=2026-11-01&to=2026-12-01": "flags-2026-11-01-to-2026-12-01.csv",
    }
    for query, name in disposition.items():
        r = p1.get(f"/api/exports/flags.csv{query}")
        assert r.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    r = p1.get("/api/exports/checkins.csv?from=2026-11-01&to=2026-12-01")
    assert r.headers["Content-Disposition"].endswith(
        'filename="checkins-2026-11-01-to-2026-12-01.csv"'
    )
    # A range given backwards (or empty) was an empty file, as if nothing had happened.
    for csv_path in ("checkins.csv", "flags.csv"):
        for query in ("?from=2026-12-01&to=2026-11-01", "?from=2026-11-01&to=2026-11-01"):
            r = p1.get(f"/api/exports/{csv_path}{query}")
            assert r.status_code == 422 and list(r.json["error"]["fields"]) == ["to"]


def test_clinic_csv_exports_count_the_clinic_s_days_not_utc_s(world):
    # A check-in at 22:30 in New York is the next day in UTC: a clinic there asking for that
    # day's check-ins expects it in that day's file, not the next day's.
    p3, clinic3 = world.practitioner("three@clinic-three.net", "Clinic Three", "America/New_York")
    zone = ZoneInfo(clinic3["timezone"])
    dana = world.new_client(p3, "Dana")
    world.new_session(p3, dana["id"], hours_ago=72)
    c3 = world.sign_in_client(p3, dana["id"])
    day = datetime.now(zone).date() - timedelta(days=1)
    late = datetime.combine(day, time(22, 30), zone)
    assert late.astimezone(UTC).date() == day + timedelta(days=1)
    body = checkin_body(taken_at=late.isoformat())
    assert c3.post("/api/checkins", body).status_code == 201

    def ids(query: str) -> list[str]:
        r = p3.get(f"/api/exports/checkins.csv?{query}")
        assert r.status_code == 200, r.json
        return [row["id"] for row in csv.DictReader(io.StringIO(r.get_data(as_text=True)))]

    assert ids(f"from={day}&to={day + timedelta(days=1)}") == [body["id"]]
    assert ids(f"from={day + timedelta(days=1)}&to={day + timedelta(days=2)}") == []
    assert ids(f"to={day + timedelta(days=1)}") == [body["id"]]
    # A date-time keeps its own offset; one without is the clinic's wall clock.
    assert ids(f"from={day}T22:00:00Z&to={day}T23:00:00Z") == []
    assert ids(f"from={day}T22:00:00&to={day}T23:00:00") == [body["id"]]
    # The file is named after the days asked for, and the page says whose days they are.
    r = p3.get(f"/api/exports/checkins.csv?from={day}")
    assert r.headers["Content-Disposition"].endswith(f'filename="checkins-from-{day}.csv"')
    page = p3.get("/clinic/exports").get_data(as_text=True)
    assert "America/New_York" in page and "UTC days" not in page


def test_json_bundle_and_fhir_export(world):
    w = world
    body = checkin_body(note="a bit itchy", symptoms={"itching": True})
    w.c1.post("/api/checkins", body)
    bundle = w.p1.get(f"/api/clients/{w.client1['id']}/export").json
    assert bundle["client"]["name"] == "Alice"
    assert bundle["sessions"][0]["checkins"][0]["id"] == body["id"]
    assert bundle["sessions"][0]["schedule"]
    fhir = w.p1.get(f"/api/clients/{w.client1['id']}/export?format=fhir")
    assert fhir.status_code == 200
    assert fhir.headers["Content-Disposition"] == (
        f'attachment; filename="client-{w.client1["id"]}-fhir.json"'
    )
    parsed = Bundle.model_validate(fhir.json)
    kinds = [e.resource.__resource_type__ for e in parsed.entry]
    assert kinds.count("QuestionnaireResponse") == 1 and kinds.count("Observation") == 3


def test_erasure_leaves_nothing_but_an_anonymous_record(world, app, tmp_path):
    w = world
    cid = w.client1["id"]
    before = db_counts(app)
    r = w.c1.post(
        "/api/checkins", checkin_body(warning_signs={"pus": True}, note="Alice's secret note")
    )
    assert (
        w.c1.post(
            f"/api/checkins/{r.json['id']}/photos",
            data=jpeg(),
            headers={"Content-Type": "image/jpeg"},
        ).status_code
        == 201
    )
    w.p1.get(f"/api/clients/{cid}")  # a read, audited
    photos_dir = app.config["PHOTOS_DIR"]
    assert any(True for _ in __import__("pathlib").Path(photos_dir, str(cid)).iterdir())
    assert w.p2.delete(f"/api/clients/{cid}").status_code == 404
    assert w.p1.delete(f"/api/clients/{cid}").status_code == 204
    assert w.c1.get("/api/me").status_code == 401  # the phone's session is gone too
    conn = sqlite3.connect(app.config["DATABASE"])
    for table, id_col in [
        ("clients", "id"),
        ("checkins", "client_id"),
        ("photos", "client_id"),
        ("flags", "client_id"),
        ("treatment_sessions", "client_id"),
        ("invites", "client_id"),
        ("notifications", "client_id"),
    ]:
        assert (
            conn.execute(f"SELECT count(*) FROM {table} WHERE {id_col} = ?", (cid,)).fetchone()[0]
            == 0
        ), table
    assert (
        conn.execute(
            "SELECT count(*) FROM auth_sessions WHERE user_kind='client' AND user_id=?", (cid,)
        ).fetchone()[0]
        == 0
    )
    audit = conn.execute(
        "SELECT action, detail FROM audit_log WHERE client_id = ?", (cid,)
    ).fetchall()
    # Issue 12: the audit keeps every entry about the client (by id), the erasure last.
    assert audit[-1] == ("client_erased", None) and ("client_read", None) in audit
    dump = "\n".join(conn.iterdump())
    assert "Alice" not in dump and "secret note" not in dump
    assert not __import__("pathlib").Path(photos_dir, str(cid)).exists()
    after = db_counts(app)
    assert after["checkins"] == before["checkins"] == 0
    assert w.p1.get(f"/api/clients/{cid}").status_code == 404
    # the other clinic's client is untouched
    assert w.p2.get(f"/api/clients/{w.client2['id']}").status_code == 200


def test_audit_records_reads_exports_changes(world):
    w = world
    cid = w.client1["id"]
    w.p1.get(f"/api/clients/{cid}")
    w.p1.get(f"/api/clients/{cid}/export")
    w.p1.patch(f"/api/clients/{cid}", {"phone": "+44 7700 900123"})
    entries = w.p1.get(f"/api/audit?client_id={cid}").json["entries"]
    actions = [e["action"] for e in entries]
    for action in (
        "client_read",
        "client_exported",
        "client_updated",
        "client_created",
        "invite_issued",
    ):
        assert action in actions
    assert all(e["actor_kind"] in {"practitioner", "client"} for e in entries)
    assert w.p2.get(f"/api/audit?client_id={cid}").json["entries"] == []
    page = w.p1.get(f"/clinic/audit?client_id={cid}").get_data(as_text=True)
    # The page speaks words, not action codes (issue 14).
    assert "exported Alice's record as JSON" in htmllib.unescape(re.sub(r"<[^>]+>", "", page))
    assert "client_exported" not in page
    assert "+44 7700" not in str(entries)  # no personal content in the log


def test_every_read_of_a_client_record_is_audited(world):
    """Issue 2/6: every practitioner read of a client record is audited, also the session's
    edit form (it shows the session's notes) and the client's phones (API)."""
    w = world
    cid, sid = w.client1["id"], w.session1["id"]

    def reads():
        return [
            e["detail"]
            for e in w.p1.get(f"/api/audit?client_id={cid}").json["entries"]
            if e["action"] == "client_read"
        ]

    before = len(reads())
    assert w.p1.get(f"/clinic/sessions/{sid}/edit").status_code == 200
    assert w.p1.get(f"/api/clients/{cid}/devices").status_code == 200
    found = reads()
    assert len(found) == before + 2
    assert f"session={sid}" in found and "devices" in found
    # A refused read (another clinic's practitioner) records no read of this client.
    assert w.p2.get(f"/clinic/sessions/{sid}/edit").status_code == 404
    assert w.p2.get(f"/api/clients/{cid}/devices").status_code == 404
    assert len(reads()) == before + 2


def test_a_clients_own_change_of_their_settings_is_audited(world):
    """Issue 6: every change of a client record is audited, who, when and what: also the
    client's own (their time zone, quiet hours, discreet mode), by the API or Settings page."""
    w = world
    cid = w.client1["id"]
    assert w.c1.patch("/api/me", {"timezone": "Europe/Madrid", "discreet": True}).status_code == 200
    assert w.c1.patch("/api/me", {}).status_code == 200  # nothing changed: nothing to record
    entries = w.p1.get(f"/api/audit?client_id={cid}").json["entries"]
    mine = [e for e in entries if e["action"] == "client_updated"]
    assert len(mine) == 1, mine
    assert mine[0]["actor_kind"] == "client" and mine[0]["actor_id"] == cid
    assert mine[0]["detail"] == "discreet,timezone"  # which fields, never their values
    page = w.p1.get(f"/clinic/audit?client_id={cid}").get_data(as_text=True)
    assert "changed Alice" in htmllib.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.parametrize("fmt", ["xml", "pdf"])
def test_export_rejects_unknown_formats(world, fmt):
    assert (
        world.p1.get(f"/api/clients/{world.client1['id']}/export?format={fmt}").status_code == 422
    )


def test_protocol_round_trips_and_new_sessions_use_the_new_version(world):
    protocol = world.p1.get("/api/protocol").json
    steps = protocol["steps"]
    assert steps[0]["when"] == "right after the session"
    steps = [s for s in steps if s["kind"] != "recall"]  # remove a step
    steps.insert(0, steps.pop(3))  # reorder
    steps[0]["title"]["en"] = "How is your skin today?"  # edit (its Spanish stays)
    r = world.p1.put("/api/protocol", {"steps": steps})
    assert r.status_code == 200 and r.json["version"] == protocol["version"] + 1
    assert world.p2.get("/api/protocol").json["version"] == 1  # the other clinic is untouched
    session = world.new_session(world.p1, world.client1["id"])
    assert session["protocol_version"] == protocol["version"] + 1
    assert not any(n["step_key"] == "book-next-session" for n in session["schedule"])
    old = world.p1.get(f"/api/sessions/{world.session1['id']}").json
    assert old["protocol_version"] == protocol["version"]
    bad = world.p1.put("/api/protocol", {"steps": [dict(steps[0], at={"day": 2, "time": "25:00"})]})
    assert bad.status_code == 422 and "steps[0].at.time" in bad.json["error"]["fields"]


def test_a_protocol_as_get_answers_it_can_be_put_back_as_is(world):
    protocol = world.p1.get("/api/protocol").json
    r = world.p1.put("/api/protocol", protocol)  # id, version, created_at, each step's "when"
    assert r.status_code == 200, r.json
    assert r.json["version"] == protocol["version"] + 1 and r.json["steps"] == protocol["steps"]
    # Only GET's own fields are let through: anything else is still refused.
    r = world.p1.put("/api/protocol", dict(protocol, name="mine"))
    assert r.status_code == 422 and r.json["error"]["fields"] == {
        "body": 'Expected {"steps": [...]}.'
    }


def test_the_timeline_shows_the_latest_sessions_reminders_and_loads_older_ones_on_demand(world):
    """A year of sessions is 180 reminder rows: the client page renders the latest session's
    and links each older session to its own reminders page."""
    older = world.new_session(world.p1, world.client1["id"], hours_ago=24 * 40)
    latest = world.session1
    page = world.p1.get(f"/clinic/clients/{world.client1['id']}").get_data(as_text=True)
    older_link = f'href="/clinic/sessions/{older["id"]}/reminders"'
    assert older_link in page
    assert f'href="/clinic/sessions/{latest["id"]}/reminders"' not in page
    assert page.count("<details><summary>Reminders and delivery (") == 1  # the latest, inline
    count = len(world.p1.get(f"/api/sessions/{older['id']}").json["schedule"])
    assert count > 0 and f"Reminders and delivery ({count})</a>" in page
    r = world.p1.get(f"/clinic/sessions/{older['id']}/reminders")
    assert r.status_code == 200
    shown = r.get_data(as_text=True)
    assert shown.count('<td data-label="Reminder">') == count
    assert world.client1["name"] in shown
    # The export still carries every session's reminders.
    export = world.p1.get(f"/api/clients/{world.client1['id']}/export").json
    assert all(s["schedule"] for s in export["sessions"])
    assert world.p2.get(f"/clinic/sessions/{older['id']}/reminders").status_code == 404
