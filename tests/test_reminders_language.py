"""Reminders in the client's language (issue 15): the step texts planned for a Spanish client,
their push payload (decrypted by the testkit receiver), their email (a real SMTP server),
their calendar feed, and a change of language rewriting what is not sent yet."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar
from test_email import (  # noqa: F401 (smtp_fixture, world_fixture: fixtures)
    AWAKE,
    PUBLIC,
    run,
    smtp_fixture,
    subscribe,
    text_of,
    world_fixture,
)

from companion.db import get_db, iso, rows, utcnow, write
from companion.reminders import dispatcher as dispatch
from companion.reminders.worker import Dispatcher

SPANISH_TITLE = "Cómo cuidar tu piel hoy"  # the default protocol's after-session step
ENGLISH_TITLE = "Caring for your skin today"


def planned(db, client_id):
    return {
        r["step_key"]: r
        for r in rows(
            db,
            "SELECT * FROM notifications WHERE client_id = ? AND step_key IS NOT NULL",
            (client_id,),
        )
    }


def new_client(world, name, **extra):
    body = {"email": f"{name.lower()}@home-tests.net", "quiet_hours": AWAKE}
    client = world.new_client(world.p1, name, **(body | extra))
    world.new_session(world.p1, client["id"], hours_ago=2)  # after-session is due now
    # Only the after-session step: between 19:00 and 21:00 in the client's zone the session's
    # 19:00 evening routine is due too, so whatever else is due now moves a day on.
    with world.app.app_context():
        db, now = get_db(), utcnow()
        with write(db):
            db.conn.execute(
                "UPDATE notifications SET due_at = :later, next_attempt_at = :later"
                " WHERE client_id = :id AND step_key != 'after-session' AND due_at <= :now",
                {"id": client["id"], "now": iso(now), "later": iso(now + timedelta(days=1))},
            )
    return client


def test_a_spanish_clients_push_is_spanish(app, db, world, sender, receiver):
    lucia = new_client(world, "Lucia", language="es", channels=["push"])
    phone = subscribe(world, world.sign_in_client(world.p1, lucia["id"]), receiver, "lucia")
    rows_ = planned(db, lucia["id"])
    assert rows_["day2-checkin"]["title"] == "Día 2: ¿cómo está tu piel?"
    run(app, db, sender)
    [message] = receiver.messages_for(phone)
    assert message.payload["title"] == f"Clinic One: {SPANISH_TITLE}"
    assert message.payload["body"].startswith("Es normal que la piel esté roja")


def test_a_discreet_spanish_client_gets_the_neutral_text_in_spanish(
    app, db, world, sender, receiver
):
    lucia = new_client(world, "Lucia", language="es", channels=["push"], discreet=True)
    phone = subscribe(world, world.sign_in_client(world.p1, lucia["id"]), receiver, "lucia")
    run(app, db, sender)
    [message] = receiver.messages_for(phone)
    assert (message.payload["title"], message.payload["body"]) == (
        "Companion",
        "Nuevo recordatorio de cuidados",
    )
    assert "piel" not in message.raw.decode() and "Clinic One" not in message.raw.decode()


def test_a_spanish_clients_email_is_spanish(app, db, world, smtp, sender):
    lucia = new_client(world, "Lucia", language="es")
    new_client(world, "Erin")
    now = iso(utcnow() - timedelta(seconds=1))
    with write(db):  # the 24-hour check-in due now too: its email has the one-tap link
        db.conn.execute(
            "UPDATE notifications SET due_at = :now, next_attempt_at = :now"
            " WHERE step_key = '24h-checkin'",
            {"now": now},
        )
    run(app, db, sender)
    got = {m.rcpt_tos[0]: [] for m in smtp.wait_for(4)}
    for m in smtp.received:
        got[m.rcpt_tos[0]].append(m.message)
    spanish = {str(m["Subject"]): m for m in got["lucia@home-tests.net"]}
    assert set(spanish) == {SPANISH_TITLE, "¿Cómo está tu piel hoy?"}
    checkin = spanish["¿Cómo está tu piel hoy?"]
    plain, html = text_of(checkin, "plain"), text_of(checkin, "html")
    assert checkin["Content-Language"] == "es" and '<html lang="es">' in html
    assert "Registrar ahora: " in plain and ">Registrar ahora</a>" in html
    expires = planned(db, lucia["id"])["24h-checkin"]["expires_at"]
    expires = datetime.fromisoformat(expires).astimezone(ZoneInfo(lucia["timezone"]))
    weekday = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
    until = f"{weekday[expires.weekday()]} {expires.day} de "
    assert f"desde cualquier dispositivo, y caduca el {until}" in plain
    assert f" a las {expires.hour}:{expires:%M}." in plain  # CLDR es: H:mm, "0:25" after midnight
    assert "Recibes estos correos de Clinic One" in plain and "Dejar de recibir" in html
    for text in (plain, html):
        assert "Check in now" not in text and "You get these emails" not in text
    instruction = text_of(spanish[SPANISH_TITLE], "plain")
    assert "Abrir la app de Clinic One: " in instruction and "No te maquilles" in instruction
    # An English client's emails in the same batch stay English.
    subjects = {str(m["Subject"]) for m in got["erin@home-tests.net"]}
    assert subjects == {ENGLISH_TITLE, "How is your skin today?"}
    english_plain = text_of(got["erin@home-tests.net"][0], "plain")
    assert "You get these emails from Clinic One about your aftercare." in english_plain


def test_a_spanish_clients_calendar_is_spanish(app, db, world):
    lucia = new_client(world, "Lucia", language="es")
    api = world.sign_in_client(world.p1, lucia["id"])
    url = api.get("/api/aftercare").json["calendar_url"]
    feed = Calendar.from_ical(api.get(url.removeprefix(PUBLIC)).data)
    assert str(feed["X-WR-CALNAME"]) == "Cuidados · Clinic One"
    events = {str(e["SUMMARY"]): e for e in feed.walk("VEVENT")}
    assert "Día 2: ¿cómo está tu piel?" in events and ENGLISH_TITLE not in events
    assert events["Día 2: ¿cómo está tu piel?"]["CATEGORIES"].cats == ["Registro"]


def test_a_new_language_rewrites_the_reminders_not_sent_yet(app, db, world, sender, receiver):
    erin = new_client(world, "Erin", channels=["push"])
    api = world.sign_in_client(world.p1, erin["id"])
    phone = subscribe(world, api, receiver, "erin")
    run(app, db, sender)  # the after-session step goes out in English
    before = planned(db, erin["id"])
    assert before["after-session"]["status"] == "sent"
    assert api.patch("/api/me", {"language": "es"}).status_code == 200
    after = planned(db, erin["id"])
    assert after["after-session"]["title"] == ENGLISH_TITLE  # sent: stays as it went
    assert after["day2-checkin"]["title"] == "Día 2: ¿cómo está tu piel?"
    assert after["day2-sunscreen"]["body"].startswith("Ponte protector solar")
    for key, row in after.items():  # rewritten in place: same rows, times and states
        assert (row["id"], row["due_at"], row["status"]) == (
            before[key]["id"],
            before[key]["due_at"],
            before[key]["status"],
        )
    inbox = {r["title"] for r in api.get("/api/aftercare").json["inbox"]}
    assert ENGLISH_TITLE in inbox  # what was sent, as it was sent
    # Back to English (this time set by the practitioner): the unsent rows follow.
    world.p1.patch(f"/api/clients/{erin['id']}", {"language": "en"})
    assert planned(db, erin["id"])["day2-checkin"]["title"] == "Day 2: how is your skin?"
    assert len(receiver.messages_for(phone)) == 1


def test_a_reminder_being_sent_when_the_language_changes_reads_as_it_went(
    app, db, world, sender, receiver
):
    """The dispatcher has leased the row and is sending its English words: the row keeps them
    (the inbox shows what was sent); the rows not leased are rewritten."""
    erin = new_client(world, "Erin", channels=["push"])
    api = world.sign_in_client(world.p1, erin["id"])
    phone = subscribe(world, api, receiver, "erin")
    settings = Dispatcher(app).settings
    now = utcnow()
    claimed = dispatch.claim(db, now, settings.batch, settings.lease_seconds, "sender-1")
    [leased] = [r for r in claimed if r["client_id"] == erin["id"]]
    assert (leased["step_key"], leased["title"]) == ("after-session", ENGLISH_TITLE)
    assert api.patch("/api/me", {"language": "es"}).status_code == 200  # meanwhile
    dispatch.send_batch(db, sender, claimed, now, "sender-1", settings)
    [message] = receiver.messages_for(phone)
    assert message.payload["title"] == f"Clinic One: {ENGLISH_TITLE}"
    after = planned(db, erin["id"])
    assert (after["after-session"]["status"], after["after-session"]["title"]) == (
        "sent",
        ENGLISH_TITLE,
    )
    assert after["day2-checkin"]["title"] == "Día 2: ¿cómo está tu piel?"
    inbox = {r["title"] for r in api.get("/api/aftercare").json["inbox"]}
    assert ENGLISH_TITLE in inbox and SPANISH_TITLE not in inbox


def test_a_discreet_spanish_clients_email_says_nothing_of_the_treatment(
    app, db, world, smtp, sender
):
    new_client(world, "Lucia", language="es", discreet=True)
    run(app, db, sender)
    [got] = smtp.wait_for(1)
    message = got.message
    assert message["Subject"] == "Nuevo recordatorio de cuidados"
    plain, html = text_of(message, "plain"), text_of(message, "html")
    lines = [line for line in plain.splitlines() if line]
    assert lines[:2] == ["Nuevo recordatorio de cuidados.", "Abre la app para leerlo."]
    for text in (plain, html, str(message["Subject"])):
        assert not any(word in text.lower() for word in ("piel", "tratamiento", "maquill", "solar"))
