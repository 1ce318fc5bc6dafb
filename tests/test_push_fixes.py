"""Issue 13, "Push, fixed where it was reproduced wrong": each hole reproduced, then shut.

Quiet hours at send time, one Topic per message, endpoint names resolved and checked
before connecting, one owner's dead endpoints not slowing everyone, a row deleted during
a batch, and a missing VAPID contact said loudly. The push service is
testkit/push_receiver.py, as in test_dispatch.py.
"""

import asyncio
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from test_dispatch import AWAKE, Clock, Outbox, notification

from companion.cli import main
from companion.db import connect, iso, one, rows, utcnow, write
from companion.doctor import doctor
from companion.reminders import devices, health, outbox, push
from companion.reminders import dispatcher as dispatch
from companion.reminders.sender import Sender
from companion.reminders.transport import CheckedResolver, PrivateAddress
from companion.reminders.worker import Dispatcher
from companion.serve import refuse_without_contact
from companion.treatments import store as treatments
from testkit.push_receiver import Reply

NY = "America/New_York"


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz)).astimezone(UTC)


@pytest.fixture
def box(app, db):
    return Outbox(app, db)


def tick(db, sender, clock) -> dict:
    return dispatch.tick(db, sender, clock, "dispatcher-1", dispatch.Settings())


def record_session(box: Outbox, client: dict, performed: datetime, recorded: datetime) -> dict:
    """Record a session at `recorded` (the practitioner enters it later than it happened)."""
    data = {
        "performed_at": performed,
        "areas": ["face"],
        "needle_depth_mm": 0.5,
        "device": "pen",
        "products": [],
        "notes": "",
    }
    return treatments.create_session(box.db, client, box.practitioner_id, data, recorded)


def step_row(db, session_id: int, key: str) -> dict:
    return one(
        db,
        "SELECT * FROM notifications WHERE session_id = :s AND step_key = :k",
        {"s": session_id, "k": key},
    )


def device(box: Outbox, receiver, owner_kind: str, owner_id: int):
    browser = receiver.new_subscription()
    box.subscribe(owner_kind, owner_id, browser)
    return browser


# -- quiet hours at send time ---------------------------------------------------------------


def test_a_session_recorded_at_dawn_is_sent_when_quiet_hours_end(db, box, receiver, sender):
    """Reproduced: performed 20:30, recorded 05:06 in New York, sent at 05:06 local."""
    person = box.client(tz=NY)  # quiet hours 21:00-08:00
    browser = device(box, receiver, "client", person["id"])
    dawn = local(NY, 2025, 6, 10, 5, 6)
    session = record_session(box, person, local(NY, 2025, 6, 9, 20, 30), dawn)

    assert tick(db, sender, Clock(dawn))["quiet"] == 1
    assert receiver.count_for(browser) == 0
    row = step_row(db, session["id"], "after-session")
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["next_attempt_at"] == iso(local(NY, 2025, 6, 10, 8, 0))
    assert row["status_reason"].startswith("held for quiet hours until")

    tick(db, sender, Clock(local(NY, 2025, 6, 10, 8, 0)))
    [message] = receiver.messages_for(browser)
    assert message.payload["id"] == row["id"]
    assert step_row(db, session["id"], "after-session")["status"] == "sent"


def test_a_message_past_its_validity_by_the_end_of_quiet_hours_is_skipped(
    db, box, receiver, sender
):
    person = box.client(tz=NY)
    browser = device(box, receiver, "client", person["id"])
    dawn = local(NY, 2025, 6, 10, 5, 6)
    # after-session is valid 12 h: from 19:00 it runs out at 07:00, before quiet hours end.
    session = record_session(box, person, local(NY, 2025, 6, 9, 19, 0), dawn)

    tick(db, sender, Clock(dawn))

    row = step_row(db, session["id"], "after-session")
    assert (row["status"], row["status_reason"]) == ("skipped", dispatch.QUIET)
    assert receiver.count_for(browser) == 0


def test_a_retry_that_falls_in_quiet_hours_waits_for_their_end(db, box, receiver, sender):
    person = box.client(tz=NY)
    browser = device(box, receiver, "client", person["id"])
    row_id = box.queue(person, local(NY, 2025, 6, 10, 20, 50), valid=timedelta(hours=12))
    receiver.script(browser, [Reply(503, 1200)])  # "come back in 20 minutes": 21:10

    clock = Clock(local(NY, 2025, 6, 10, 20, 50))
    assert tick(db, sender, clock)["retry"] == 1
    clock.now = parse(notification(db, row_id)["next_attempt_at"])
    assert clock.now >= local(NY, 2025, 6, 10, 21, 10)
    requests = receiver.requests

    assert tick(db, sender, clock)["quiet"] == 1
    assert receiver.requests == requests  # nothing sent at night
    assert notification(db, row_id)["next_attempt_at"] == iso(local(NY, 2025, 6, 11, 8, 0))


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_urgent_alerts_to_practitioners_go_out_at_night(db, box, receiver, sender):
    person = box.client(tz=NY)
    device(box, receiver, "client", person["id"])
    phone = device(box, receiver, "practitioner", box.practitioner_id)
    night = local(NY, 2025, 6, 10, 3, 0)
    session = record_session(box, person, night - timedelta(hours=30), night - timedelta(hours=30))
    flag = {"id": 7, "severity": "urgent", "rule": "U3", "reason": "Pus"}
    with write(db):
        outbox.queue_alerts(db, person, session, flag, [box.practitioner_id], night)

    tick(db, sender, Clock(night))

    [message] = receiver.messages_for(phone)
    assert message.urgency == "high" and message.payload["title"].startswith("Urgent")


# -- one topic per message ---------------------------------------------------------------------


def test_two_alerts_for_one_session_do_not_replace_each_other(db, box, receiver, sender):
    """Reproduced: a fever and a pus alert shared `alert-17`; an offline phone kept one."""
    person = box.client(quiet_hours=AWAKE)
    phone = device(box, receiver, "practitioner", box.practitioner_id)
    now = utcnow()
    session = record_session(box, person, now - timedelta(hours=30), now - timedelta(hours=30))
    with write(db):
        for flag_id, rule in ((1, "U1"), (2, "U3")):
            flag = {"id": flag_id, "severity": "urgent", "rule": rule, "reason": rule}
            outbox.queue_alerts(db, person, session, flag, [box.practitioner_id], now)

    tick(db, sender, Clock(now))

    assert sorted(m.topic for m in receiver.messages_for(phone)) == ["flag-1", "flag-2"]


def test_two_reminders_due_together_have_their_own_topics(db, box, receiver, sender):
    person = box.client(quiet_hours=AWAKE)
    browser = device(box, receiver, "client", person["id"])
    performed = utcnow() - timedelta(minutes=5)
    first = record_session(box, person, performed, performed)
    second = record_session(box, person, performed, performed)

    tick(db, sender, Clock(utcnow()))

    topics = [m.topic for m in receiver.messages_for(browser)]
    assert sorted(topics) == sorted(f"s{s['id']}-after-session" for s in (first, second))


def test_only_the_same_step_sent_again_shares_a_topic():
    step = {"id": 10, "session_id": 5, "step_key": "day2-checkin", "flag_id": None}
    assert dispatch.topic_for(step) == dispatch.topic_for({**step, "id": 11})  # re-planned
    assert dispatch.topic_for(step) != dispatch.topic_for({**step, "step_key": "day3-checkin"})
    long_key = {**step, "step_key": "a-rather-long-step-key-of-forty-chars"}
    topic = dispatch.topic_for(long_key)
    assert len(topic) <= 32 and topic.replace("-", "").replace("_", "").isalnum()
    assert dispatch.topic_for({**step, "step_key": None, "session_id": None}) == "n-10"


# -- names resolved, and refused, before connecting ----------------------------------------------


def hostname_endpoint(browser, host: str) -> dict:
    return {**browser.info, "endpoint": browser.info["endpoint"].replace("127.0.0.1", host)}


def loopback_name() -> str:
    """This machine's name, which resolves to a loopback address (skip where it does not)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if not all(a.startswith("127.") or a == "::1" for a in addresses):
        pytest.skip(f"{name} resolves to {addresses}, not loopback")
    return name


def test_a_name_resolving_to_this_machine_is_refused_at_send_time(app, receiver):
    """Reproduced: https://<hostname>:9400/ passed the check and reached 127.0.0.1."""
    browser = receiver.new_subscription()
    subscription = hostname_endpoint(browser, loopback_name())
    cfg = app.config
    with Sender(cfg["VAPID_PRIVATE_KEY"], cfg["VAPID_SUBJECT"], timeout=2.0) as strict:
        outcome = strict.send(subscription, b'{"title": "x"}', ttl=60)
        assert outcome.kind == "failed" and "non-public address" in outcome.reason
        literal = strict.send(browser.info, b'{"title": "x"}', ttl=60)
        assert literal.kind == "failed" and literal.reason.startswith("refused")
    assert receiver.requests == 0
    with Sender(cfg["VAPID_PRIVATE_KEY"], cfg["VAPID_SUBJECT"], allow_private=True) as tests:
        outcome = tests.send(subscription, b'{"title": "x"}', ttl=60)
    assert receiver.requests == 1, outcome  # reached (the receiver may refuse the audience)


def test_the_connection_goes_to_the_address_that_was_checked(app, receiver, monkeypatch):
    """A second lookup could be answered differently (DNS rebinding): there is none."""
    browser = receiver.new_subscription()
    answers = ["192.0.2.1", "127.0.0.1"]  # checked: not public either; then this machine
    looked_up = []
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "push.rebind.test":
            return real(host, port, *args, **kwargs)
        looked_up.append(host)
        address = answers[min(len(looked_up), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    cfg = app.config
    with Sender(cfg["VAPID_PRIVATE_KEY"], cfg["VAPID_SUBJECT"], timeout=1.5) as strict:
        outcome = strict.send(hostname_endpoint(browser, "push.rebind.test"), b"{}", ttl=60)
    assert outcome.kind == "failed" and "192.0.2.1" in outcome.reason
    assert looked_up == ["push.rebind.test"] and receiver.requests == 0


def test_the_resolver_refuses_private_answers_unless_allowed():
    async def resolve(allow_private: bool) -> list:
        return await CheckedResolver(allow_private).resolve("localhost", 443)

    with pytest.raises(PrivateAddress):
        asyncio.run(resolve(False))
    assert asyncio.run(resolve(True))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("2002:c0a8:101::", False),  # 6to4 around 192.168.1.1
        ("192.88.99.1", False),  # the 6to4 relays' anycast block (deprecated)
        ("::ffff:127.0.0.1", False),
        ("2002:808:808::", True),  # 6to4 around 8.8.8.8
        ("::ffff:8.8.8.8", True),
        ("2606:4700::1111", True),
    ],
)
def test_addresses_inside_addresses_are_judged_too(address, public):
    """A resolver's answer that wraps a private IPv4 address (6to4) is not a public one."""
    assert push.is_public_address(address) is public


# -- one client cannot slow everyone ----------------------------------------------------------------


def test_an_owner_keeps_at_most_ten_live_devices(db):
    now = utcnow()
    keys = {"p256dh": "x", "auth": "y"}
    for n in range(12):
        devices.subscribe(db, "client", 1, {"endpoint": f"https://push.test/{n}", **keys}, "", now)
    live = [s["endpoint"] for s in devices.subscriptions(db, "client", 1) if s["gone_at"] is None]
    assert live == [f"https://push.test/{n}" for n in range(2, 12)]  # the oldest retired
    devices.subscribe(db, "client", 1, {"endpoint": "https://push.test/2", **keys}, "", now)
    live = [s["endpoint"] for s in devices.subscriptions(db, "client", 1) if s["gone_at"] is None]
    assert len(live) == devices.MAX_LIVE_DEVICES and "https://push.test/2" in live


def test_the_client_page_says_a_retired_device_was_retired_not_refused(world, db):
    """A device retired by the cap is not one its push service refused (410): say which."""
    keys = {"p256dh": "x", "auth": "y"}
    cid = world.client1["id"]
    for n in range(devices.MAX_LIVE_DEVICES + 1):
        devices.subscribe(
            db, "client", cid, {"endpoint": f"https://push.test/{n}", **keys}, "", utcnow()
        )
    refused, _ = devices.subscribe(
        db, "client", cid, {"endpoint": "https://push.test/x", **keys}, "", utcnow()
    )
    with write(db):
        db.conn.execute(
            "UPDATE push_subscriptions SET gone_at = ? WHERE id = ?", (iso(utcnow()), refused["id"])
        )
        db.conn.execute(
            "INSERT INTO deliveries (notification_id, subscription_id, attempt, at, status_code,"
            " outcome, reason) SELECT id, ?, 1, ?, 410, 'gone', 'gone (410)' FROM notifications"
            " WHERE client_id = ? LIMIT 1",
            (refused["id"], iso(utcnow()), cid),
        )
    page = world.p1.get(f"/clinic/clients/{cid}").get_data(as_text=True)
    assert page.count("retired: newer devices took its place, at most 10 at once") == 2
    assert page.count("the push service no longer accepts it") == 1


class DeadPort:
    """A port that takes a few connections and never answers; the rest hang in SYN."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def test_300_dead_endpoints_for_one_client_do_not_delay_another_owner(app, db, box, receiver):
    """Reproduced: 300 dead subscriptions for one client made another's reminder 20 s late."""
    flooder = box.client(name="Flooder", quiet_hours=AWAKE)
    other = box.client(name="Other", quiet_hours=AWAKE)
    keys = receiver.new_subscription().info
    dead = DeadPort()
    try:
        with write(db):  # stored before the cap existed, or by hand: send time must cope
            db.conn.executemany(
                "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
                " created_at) VALUES ('client', :owner, :endpoint, :p256dh, :auth, :at)",
                [
                    {
                        **keys,
                        "owner": flooder["id"],
                        "endpoint": f"http://127.0.0.1:{dead.port}/dead/{n}",
                        "at": iso(utcnow()),
                    }
                    for n in range(300)
                ],
            )
        phone = device(box, receiver, "client", other["id"])
        due = utcnow()
        box.queue(flooder, due - timedelta(seconds=1))  # first in due order
        box.queue(other, due)
        cfg = app.config
        # The production timeout (10 s); the test's sender allows local endpoints.
        with Sender(cfg["VAPID_PRIVATE_KEY"], cfg["VAPID_SUBJECT"], allow_private=True) as s:
            started = time.time()
            worker = threading.Thread(target=tick_in_thread, args=(app, s))
            worker.start()
            try:
                assert receiver.wait_for(1, timeout=15)
                [message] = receiver.messages_for(phone)
                assert message.received_at - started < 2.0
            finally:
                worker.join(30)
    finally:
        dead.close()


def tick_in_thread(app, sender) -> None:
    own = connect(app.config["DATABASE"])  # SQLite connections stay in their thread
    try:
        tick(own, sender, utcnow)
    finally:
        own.close()


# -- a deleted row does not roll back a batch -------------------------------------------------------


class DeletingSender:
    """Erase one client and remove another's device while the batch is out."""

    def __init__(self, sender, during):
        self.sender, self.during = sender, during

    def send_many(self, jobs):
        results = self.sender.send_many(jobs)
        self.during()
        return results


def test_erasing_a_client_or_removing_a_device_mid_batch_keeps_the_others(
    app, db, box, receiver, sender, tmp_path
):
    """Reproduced: FOREIGN KEY constraint failed in _record rolled the whole batch back."""
    erased, removed, bystander = (
        box.client(name=name, quiet_hours=AWAKE) for name in ("Erased", "Removed", "Bystander")
    )
    browsers = {p["id"]: device(box, receiver, "client", p["id"]) for p in (erased, removed)}
    tablet = device(box, receiver, "client", removed["id"])
    device(box, receiver, "client", bystander["id"])
    now = utcnow()
    ids = {p["id"]: box.queue(p, now - timedelta(seconds=1)) for p in (erased, removed, bystander)}

    def during():
        other = connect(app.config["DATABASE"])
        try:
            with write(other):  # erasure's deletes (its rows cascade from the client's)
                ids = {"client_id": erased["id"]}
                other.conn.execute(
                    "DELETE FROM push_subscriptions WHERE owner_kind = 'client'"
                    " AND owner_id = :client_id",
                    ids,
                )
                other.conn.execute("DELETE FROM clients WHERE id = :client_id", ids)
            devices.unsubscribe(other, "client", removed["id"], browsers[removed["id"]].endpoint)
        finally:
            other.close()

    tick(db, DeletingSender(sender, during), Clock(now))

    assert notification(db, ids[bystander["id"]])["status"] == "sent"
    assert notification(db, ids[removed["id"]])["status"] == "sent"
    assert (
        one(db, "SELECT 1 AS x FROM notifications WHERE id = :i", {"i": ids[erased["id"]]}) is None
    )
    tablet_rows = rows(
        db,
        "SELECT d.outcome FROM deliveries d JOIN push_subscriptions s ON s.id = d.subscription_id"
        " WHERE s.endpoint = :e",
        {"e": tablet.endpoint},
    )
    assert tablet_rows == [{"outcome": "delivered"}]
    assert one(db, "SELECT count(*) AS n FROM notifications WHERE status = 'leased'")["n"] == 0


# -- say it loudly when nothing can be sent -----------------------------------------------------------

PLACEHOLDER = "mailto:you@example.com"


def test_the_contact_falls_back_to_the_first_practitioner_and_refuses_placeholders(app, db):
    assert health.contact({"VAPID_SUBJECT": None}, db) == (None, health.NO_CONTACT)
    Outbox(app, db)  # dr@clinic-one.net
    assert health.contact({"VAPID_SUBJECT": None}, db) == ("mailto:dr@clinic-one.net", None)
    subject, problem = health.contact({"VAPID_SUBJECT": PLACEHOLDER}, db)
    assert subject is None and "placeholder" in problem
    # A stray space or newline from an environment file is not a wrong contact.
    real = "mailto:ops@clinic-one.net"
    assert health.contact({"VAPID_SUBJECT": f" {real}\n"}, db) == (real, None)
    assert health.configured_contact({"VAPID_SUBJECT": f"{real} "}) is None


def test_doctor_and_the_dispatcher_agree_on_a_fresh_demo(app, db):
    """Reproduced: doctor failed on a demo (no subject set) that sent fine."""
    app.config["VAPID_SUBJECT"] = None
    Outbox(app, db)
    vapid = [ok for ok, message in doctor(app) if message.startswith("VAPID subject")]
    assert vapid == [True]
    assert Dispatcher(app).get_sender(db) is not None

    app.config["VAPID_SUBJECT"] = PLACEHOLDER
    vapid = [ok for ok, message in doctor(app) if message.startswith("VAPID subject")]
    assert vapid == [False]
    assert Dispatcher(app).get_sender(db) is None


def test_healthz_and_the_practitioner_pages_say_when_reminders_cannot_go_out(world):
    r = world.anon.get("/healthz")
    assert (r.status_code, r.json) == (200, {"status": "ok", "push": {"ok": True}})
    assert "Reminders cannot go out" not in world.p1.get("/clinic/").get_data(as_text=True)

    world.app.config["VAPID_SUBJECT"] = PLACEHOLDER
    r = world.anon.get("/healthz")
    assert r.status_code == 200 and r.json["push"]["ok"] is False
    assert "placeholder" in r.json["push"]["reason"]
    page = world.p1.get("/clinic/").get_data(as_text=True)
    assert "Reminders cannot go out" in page
    assert "by email meanwhile" not in page  # this instance has no SMTP server
    assert "Reminders cannot go out" not in world.c1.get("/").get_data(as_text=True)


def test_serve_refuses_to_start_without_a_usable_contact(app):
    app.config["VAPID_SUBJECT"] = PLACEHOLDER
    with pytest.raises(SystemExit, match="--without-push"):
        refuse_without_contact(app)
    app.config["VAPID_SUBJECT"] = "mailto:ops@clinic-tests.net"
    refuse_without_contact(app)  # no exit


def test_serve_command_refuses_and_documents_its_flag(app, monkeypatch):
    monkeypatch.setenv("COMPANION_VAPID_SUBJECT", PLACEHOLDER)
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 1 and "--without-push" in result.output
    assert "--without-push" in CliRunner().invoke(main, ["serve", "--help"]).output
