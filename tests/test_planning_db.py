"""The database side of planning: sessions and client settings -> rows in the outbox.

The pure planning rules (DST, quiet hours, validity) are in test_protocols.py; here
we check that the API and clinic functions write, re-plan and cancel the right rows.
"""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import World, one_clinic

from companion.db import iso, parse_iso, rows, write
from companion.reminders import dispatcher as dispatch
from companion.reminders.planning import local_time, plan
from companion.reminders.protocol import DEFAULT_STEPS
from companion.reminders.sender import Sender
from companion.treatments import store as treatments

STEP_KEYS = {s["key"] for s in DEFAULT_STEPS}


@pytest.fixture
def one_clinic_template(tmp_path_factory):
    return one_clinic("planning", tmp_path_factory)


def session_rows(db, session_id: int) -> list[dict]:
    return rows(db, "SELECT * FROM notifications WHERE session_id = ? ORDER BY id", (session_id,))


def live(found: list[dict]) -> dict[str, dict]:
    """The rows still in play (not cancelled), by step key."""
    out = {}
    for r in found:
        if r["status"] != "cancelled":
            assert r["step_key"] not in out, f"two live rows for {r['step_key']}"
            out[r["step_key"]] = r
    return out


def client_row(db, client_id: int) -> dict:
    return rows(db, "SELECT * FROM clients WHERE id = ?", (client_id,))[0]


def expected_plan(db, session_id: int, client_id: int, now: datetime) -> dict[str, dict]:
    session = rows(db, "SELECT * FROM treatment_sessions WHERE id = ?", (session_id,))[0]
    c = client_row(db, client_id)
    planned = plan(
        parse_iso(session["performed_at"]),
        DEFAULT_STEPS,
        c["timezone"],
        c["quiet_start"],
        c["quiet_end"],
        now,
    )
    return {p["step_key"]: p for p in planned}


def assert_matches_plan(found: dict[str, dict], expected: dict[str, dict], keys: set[str]):
    assert set(found) >= keys
    for key in keys:
        row, want = found[key], expected[key]
        assert parse_iso(row["due_at"]) == want["due_at"], key
        assert parse_iso(row["expires_at"]) == want["expires_at"], key
        assert row["next_attempt_at"] == row["due_at"], key
        assert (row["status"], row["status_reason"]) == (want["status"], want["skip_reason"]), key
        assert row["attempts"] == 0 and row["lease_owner"] is None, key


def mark(db, row_id: int, status: str, at: datetime) -> dict:
    """Settle a row as the dispatcher would have."""
    with write(db):
        db.conn.execute(
            "UPDATE notifications SET status = ?, attempts = 1, sent_at = ? WHERE id = ?",
            (status, iso(at) if status == "sent" else None, row_id),
        )
    return rows(db, "SELECT * FROM notifications WHERE id = ?", (row_id,))[0]


# -- recording a session ---------------------------------------------------------------


def test_recording_a_session_plans_every_step_for_the_client(practice, db):
    session = practice.session1
    found = session_rows(db, session["id"])
    assert len(found) == len(DEFAULT_STEPS)
    created = parse_iso(
        rows(db, "SELECT created_at FROM treatment_sessions WHERE id = ?", (session["id"],))[0][
            "created_at"
        ]
    )
    assert_matches_plan(
        live(found), expected_plan(db, session["id"], practice.client1["id"], created), STEP_KEYS
    )
    client = practice.client1
    assert {(r["owner_kind"], r["owner_id"], r["client_id"], r["clinic_id"]) for r in found} == {
        ("client", client["id"], client["id"], client["clinic_id"])
    }
    assert {r["urgency"] for r in found} == {"normal"}
    checkin = live(found)["day2-checkin"]
    assert checkin["url"] == f"/checkin?session={session['id']}"
    assert live(found)["day3-sunscreen"]["url"] == "/reminders"
    # The API answer shows the same schedule.
    assert [(s["id"], s["due_at"], s["status"]) for s in session["schedule"]] == [
        (r["id"], r["due_at"], r["status"])
        for r in sorted(found, key=lambda r: (r["due_at"], r["id"]))
    ]


def test_a_session_whose_plan_fails_is_not_recorded(practice, db):
    """Planning runs in the session's transaction: if it fails, neither is stored."""
    client_id = practice.client1["id"]
    with write(db):  # a corrupt stored zone (the API validates it; old data might not be)
        db.conn.execute(
            "UPDATE clients SET timezone = 'Mars/Olympus_Mons' WHERE id = ?", (client_id,)
        )
    before = [
        rows(db, f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("treatment_sessions", "notifications")
    ]
    now = datetime.now(UTC)
    data = {"performed_at": now, "areas": ["face"], "needle_depth_mm": 0.5, "device": "pen"}
    with pytest.raises(Exception, match="Mars"):
        treatments.create_session(db, client_row(db, client_id), None, data, now)
    after = [
        rows(db, f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("treatment_sessions", "notifications")
    ]
    assert after == before
    assert not db.conn.in_transaction


# -- editing and deleting a session ---------------------------------------------------------


def test_new_session_time_replans_pending_rows_and_keeps_settled_ones(practice, db):
    session = practice.session1
    original = live(session_rows(db, session["id"]))
    sent = mark(db, original["after-session"]["id"], "sent", datetime.now(UTC))
    failed = mark(db, original["day1-morning"]["id"], "failed", datetime.now(UTC))
    new_time = parse_iso(session["performed_at"]) - timedelta(days=1)  # entered a day late

    r = practice.p1.patch(f"/api/sessions/{session['id']}", {"performed_at": new_time.isoformat()})

    assert r.status_code == 200, r.json
    found = session_rows(db, session["id"])
    by_id = {row["id"]: row for row in found}
    assert by_id[sent["id"]] == sent and by_id[failed["id"]] == failed
    for key, old in original.items():
        if key in ("after-session", "day1-morning"):
            continue
        assert by_id[old["id"]]["status"] == "cancelled", key
        assert by_id[old["id"]]["status_reason"] == "re-planned: session time changed"
    now_live = live(found)
    assert now_live["after-session"]["id"] == sent["id"]
    assert now_live["day1-morning"]["id"] == failed["id"]
    replanned = STEP_KEYS - {"after-session", "day1-morning"}
    newest_old = max(o["id"] for o in original.values())
    assert all(now_live[k]["id"] > newest_old for k in replanned)
    assert_matches_plan(
        now_live,
        expected_plan(db, session["id"], practice.client1["id"], datetime.now(UTC)),
        replanned,
    )
    moved = local_time(parse_iso(now_live["day2-checkin"]["due_at"]), "Europe/London")
    was = local_time(parse_iso(original["day2-checkin"]["due_at"]), "Europe/London")
    assert (moved.date(), moved.time()) == (was.date() - timedelta(days=1), was.time())
    # The API answer carries the new schedule.
    assert {s["id"] for s in r.json["schedule"] if s["status"] != "cancelled"} == {
        row["id"] for row in now_live.values()
    }


def test_editing_other_fields_leaves_the_plan_alone(practice, db):
    session = practice.session1
    before = session_rows(db, session["id"])
    r = practice.p1.patch(f"/api/sessions/{session['id']}", {"notes": "Client slept well."})
    assert r.status_code == 200, r.json
    assert session_rows(db, session["id"]) == before


def test_deleting_a_session_cancels_what_is_not_sent(practice, db):
    session = practice.session1
    original = live(session_rows(db, session["id"]))
    sent = mark(db, original["after-session"]["id"], "sent", datetime.now(UTC))

    r = practice.p1.delete(f"/api/sessions/{session['id']}")

    assert r.status_code == 204
    assert practice.p1.get(f"/api/sessions/{session['id']}").status_code == 404
    ids = [row["id"] for row in original.values()]
    after = {
        row["id"]: row
        for row in rows(
            db, f"SELECT * FROM notifications WHERE id IN ({','.join('?' * len(ids))})", ids
        )
    }
    assert after[sent["id"]]["status"] == "sent"
    for key, old in original.items():
        if key != "after-session":
            assert (after[old["id"]]["status"], after[old["id"]]["status_reason"]) == (
                "cancelled",
                "session deleted",
            ), key
    assert {row["session_id"] for row in after.values()} == {None}  # kept, unlinked
    assert (
        rows(
            db,
            "SELECT count(*) AS n FROM notifications WHERE client_id = ? AND status = 'pending'",
            (practice.client1["id"],),
        )[0]["n"]
        == 0
    )


# -- client settings -----------------------------------------------------------------------


def split_by_time(original: dict[str, dict], before: datetime, after: datetime):
    """Step keys settled or already due before a change, and those still ahead after it."""
    future = {
        k
        for k, r in original.items()
        if r["status"] == "pending" and parse_iso(r["due_at"]) > after
    }
    past = {
        k
        for k, r in original.items()
        if r["status"] != "pending" or parse_iso(r["due_at"]) <= before
    }
    return past, future


def test_practitioner_changing_time_zone_replans_future_reminders(practice, db):
    session, client = practice.session1, practice.client1
    original = live(session_rows(db, session["id"]))
    sent = mark(db, original["after-session"]["id"], "sent", datetime.now(UTC))
    original["after-session"] = sent

    before = datetime.now(UTC)
    r = practice.p1.patch(f"/api/clients/{client['id']}", {"timezone": "America/New_York"})
    after = datetime.now(UTC)

    assert r.status_code == 200 and r.json["timezone"] == "America/New_York"
    past, future = split_by_time(original, before, after)
    assert "day2-checkin" in future and "after-session" in past
    found = session_rows(db, session["id"])
    now_live = live(found)
    # What was sent or already due stays as it was: nothing goes out again late.
    for key in past:
        assert now_live[key] == original[key], key
    cancelled = [row for row in found if row["status"] == "cancelled"]
    assert {row["step_key"] for row in cancelled} == future
    assert {row["status_reason"] for row in cancelled} == {
        "re-planned: time zone or quiet hours changed"
    }
    assert_matches_plan(now_live, expected_plan(db, session["id"], client["id"], after), future)
    checkin = now_live["day2-checkin"]
    assert local_time(parse_iso(checkin["due_at"]), "America/New_York").strftime("%H:%M") == "18:00"


def test_client_changing_quiet_hours_on_their_phone_replans(practice, db):
    session = practice.session1
    original = live(session_rows(db, session["id"]))
    before = datetime.now(UTC)
    r = practice.c1.patch("/api/me", {"quiet_hours": {"start": "17:00", "end": "09:30"}})
    after = datetime.now(UTC)
    assert r.status_code == 200, r.json
    assert r.json["client"]["quiet_hours"] == {"start": "17:00", "end": "09:30"}
    past, future = split_by_time(original, before, after)
    assert {"day2-checkin", "day3-sunscreen", "day7-checkin"} <= future
    now_live = live(session_rows(db, session["id"]))
    assert all(now_live[key] == original[key] for key in past)
    assert_matches_plan(
        now_live, expected_plan(db, session["id"], practice.client1["id"], after), future
    )
    for key in ("day2-checkin", "day3-sunscreen", "day7-checkin"):
        due = local_time(parse_iso(now_live[key]["due_at"]), "Europe/London")
        assert due.strftime("%H:%M") == "09:30", key


def test_discreet_mode_alone_does_not_replan(practice, db):
    before = session_rows(db, practice.session1["id"])
    r = practice.c1.patch("/api/me", {"discreet": True})
    assert r.status_code == 200 and r.json["client"]["discreet"] is True
    assert session_rows(db, practice.session1["id"]) == before


def test_time_zone_change_touches_only_that_clients_rows(app, db):
    world = World(app)
    other = session_rows(db, world.session2["id"])
    r = world.p1.patch(f"/api/clients/{world.client1['id']}", {"timezone": "Asia/Tokyo"})
    assert r.status_code == 200
    assert session_rows(db, world.session2["id"]) == other
    # Another clinic's practitioner cannot re-plan this client.
    mine = session_rows(db, world.session1["id"])
    assert (
        world.p2.patch(f"/api/clients/{world.client1['id']}", {"timezone": "UTC"}).status_code
        == 404
    )
    assert session_rows(db, world.session1["id"]) == mine


def test_settings_change_does_not_resend_reminders_already_settled(practice, db):
    """Regression: re-planning once turned settled 'skipped' rows back into pending ones."""
    session = practice.session1
    after = live(session_rows(db, session["id"]))["after-session"]
    # The dispatcher ran while the client had no device: the due reminder was settled
    # as skipped (it stays readable in the app). It ran when the reminder came due: the
    # session was performed 2 h ago, which at night puts it in quiet hours until 08:00.
    now = max(datetime.now(UTC), parse_iso(after["next_attempt_at"]))
    with Sender(
        practice.app.config["VAPID_PRIVATE_KEY"], practice.app.config["VAPID_SUBJECT"]
    ) as sender:
        dispatch.tick(db, sender, lambda: now, "test", dispatch.Settings())
    settled = rows(db, "SELECT * FROM notifications WHERE id = ?", (after["id"],))[0]
    assert (settled["status"], settled["status_reason"]) == ("skipped", dispatch.NO_DEVICE)

    assert practice.c1.patch("/api/me", {"timezone": "Europe/Paris"}).status_code == 200

    assert rows(db, "SELECT * FROM notifications WHERE id = ?", (after["id"],))[0] == settled
    # The settled step has no pending row again. (Other steps may be due now: between 18:00
    # and 19:00 UTC the 19:00 evening routine, never sent, moves to 18:00 UTC in Paris.)
    due_again = rows(
        db,
        "SELECT id FROM notifications WHERE session_id = ? AND step_key = ? AND status = 'pending'",
        (session["id"], after["step_key"]),
    )
    assert due_again == []
