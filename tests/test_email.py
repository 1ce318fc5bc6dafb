"""Email: channels, the fallback after push, the emails themselves, one-tap check-in links and
one-click unsubscribe, against a real SMTP server (aiosmtpd on 127.0.0.1) and a real push
receiver. Emails are parsed with the standard library; their links are followed through the app.
"""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest import Api, WorldCopy, checkin_body, count, sql

from companion.cli import main
from companion.db import iso, rows, utcnow, write
from companion.reminders import dispatcher as dispatch
from companion.reminders import links, mail
from companion.reminders.worker import Dispatcher
from testkit.certs import make_certificates
from testkit.push_receiver import PushReceiver
from testkit.smtp_server import SmtpServer

PUBLIC = "https://aftercare.clinic-tests.net"
AWAKE = {"start": "00:00", "end": "00:00"}


@pytest.fixture(name="smtp")
def smtp_fixture(app):
    with SmtpServer() as server:
        app.config.update(server.config(), PUBLIC_URL=PUBLIC)
        yield server


@pytest.fixture(name="world")
def world_fixture(app, smtp, world_template):
    """conftest's World (copied from its template), in an app that sends email."""
    return WorldCopy(app, world_template)


def email_client(world, name="Erin", **extra):
    body = {"email": f"{name.lower()}@home-tests.net", "quiet_hours": AWAKE}
    return world.new_client(world.p1, name, **(body | extra))


def queue(
    db, client, kind="instruction", session_id=None, title="Sunscreen", valid_hours=12, key=None
):
    """Queue one reminder due now for a client (as the outbox plans a step)."""
    now = utcnow()
    with write(db):
        return db.conn.execute(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, session_id,"
            " step_key, kind, title, body, url, due_at, expires_at, next_attempt_at, created_at)"
            " VALUES ('client', :c, :clinic, :c, :s, :key, :kind, :title, :body, '/reminders',"
            " :due, :expires, :due, :due)",
            {
                "c": client["id"],
                "clinic": client["clinic_id"],
                "s": session_id,
                "key": key,
                "kind": kind,
                "title": title,
                "body": "Put on a broad-spectrum sunscreen before you go out.",
                "due": iso(now - timedelta(seconds=1)),
                "expires": iso(now + timedelta(hours=valid_hours)),
            },
        ).lastrowid


def run(app, db, sender) -> dict:
    """One dispatch pass as the worker makes it (its Email from the app's settings)."""
    production = Dispatcher(app)
    return dispatch.tick(
        db, sender, utcnow, "test", production.settings, email=production.get_email()
    )


def row(db, row_id):
    return rows(db, "SELECT * FROM notifications WHERE id = ?", (row_id,))[0]


def attempts(db, row_id):
    return rows(db, "SELECT * FROM deliveries WHERE notification_id = ? ORDER BY id", (row_id,))


def subscribe(world, api, receiver, name):
    browser = receiver.new_subscription(name)
    info = browser.info
    body = {"endpoint": info["endpoint"], "keys": {"p256dh": info["p256dh"], "auth": info["auth"]}}
    r = api.post("/api/push/subscriptions", body)
    assert r.status_code in (200, 201), r.json
    return browser


def text_of(message, subtype):
    return next(
        p for p in message.walk() if p.get_content_type() == f"text/{subtype}"
    ).get_content()


# -- channels, the field ------------------------------------------------------------------


def test_channels_are_set_by_the_practitioner_and_by_the_client(world):
    erin = email_client(world, channels=["email"])
    assert erin["channels"] == ["email"]
    r = world.p1.patch(f"/api/clients/{erin['id']}", {"channels": ["email", "push"]})
    assert r.status_code == 200 and r.json["channels"] == ["push", "email"]
    r = world.p1.patch(f"/api/clients/{erin['id']}", {"channels": None})
    assert r.json["channels"] is None  # the default again
    assert world.p1.get(f"/api/clients/{erin['id']}").json["channels"] is None
    assert world.client1["channels"] is None
    r = world.c1.patch("/api/me", {"channels": ["push"]})
    assert r.status_code == 200 and r.json["client"]["channels"] == ["push"]
    assert world.c1.get("/api/me").json["client"]["channels"] == ["push"]


def test_the_practitioner_sees_the_clients_channels(world):
    """A client who unsubscribed reads 'reminders by push' on their page, not the default."""
    erin = email_client(world)

    def said() -> str:
        page = world.p1.get(f"/clinic/clients/{erin['id']}").get_data(as_text=True)
        return re.search(r"reminders by ([^<·]*)", page).group(1).strip()

    assert said() == "push, else email"
    for channels, words in [
        (["push"], "push"),
        (["push", "email"], "push and email"),
        (["email"], "email"),
        ([], "neither push nor email (the app’s inbox)"),
    ]:
        world.p1.patch(f"/api/clients/{erin['id']}", {"channels": channels})
        assert said() == words, channels


@pytest.mark.parametrize(
    "value, message",
    [
        ("email", 'A list of "push" and "email", or null for the default.'),
        (["sms"], 'A list of "push" and "email", or null for the default.'),
        ([1], 'A list of "push" and "email", or null for the default.'),
        (["push", "push"], "Give each one at most once."),
        (["email"], "Email is one of this client's channels: give an email address."),
    ],
)
def test_bad_channels_are_refused(world, value, message):
    r = world.p1.post("/api/clients", {"name": "Finn", "channels": value})
    assert r.status_code == 422 and r.json["error"]["fields"] == {"channels": message}
    r = world.c1.patch("/api/me", {"channels": value})
    assert r.status_code == 422 and r.json["error"]["fields"] == {"channels": message}


def test_removing_the_address_of_an_email_only_client_is_refused(world):
    erin = email_client(world, channels=["email"])
    r = world.p1.patch(f"/api/clients/{erin['id']}", {"email": None})
    assert r.status_code == 422 and "email" in r.json["error"]["fields"]
    assert world.p1.get(f"/api/clients/{erin['id']}").json["email"] == "erin@home-tests.net"


# -- the fallback and the channels at send time ---------------------------------------------


def test_a_client_without_a_device_gets_the_reminder_by_email(app, db, world, smtp, sender):
    erin = email_client(world)
    row_id = queue(db, erin)
    counts = run(app, db, sender)
    assert counts["sent"] == 1 and counts["emailed"] == 1
    [got] = smtp.wait_for(1)
    message = got.message
    assert got.rcpt_tos == ["erin@home-tests.net"]
    assert got.mail_from == "reminders@clinic-tests.net"
    assert message["From"].addresses[0].display_name == "Clinic One"
    assert message["From"].addresses[0].addr_spec == "reminders@clinic-tests.net"
    assert message["Subject"] == "Sunscreen"
    # The clinic speaks: its name on the button, not the software's.
    assert "Open the Clinic One app" in text_of(message, "html")
    assert "Open the Clinic One app: " in text_of(message, "plain")
    assert "Companion" not in text_of(message, "plain") + text_of(message, "html")
    assert message.get_content_type() == "multipart/alternative"
    assert "broad-spectrum sunscreen" in text_of(message, "plain")
    assert "broad-spectrum sunscreen" in text_of(message, "html")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(rf"<{PUBLIC}/email/unsubscribe/[^>]+>", message["List-Unsubscribe"])
    settled = row(db, row_id)
    assert settled["status"] == "sent" and "by email" in settled["status_reason"]
    [attempt] = attempts(db, row_id)
    assert (attempt["channel"], attempt["address"], attempt["outcome"]) == (
        "email",
        "erin@home-tests.net",
        "delivered",
    )


def test_push_delivered_means_no_email(app, db, world, smtp, sender, receiver):
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    browser = subscribe(world, api, receiver, "erin")
    row_id = queue(db, erin)
    run(app, db, sender)
    assert len(receiver.messages_for(browser)) == 1
    assert row(db, row_id)["status"] == "sent" and row(db, row_id)["status_reason"] is None
    assert smtp.received == []


def test_a_gone_subscription_falls_back_to_email_once(app, db, world, smtp, sender, receiver):
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    browser = subscribe(world, api, receiver, "erin")
    receiver.script(browser, [410])
    row_id = queue(db, erin)
    run(app, db, sender)
    run(app, db, sender)
    assert len(smtp.wait_for(1)) == 1
    assert [(a["channel"], a["outcome"]) for a in attempts(db, row_id)] == [
        ("push", "gone"),
        ("email", "delivered"),
    ]
    assert row(db, row_id)["status"] == "sent"
    assert "every device unsubscribed" in row(db, row_id)["status_reason"]


def test_push_failing_after_retries_falls_back_to_email(app, db, world, smtp, sender, receiver):
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    browser = subscribe(world, api, receiver, "erin")
    receiver.script(browser, [500])
    row_id = queue(db, erin)
    production = Dispatcher(app)
    settings = production.settings
    settings.max_attempts = 1  # one push attempt, then give up
    dispatch.tick(db, sender, utcnow, "t", settings, email=production.get_email())
    assert [a["channel"] for a in attempts(db, row_id)] == ["push", "email"]
    assert row(db, row_id)["status"] == "sent"
    assert "gave up" in row(db, row_id)["status_reason"]


def test_a_push_service_down_as_long_as_retries_take_falls_back_to_email(
    app, db, world, smtp, sender, receiver
):
    """While a push service is down its rows wait without spending attempts; a client with an
    address must not wait for the reminder's validity to end (12 h) before it is emailed."""
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    for n in range(3):  # three devices answering 503: the service counts as down
        receiver.script(subscribe(world, api, receiver, f"erin-{n}"), [503] * 20)
    finn = world.new_client(world.p1, "Finn", quiet_hours=AWAKE)  # no address: push only
    receiver.script(
        subscribe(world, world.sign_in_client(world.p1, finn["id"]), receiver, "f"), [503] * 20
    )
    erins, finns = queue(db, erin), queue(db, finn)
    production = Dispatcher(app)
    settings, mailer = production.settings, production.get_email()
    dispatch.tick(db, sender, utcnow, "t", settings, email=mailer)
    assert row(db, erins)["status"] == "pending" and smtp.received == []
    assert "waiting for the push service" in row(db, erins)["status_reason"]
    soon = utcnow() + timedelta(seconds=settings.retry_span / 2)
    dispatch.tick(db, sender, lambda: soon, "t", settings, email=mailer)
    assert row(db, erins)["status"] == "pending" and smtp.received == []  # not yet
    later = utcnow() + timedelta(seconds=settings.retry_span + 1)
    dispatch.tick(db, sender, lambda: later, "t", settings, email=mailer)
    assert [m.rcpt_tos for m in smtp.wait_for(1)] == [["erin@home-tests.net"]]
    assert row(db, erins)["status"] == "sent"
    assert row(db, erins)["status_reason"].startswith("sent by email (push: push service down")
    assert row(db, finns)["status"] == "pending"  # without an address it waits for push
    dispatch.tick(db, sender, lambda: later + timedelta(minutes=5), "t", settings, email=mailer)
    assert len(smtp.received) == 1  # once


def test_a_reminder_delivered_to_one_device_is_not_emailed_while_another_waits(
    app, db, world, smtp, sender, receiver
):
    """Delivered on the phone, waiting only for a tablet whose push service is down: that is
    no failed push, so no fallback email however long the service stays down."""
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    with PushReceiver(application_server_key=app.config["VAPID_PUBLIC_KEY"]) as healthy:
        phone = subscribe(world, api, healthy, "erin-phone")
        for n in range(3):
            receiver.script(subscribe(world, api, receiver, f"erin-{n}"), [503] * 20)
        erins = queue(db, erin)
        production = Dispatcher(app)
        settings, mailer = production.settings, production.get_email()
        dispatch.tick(db, sender, utcnow, "t", settings, email=mailer)
        assert len(healthy.messages_for(phone)) == 1
        later = utcnow() + timedelta(seconds=settings.retry_span + 1)
        dispatch.tick(db, sender, lambda: later, "t", settings, email=mailer)
    assert smtp.received == []
    assert [a["channel"] for a in attempts(db, erins)].count("email") == 0


def test_email_only_client_gets_no_push(app, db, world, smtp, sender, receiver):
    erin = email_client(world)
    api = world.sign_in_client(world.p1, erin["id"])
    browser = subscribe(world, api, receiver, "erin")
    world.p1.patch(f"/api/clients/{erin['id']}", {"channels": ["email"]})
    row_id = queue(db, erin)
    run(app, db, sender)
    assert receiver.messages_for(browser) == []
    assert len(smtp.wait_for(1)) == 1
    assert (row(db, row_id)["status"], row(db, row_id)["status_reason"]) == ("sent", None)


def test_both_channels_send_both(app, db, world, smtp, sender, receiver):
    erin = email_client(world, channels=["push", "email"])
    api = world.sign_in_client(world.p1, erin["id"])
    browser = subscribe(world, api, receiver, "erin")
    row_id = queue(db, erin)
    run(app, db, sender)
    assert len(receiver.messages_for(browser)) == 1 and len(smtp.wait_for(1)) == 1
    assert sorted(a["channel"] for a in attempts(db, row_id)) == ["email", "push"]
    run(app, db, sender)
    assert len(smtp.received) == 1  # once


def test_push_only_client_gets_no_email(app, db, world, smtp, sender):
    erin = email_client(world, channels=["push"])
    row_id = queue(db, erin)
    run(app, db, sender)
    assert smtp.received == []
    assert row(db, row_id)["status"] == "skipped"


def test_without_smtp_host_email_is_off(app, db, world, smtp, sender):
    app.config["SMTP_HOST"] = None
    erin = email_client(world)
    row_id = queue(db, erin)
    assert Dispatcher(app).get_email() is None
    run(app, db, sender)
    assert smtp.received == [] and row(db, row_id)["status"] == "skipped"


def test_discreet_mode_says_only_new_aftercare_reminder(app, db, world, smtp, sender):
    erin = email_client(world, discreet=True)
    queue(db, erin, title="Micro-needling aftercare: sunscreen")
    run(app, db, sender)
    message = smtp.wait_for(1)[0].message
    assert message["Subject"] == "New aftercare reminder"
    plain, html = text_of(message, "plain"), text_of(message, "html")
    assert plain.startswith("New aftercare reminder")
    assert 'overflow:hidden">New aftercare reminder</span>' in html
    for text in (plain, html, str(message["Subject"])):
        assert "needling" not in text and "sunscreen" not in text.lower()
        assert "Companion" not in text  # "Open the app to read it."
    assert "Open the app to read it." in plain


def test_one_connection_serves_a_batch(app, db, world, smtp, sender):
    for k in range(5):
        queue(db, email_client(world, name=f"Client{k}"))
    assert run(app, db, sender)["emailed"] == 5
    assert len(smtp.wait_for(5)) == 5 and smtp.connections == 1


def test_refused_and_deferred_addresses(app, db, world, smtp, sender):
    smtp.refuse.update(
        {
            "gone@home-tests.net": "550 5.1.1 no such user",
            "busy@home-tests.net": "451 4.2.0 try later",
        }
    )
    gone = world.new_client(world.p1, "Gone", email="gone@home-tests.net", quiet_hours=AWAKE)
    busy = world.new_client(world.p1, "Busy", email="busy@home-tests.net", quiet_hours=AWAKE)
    fine = email_client(world)
    ids = [queue(db, c) for c in (gone, busy, fine)]
    run(app, db, sender)
    refused, deferred, sent = (row(db, i) for i in ids)
    assert refused["status"] == "failed" and "550" in refused["status_reason"]
    assert deferred["status"] == "pending" and "451" in deferred["status_reason"]
    assert sent["status"] == "sent"
    assert [r.rcpt_tos for r in smtp.received] == [["erin@home-tests.net"]]


def test_an_smtp_server_that_is_down_keeps_the_reminder(app, db, world, smtp, sender):
    app.config["SMTP_PORT"] = smtp.port + 1 if smtp.port < 65535 else 1  # nobody listens there
    row_id = queue(db, email_client(world))
    run(app, db, sender)
    settled = row(db, row_id)
    assert settled["status"] == "pending" and "SMTP server unavailable" in settled["status_reason"]


def test_the_dispatcher_says_in_its_log_when_reminders_must_wait(app, db, world, smtp, caplog):
    """An SMTP server down (or a push service) kept every email waiting without a word in
    the log: at 3 am the operator heard of it from clients who got nothing."""
    app.config["SMTP_PORT"] = smtp.port + 1 if smtp.port < 65535 else 1  # nobody listens there
    queue(db, email_client(world))
    dispatcher = Dispatcher(app)
    with caplog.at_level(logging.WARNING):
        dispatcher.run_once()
        dispatcher.run_once()  # nothing due now: nothing more said
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Reminders:")]
    assert len(said) == 1, said
    assert "0 sent, 1 to retry, 0 failed for good" in said[0]
    assert "SMTP server unavailable" in said[0]


def test_smtp_sign_in(app, db, world, sender):
    with SmtpServer(auth=("mailer", "s3cret-pass")) as server:
        app.config.update(server.config(), PUBLIC_URL=PUBLIC)
        queue(db, email_client(world))
        run(app, db, sender)
        [got] = server.wait_for(1)
        assert (got.tls, got.login) == (False, "mailer")  # SMTP_SECURITY=none: plain


# -- TLS: STARTTLS and TLS from the start, the server's certificate verified ----------------


@pytest.fixture
def certs(tmp_path):
    """A CA made for this test and a certificate it signed for 127.0.0.1."""
    return make_certificates(tmp_path)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_sign_in_trusting_the_configured_ca(app, db, world, sender, certs, security):
    auth = ("mailer", "s3cret-pass")
    with SmtpServer(auth=auth, tls=(security, certs)) as server:
        app.config.update(server.config(), PUBLIC_URL=PUBLIC, SMTP_CA_FILE=str(certs.ca))
        assert app.config["SMTP_SECURITY"] == security
        row_id = queue(db, email_client(world))
        run(app, db, sender)
        [got] = server.wait_for(1)
    assert (got.tls, got.login, got.rcpt_tos) == (True, "mailer", ["erin@home-tests.net"])
    assert got.message["Subject"] == "Sunscreen"
    assert row(db, row_id)["status"] == "sent"
    ok, line = mail.describe(app.config)
    assert ok and f"({security}, as mailer, trusting {certs.ca})" in line


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_server_certificate_gets_no_email(app, db, world, sender, certs, security):
    """Verification is on by default: the system's CAs do not know the test CA, nor does
    another CA given as SMTP_CA_FILE. Nothing is sent (no password either); the reminder waits."""
    other = make_certificates(_other_dir(certs), "Other CA")
    with SmtpServer(auth=("mailer", "s3cret-pass"), tls=(security, certs)) as server:
        app.config.update(server.config(), PUBLIC_URL=PUBLIC)
        first = queue(db, email_client(world))
        run(app, db, sender)
        app.config["SMTP_CA_FILE"] = str(other.ca)
        second = queue(db, email_client(world, "Olga"))
        run(app, db, sender)
        assert server.received == []
    for row_id in (first, second):
        kept = row(db, row_id)
        assert kept["status"] == "pending"
        assert "CERTIFICATE_VERIFY_FAILED" in kept["status_reason"]


def _other_dir(certs):
    other = certs.ca.parent / "other"
    other.mkdir()
    return other


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"SMTP_SECURITY": "ssl"}, "COMPANION_SMTP_SECURITY must be one of none, starttls, tls"),
        ({"MAIL_FROM": None}, "COMPANION_MAIL_FROM is not set: email needs a From address"),
        ({"MAIL_FROM": "reminders"}, "COMPANION_MAIL_FROM must be an email address"),
        ({"SMTP_PORT": 70000}, "COMPANION_SMTP_PORT must be a port number"),
        ({"SMTP_CA_FILE": "/nonexistent/ca.pem"}, "COMPANION_SMTP_CA_FILE cannot be used"),
    ],
)
def test_bad_smtp_settings_are_named(settings, problem):
    cfg = {"SMTP_HOST": "mail.clinic-tests.net", "MAIL_FROM": "r@clinic-tests.net"} | settings
    with pytest.raises(ValueError, match=problem):
        mail.settings_from(cfg)
    assert mail.describe(cfg)[0] is False


@pytest.mark.parametrize("flags", [[], ["--without-push"]])
def test_serve_refuses_to_start_with_bad_email_settings(app, monkeypatch, flags):
    """Email set up (SMTP_HOST) but unusable: serve says so and exits, rather than starting
    and logging each minute that no email can go out."""
    import companion.serve

    def started(*args):
        raise AssertionError("serve started")

    monkeypatch.setattr(companion.serve, "run_granian", started)
    monkeypatch.setenv("COMPANION_VAPID_SUBJECT", "mailto:ops@clinic-tests.net")
    monkeypatch.setenv("COMPANION_SMTP_HOST", "mail.clinic-tests.net")
    monkeypatch.setenv("COMPANION_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("COMPANION_MAIL_FROM", "r@clinic-tests.net")
    result = CliRunner().invoke(main, ["serve", "--port", "1", *flags])
    assert result.exit_code == 1, result.output
    assert "Not starting: reminders could not go out by email" in result.output
    assert "COMPANION_SMTP_SECURITY must be one of none, starttls, tls" in result.output


def test_smtp_defaults():
    found = mail.settings_from({"SMTP_HOST": "mail.x.net", "MAIL_FROM": "Clinic <r@x.net>"})
    assert (found.port, found.security, found.sender, found.envelope_from) == (
        587,
        "starttls",
        "r@x.net",
        "r@x.net",
    )
    assert mail.settings_from({"SMTP_HOST": ""}) is None


# -- one-tap check-in links ---------------------------------------------------------------


def checkin_email(app, db, world, smtp, sender, client=None):
    """Send a check-in reminder by email for a new session of Erin; return (link, session)."""
    erin = client or email_client(world)
    session = world.new_session(world.p1, erin["id"])
    queue(db, erin, "checkin", session["id"], "Day 2 check-in", key="day2-checkin-test")
    run(app, db, sender)
    smtp.wait_for(1)
    [message] = [r.message for r in smtp.received if r.message["Subject"] == "Day 2 check-in"]
    plain = text_of(message, "plain")
    [link] = re.findall(rf"{PUBLIC}(/checkin/link/\S+)", plain)
    assert link in text_of(message, "html")
    return link, session, erin


# Inside the sentence: "until today 20:00" (humane.human_when(starts=False)), never "until Today".
HUMAN_WHEN = r"(today|tomorrow|[A-Z][a-z]+day|[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2}) \d\d:\d\d"


def test_a_one_tap_link_opens_and_submits_that_check_in(app, db, world, smtp, sender):
    link, session, erin = checkin_email(app, db, world, smtp, sender)
    browser = Api(app)  # any browser: no cookie, no invite, no app
    page = browser.get(link)
    assert page.status_code == 200 and b'id="checkin-form"' in page.data
    assert f'data-session-id="{session["id"]}"'.encode() in page.data
    # "until" in the client's words (companion.humane), not a hand-built date.
    assert re.search(rf"check-in only, until {HUMAN_WHEN}\.", page.get_data(as_text=True))
    assert page.headers["Cache-Control"] == "no-store"
    token = link.rsplit("/", 1)[1]
    assert f'data-submit-url="/api/checkin-links/{token}"'.encode() in page.data
    r = browser.post(f"/api/checkin-links/{token}", checkin_body())
    assert r.status_code == 201, r.json
    assert r.json["session_id"] == session["id"] and r.json["assessment"]["status"]
    assert count(app, "checkins", "client_id = ?", (erin["id"],)) == 1
    # It grants nothing else: not the API, not other pages.
    assert browser.get("/api/checkins").status_code == 401
    assert browser.get("/api/me").status_code == 401
    assert browser.get("/reminders").status_code in (302, 401)
    other = world.new_session(world.p1, erin["id"])
    r = browser.post(f"/api/checkin-links/{token}", checkin_body(session_id=other["id"]))
    assert r.status_code == 403


def test_a_forged_or_expired_link_is_refused(app, db, world, smtp, sender):
    link, session, erin = checkin_email(app, db, world, smtp, sender)
    token = link.rsplit("/", 1)[1]
    browser = Api(app)
    assert browser.get(link[:-3] + "abc").status_code == 404
    assert browser.post(f"/api/checkin-links/{token}x", checkin_body()).status_code == 404
    stale = {
        "id": 1,
        "client_id": erin["id"],
        "session_id": session["id"],
        "expires_at": iso(datetime.now(UTC) - timedelta(minutes=1)),
    }
    old = links.checkin_token(app.config["SECRET_KEY"], stale)
    assert browser.get(f"/checkin/link/{old}").status_code == 410
    r = browser.post(f"/api/checkin-links/{old}", checkin_body())
    assert r.status_code == 410 and r.json["error"]["code"] == "link_expired"


def test_an_erased_clients_link_is_refused(app, db, world, smtp, sender):
    link, _, erin = checkin_email(app, db, world, smtp, sender)
    token = link.rsplit("/", 1)[1]
    r = world.p1.delete(f"/api/clients/{erin['id']}")
    assert r.status_code in (200, 204), r.json
    browser = Api(app)
    assert browser.get(link).status_code == 410
    r = browser.post(f"/api/checkin-links/{token}", checkin_body())
    assert r.status_code == 410 and r.json["error"]["code"] == "link_revoked"


# -- one-click unsubscribe ------------------------------------------------------------------


def test_one_click_unsubscribe_switches_email_off(app, db, world, smtp, sender):
    erin = email_client(world)
    queue(db, erin)
    run(app, db, sender)
    header = str(smtp.wait_for(1)[0].message["List-Unsubscribe"])
    path = header.strip("<>").removeprefix(PUBLIC)
    mail_app = app.test_client()  # the mail provider: no cookie, no CSRF token
    page = mail_app.get(path)
    assert page.status_code == 200 and b"<form" in page.data  # asks first: scanners GET links
    assert world.p1.get(f"/api/clients/{erin['id']}").json["channels"] is None
    r = mail_app.post(
        path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200
    assert world.p1.get(f"/api/clients/{erin['id']}").json["channels"] == ["push"]
    assert sql(app, "SELECT actor_kind FROM audit_log WHERE action = 'email_unsubscribed'") == [
        ("client",)
    ]
    row_id = queue(db, erin)
    run(app, db, sender)
    assert len(smtp.received) == 1 and row(db, row_id)["status"] == "skipped"
    assert mail_app.post(path[:-2] + "zz").status_code == 404


def test_an_unsubscribe_link_does_not_expire(app, db, world, smtp, sender, monkeypatch):
    """RFC 8058's one-click POST may come whenever the reader acts on a message still in their
    mailbox; the right to stop emails does not lapse (README: why the link never expires)."""
    erin = email_client(world)
    queue(db, erin)
    run(app, db, sender)
    header = str(smtp.wait_for(1)[0].message["List-Unsubscribe"])
    path = header.strip("<>").removeprefix(PUBLIC)
    later = utcnow() + timedelta(days=400)
    monkeypatch.setattr("companion.reminders.pages.utcnow", lambda: later)
    mail_app = app.test_client()
    one_click = {"data": "List-Unsubscribe=One-Click"}
    one_click["content_type"] = "application/x-www-form-urlencoded"
    assert mail_app.post(path, **one_click).status_code == 200
    assert world.p1.get(f"/api/clients/{erin['id']}").json["channels"] == ["push"]
    # Emails turned back on (by the clinic, as the page says): the old message's link still
    # stops them, as every message's link does.
    again = world.p1.patch(f"/api/clients/{erin['id']}", {"channels": ["push", "email"]})
    assert again.status_code == 200
    assert mail_app.post(path, **one_click).status_code == 200
    assert world.p1.get(f"/api/clients/{erin['id']}").json["channels"] == ["push"]
    # What the link shows to whoever holds it: the clinic's name, never the client's.
    page = mail_app.get(path).get_data(as_text=True)
    assert erin["name"] not in page and erin["email"] not in page


def test_the_record_shows_each_attempt_by_channel(app, db, world, smtp, sender):
    _, session, erin = checkin_email(app, db, world, smtp, sender)
    [step] = [
        n
        for n in world.p1.get(f"/api/sessions/{session['id']}").json["schedule"]
        if n["step_key"] == "day2-checkin-test"
    ]
    assert step["status"] == "sent" and step["emailed"] is True and step["delivered_to"] == 0
    page = world.p1.get(f"/clinic/clients/{erin['id']}")
    assert b"delivered by email" in page.data


# -- urgent alerts by email to the clinic's owners -----------------------------------------


def test_urgent_alerts_are_emailed_to_owners_when_the_clinic_says_so(app, db, world, smtp, sender):
    assert world.p1.get("/api/clinic").json["email_alerts"] is False
    r = world.p1.post(
        "/api/practitioners",
        {"email": "pat@clinic-one.net", "name": "Pat", "password": "long enough password"},
    )
    assert r.status_code == 201
    pat = Api(app)
    pat.post("/api/auth/login", {"email": "pat@clinic-one.net", "password": "long enough password"})
    assert pat.patch("/api/clinic", {"email_alerts": True}).status_code == 403
    r = world.p1.patch("/api/clinic", {"email_alerts": True})
    assert r.status_code == 200 and r.json["email_alerts"] is True
    assert world.p1.patch("/api/clinic", {"email_alerts": "yes"}).status_code == 422

    fever = checkin_body(warning_signs={"fever": True})
    assert world.c1.post("/api/checkins", fever).json["assessment"]["status"] == "urgent"
    run(app, db, sender)
    [got] = smtp.wait_for(1)
    assert got.rcpt_tos == ["one@clinic-one.net"]  # the owner; Pat is not one
    message = got.message
    assert message["Subject"].startswith("Urgent: Alice")
    # The software alerting its operator: from Companion, for the clinic.
    assert message["From"].addresses[0].display_name == "Companion · Clinic One"
    assert f"{PUBLIC}/clinic/clients/{world.client1['id']}" in text_of(message, "plain")
    assert message["List-Unsubscribe"] is None
    alerts = rows(db, "SELECT * FROM notifications WHERE kind = 'alert' ORDER BY owner_id")
    assert [(a["owner_id"], a["status"]) for a in alerts] == [(1, "sent"), (3, "skipped")]


def test_no_alert_emails_unless_the_clinic_turns_them_on(app, db, world, smtp, sender):
    world.c1.post("/api/checkins", checkin_body(warning_signs={"fever": True}))
    run(app, db, sender)
    assert smtp.received == []
    page = world.p1.get("/clinic/settings")
    assert b'name="email_alerts"' in page.data


def test_doctor_reports_the_email_setup(app, smtp):
    from companion.doctor import doctor

    lines = [(ok, m) for ok, m in doctor(app) if m.startswith("email")]
    assert lines == [
        (True, f"email via 127.0.0.1:{smtp.port} (none), from reminders@clinic-tests.net"),
        (True, f"email server 127.0.0.1:{smtp.port} answered"),
    ]
    app.config["SMTP_SECURITY"] = "ssl"
    assert [ok for ok, m in doctor(app) if m.startswith("email")] == [False]


def test_doctor_finds_the_email_server_down_or_refusing_the_sign_in(app):
    """Settings that parse said "ok" while the server was down or refused the password: the
    doctor now connects and signs in as the dispatcher does."""
    from companion.doctor import doctor

    with SmtpServer(auth=("mailer", "s3cret-pass")) as server:
        app.config.update(server.config())
        assert [ok for ok, m in doctor(app) if m.startswith("email server")] == [True]
        app.config["SMTP_PASSWORD"] = "wrong-pass"
        [(ok, line)] = [(ok, m) for ok, m in doctor(app) if m.startswith("email server")]
        # (the test server drops a failed sign-in rather than answering 535: either is said)
        assert not ok and f"email server 127.0.0.1:{server.port}" in line, line
        port = server.port
    [(ok, line)] = [(ok, m) for ok, m in doctor(app) if m.startswith("email server")]
    assert not ok and f"email server 127.0.0.1:{port} cannot be reached" in line, line
    assert "Connection refused" in line


def test_the_client_chooses_channels_on_the_settings_page(app, world):
    erin = email_client(world)
    phone = world.sign_in_client(world.p1, erin["id"])
    html = phone.get("/settings").get_data(as_text=True)
    assert 'name="channels" value="default" checked' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    form = {
        "csrf_token": token,
        "timezone": "Europe/London",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
        "channels": "email",
    }
    assert phone.http.post("/settings", data=form).status_code == 200
    assert phone.get("/api/me").json["client"]["channels"] == ["email"]
    assert 'name="channels" value="email" checked' in phone.get("/settings").get_data(as_text=True)
    # Without an address there is nothing to choose.
    assert 'name="channels"' not in world.c1.get("/settings").get_data(as_text=True)


def test_an_email_only_client_is_not_offered_notifications_that_would_never_come(app, world):
    """Channels without push: "Turn on reminders" would store a device that is never sent to.
    The set-up steps say how reminders come instead and where to choose notifications."""
    erin = email_client(world, channels=["email"])
    phone = world.sign_in_client(world.p1, erin["id"])
    for path in ("/", "/welcome", "/settings"):
        html = phone.get(path).get_data(as_text=True)
        assert 'id="enable-reminders"' not in html, path
        assert "Reminders by email" in html and "come by email, not as notifications" in html
        assert 'in <a href="/settings">Settings</a>' in html
        # Nor the iPhone's Home Screen steps, whose point is notifications.
        assert 'id="step-ios-install"' not in html and 'id="step-ios-safari"' not in html
    assert world.p1.patch(f"/api/clients/{erin['id']}", {"channels": []}).status_code == 200
    html = phone.get("/").get_data(as_text=True)
    assert "Reminders in the app" in html and 'id="enable-reminders"' not in html
    assert phone.patch("/api/me", {"language": "es"}).status_code == 200
    assert "Recordatorios en la app" in phone.get("/").get_data(as_text=True)
    # Push among the channels (or the default): the button is back.
    for channels in (["push", "email"], None):
        world.p1.patch(f"/api/clients/{erin['id']}", {"channels": channels})
        html = phone.get("/").get_data(as_text=True)
        assert 'id="enable-reminders"' in html and "Reminders by email" not in html
        assert 'id="step-ios-install"' in html
    assert 'id="enable-reminders"' in world.c1.get("/").get_data(as_text=True)


# -- push off altogether ------------------------------------------------------------------


def test_with_push_off_reminders_still_go_by_email_once(app, db, world, smtp, receiver):
    """`serve --without-push` (a placeholder VAPID contact): the dispatcher emails what it can
    and keeps the rest for push, while /healthz still says push is off."""
    app.config["VAPID_SUBJECT"] = "mailto:you@example.com"
    erin = email_client(world)
    erin_phone = subscribe(world, world.sign_in_client(world.p1, erin["id"]), receiver, "erin")
    pia = email_client(world, "Pia", channels=["push"])
    subscribe(world, world.sign_in_client(world.p1, pia["id"]), receiver, "pia")
    bob = world.new_client(world.p1, "Bob", quiet_hours=AWAKE)  # a device, no address
    subscribe(world, world.sign_in_client(world.p1, bob["id"]), receiver, "bob")
    erin_row, pia_row, bob_row = queue(db, erin), queue(db, pia), queue(db, bob)

    dispatcher = Dispatcher(app)
    dispatcher.run_once()
    [got] = smtp.wait_for(1)
    assert got.rcpt_tos == ["erin@home-tests.net"] and got.message["Subject"] == "Sunscreen"
    assert receiver.messages_for(erin_phone) == []
    settled = row(db, erin_row)
    assert settled["status"] == "sent"
    assert settled["status_reason"].startswith("sent by email (push: push is off:")
    assert "placeholder" in settled["status_reason"]
    assert [(a["channel"], a["outcome"]) for a in attempts(db, erin_row)] == [
        ("email", "delivered")
    ]
    for waiting in (pia_row, bob_row):  # only push may reach them: they wait for it
        kept = row(db, waiting)
        assert (kept["status"], kept["attempts"]) == ("pending", 0)
        assert kept["status_reason"].startswith("waiting for push, which is off:")
        assert attempts(db, waiting) == []

    for _ in range(2):
        db.conn.execute("UPDATE notifications SET next_attempt_at = ?", (iso(utcnow()),))
        dispatcher.run_once()
    assert len(smtp.received) == 1  # once
    assert row(db, bob_row)["status"] == "pending"
    r = world.anon.get("/healthz")
    assert r.json["push"]["ok"] is False and "placeholder" in r.json["push"]["reason"]
    page = world.p1.get("/clinic/").get_data(as_text=True)
    assert "Reminders cannot go out by push" in page
    assert "Clients with an email address get them by email meanwhile" in page


def test_with_push_and_email_off_nothing_is_claimed(app, db, world, smtp):
    app.config.update(VAPID_SUBJECT="mailto:you@example.com", SMTP_HOST=None)
    row_id = queue(db, email_client(world))
    assert Dispatcher(app).run_once() == {}
    kept = row(db, row_id)
    assert (kept["status"], kept["status_reason"]) == ("pending", None)
