"""N3 (missed check-ins) is evaluated by the dispatcher's job after each check-in step's window."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from companion.checkins import flags
from companion.checkins import store as checkins
from companion.db import connect, parse_iso


def checkin_due_times(db, session_id):
    return [
        parse_iso(r[0])
        for r in db.conn.execute(
            "SELECT due_at FROM notifications WHERE session_id = ? AND kind = 'checkin'"
            " AND status = 'pending' ORDER BY due_at",
            (session_id,),
        )
    ]


def n3_flags(db, session_id):
    return [
        tuple(r)
        for r in db.conn.execute(
            "SELECT rule, severity, status FROM flags WHERE rule = 'N3' AND session_id = ?",
            (session_id,),
        )
    ]


def test_two_missed_checkins_open_one_n3_flag(world, app):
    db = connect(app.config["DATABASE"])
    due = checkin_due_times(db, world.session1["id"])
    with app.app_context():
        # After the first check-in's window only one is missed: no flag yet.
        # (World has one session in each clinic, planned alike: both count.)
        assert flags.check_missed(db, due[0] + timedelta(hours=13)) == 0
        assert n3_flags(db, world.session1["id"]) == []
        # After the second one's window, two in a row are missed: one info flag each.
        assert flags.check_missed(db, due[1] + timedelta(hours=13)) == 2
        assert n3_flags(db, world.session1["id"]) == [("N3", "info", "open")]
        # Running again later neither duplicates nor escalates it.
        flags.check_missed(db, due[2] + timedelta(hours=13))
        assert n3_flags(db, world.session1["id"]) == [("N3", "info", "open")]
    db.close()


def daytime_session(world) -> dict:
    """A session of Alice's performed at 10:00 London (the next one: up to a day ahead).

    World's session was performed 2 h before the test, so its plan depends on the hour: at
    night quiet hours move day 1's check-in to 08:00, ten hours before day 2's, and an
    answer to it counts for day 2 too (early answers count from 12 h before).
    """
    now = datetime.now(ZoneInfo("Europe/London"))
    at = now.replace(hour=10, minute=0, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return world.new_session(
        world.p1, world.client1["id"], hours_ago=0, performed_at=at.isoformat()
    )


def test_an_answer_between_resets_the_count(world, app):
    session = daytime_session(world)
    db = connect(app.config["DATABASE"])
    due = checkin_due_times(db, session["id"])
    client = dict(
        db.conn.execute("SELECT * FROM clients WHERE id = ?", (world.client1["id"],)).fetchone()
    )
    with app.app_context():
        # The first check-in is answered on time (stored directly: its time is in the future).
        checkins.submit(
            db,
            client,
            {
                "id": str(uuid.uuid4()),
                "session_id": session["id"],
                "taken_at": due[0] + timedelta(hours=1),
                "redness": 2,
                "swelling": 1,
                "pain": 2,
                "symptoms": {},
                "warning_signs": {},
                "note": "",
            },
            due[0] + timedelta(hours=1),
        )
        flags.check_missed(db, due[1] + timedelta(hours=13))
        assert n3_flags(db, session["id"]) == []
        # The second and third both missed: now it is two in a row.
        flags.check_missed(db, due[2] + timedelta(hours=13))
        assert n3_flags(db, session["id"]) == [("N3", "info", "open")]
    db.close()


def test_checkins_of_a_client_without_a_device_count_as_asked(world, app):
    # A client who never turned reminders on reads each check-in in the app's inbox: the
    # dispatcher marks the row "skipped: no subscribed device (shown in the app's inbox)".
    # Those were left out of N3, so the clients likeliest to drift away were never flagged.
    from companion.reminders import dispatcher

    db = connect(app.config["DATABASE"])
    session = world.session1["id"]
    due = checkin_due_times(db, session)
    with app.app_context():
        for at in due[:2]:
            dispatcher.tick(
                db, None, lambda at=at: at + timedelta(minutes=1), "d", dispatcher.Settings()
            )
        reasons = {
            r[0]
            for r in db.conn.execute(
                "SELECT status || ': ' || status_reason FROM notifications"
                " WHERE session_id = ? AND kind = 'checkin' AND due_at <= ?",
                (session, due[1].isoformat()),
            )
        }
        assert reasons == {f"skipped: {dispatcher.NO_DEVICE}"}, reasons
        flags.check_missed(db, due[1] + timedelta(hours=13))
        assert n3_flags(db, session) == [("N3", "info", "open")]
    db.close()
