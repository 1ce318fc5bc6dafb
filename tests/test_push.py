"""The push sender against a real local push service over HTTP (no mocks)."""

import base64
import json
import time
from email.utils import formatdate

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from companion.reminders.push import (
    DISCREET_BODY,
    DISCREET_TITLE,
    MAX_PAYLOAD_BYTES,
    build_payload,
    classify,
    generate_vapid_keys,
    public_key_from_private,
    topic_header,
    validate_subscription,
)
from companion.reminders.sender import Sender
from testkit.processes import free_port
from testkit.push_receiver import PushReceiver, ReceiverProcess, Reply

SUBJECT = "mailto:ops@clinic-real.test"


@pytest.fixture(scope="module")
def vapid_keys():
    return generate_vapid_keys()


@pytest.fixture
def receiver(vapid_keys):
    with PushReceiver(application_server_key=vapid_keys[1]) as running:
        yield running


@pytest.fixture
def sender(vapid_keys):
    with Sender(vapid_keys[0], SUBJECT, timeout=2.0, allow_private=True) as pooled:
        yield pooled


def payload(text="Keep the area clean tonight", notification_id=1):
    return build_payload("Day 1", text, "/me/reminders/1", "reminder-1", notification_id)


# -- keys ---------------------------------------------------------------------


def test_generated_keys_match_and_are_p256_points(vapid_keys):
    pem, public = vapid_keys
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_key_from_private(pem) == public
    assert "=" not in public
    point = base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))
    assert len(point) == 65 and point[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


# -- delivery -------------------------------------------------------------------


def test_delivered_message_decrypts_with_headers_and_valid_vapid(receiver, sender):
    browser = receiver.new_subscription("ana")
    sent = payload()

    outcome = sender.send(browser.info, sent, ttl=3600, urgency="high", topic="reminder-1")

    assert (outcome.kind, outcome.status) == ("delivered", 201)
    assert outcome.elapsed_ms > 0
    [message] = receiver.messages_for(browser)
    assert message.raw == sent
    assert message.payload == json.loads(sent)
    assert (message.ttl, message.urgency, message.topic) == (3600, "high", "reminder-1")
    assert message.claims["aud"] == receiver.base_url
    assert message.claims["sub"] == SUBJECT
    assert receiver.rejected == []


def test_subscription_from_to_json_is_accepted_and_sendable(receiver, sender):
    browser = receiver.new_subscription()
    info, errors = validate_subscription(browser.to_json(), allow_private=True)
    assert errors == {} and info == browser.info
    assert sender.send(info, payload(), ttl=60).kind == "delivered"


def test_pooled_session_keeps_one_connection(receiver, sender):
    browser = receiver.new_subscription()
    for n in range(10):
        assert sender.send(browser.info, payload(notification_id=n), ttl=60).kind == "delivered"
    assert receiver.count_for(browser) == 10
    assert receiver.connections == 1


def test_long_topic_is_hashed_to_a_valid_header(receiver, sender):
    browser = receiver.new_subscription()
    topic = "session 42 / day 2 evening reminder, with spaces and more than 32 chars"
    sender.send(browser.info, payload(), ttl=60, topic=topic)
    [message] = receiver.messages_for(browser)
    assert message.topic == topic_header(topic)
    assert len(message.topic) == 32
    assert topic_header(topic) == topic_header(topic)


def test_zero_ttl_is_sent_as_zero(receiver, sender):
    browser = receiver.new_subscription()
    sender.send(browser.info, payload(), ttl=0, urgency="very-low")
    [message] = receiver.messages_for(browser)
    assert (message.ttl, message.urgency, message.topic) == (0, "very-low", None)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "WebPush abc"}, 401),
        ({"Authorization": "vapid t=a.b.c,k=BAAA"}, 401),
    ],
)
def test_receiver_refuses_requests_without_valid_vapid(receiver, headers, status):
    browser = receiver.new_subscription()
    answer = requests.post(browser.endpoint, data=b"x", headers={"TTL": "60", **headers})
    assert answer.status_code == status
    assert receiver.rejected[0].status == status and receiver.received == []


def test_receiver_process_for_benchmarks(vapid_keys, sender):
    with ReceiverProcess(application_server_key=vapid_keys[1]) as receiver:
        browser = receiver.new_subscription("bench-1")
        assert sender.send(browser.info, payload(), ttl=60).kind == "delivered"
        assert receiver.stats()["received"] == 1


# -- VAPID signing per origin -----------------------------------------------------


def test_vapid_signed_once_per_origin_with_each_origins_aud(vapid_keys, sender):
    with (
        PushReceiver(application_server_key=vapid_keys[1]) as first,
        PushReceiver(application_server_key=vapid_keys[1]) as second,
    ):
        a, b = first.new_subscription(), first.new_subscription()
        for _ in range(3):
            assert sender.send(a.info, payload(), ttl=60).kind == "delivered"
        assert sender.send(b.info, payload(), ttl=60).kind == "delivered"
        assert sender.signings == 1

        c = second.new_subscription()
        assert sender.send(c.info, payload(), ttl=60).kind == "delivered"
        assert sender.send(a.info, payload(), ttl=60).kind == "delivered"
        assert sender.signings == 2

        assert {m.claims["aud"] for m in first.received} == {first.base_url}
        assert {m.claims["aud"] for m in second.received} == {second.base_url}
        assert first.rejected == second.rejected == []


def test_vapid_headers_renewed_an_hour_before_expiry(sender):
    endpoint = "https://push.services.test/wpush/abc"
    now = time.time()
    first = sender.vapid_headers(endpoint, now=now)
    assert sender.vapid_headers(endpoint, now=now + 10.9 * 3600) is first
    assert sender.vapid_headers(endpoint, now=now + 11.1 * 3600) is not first
    assert sender.signings == 2


def test_stale_aud_is_refused_by_the_push_service(vapid_keys, sender):
    with (
        PushReceiver(application_server_key=vapid_keys[1]) as first,
        PushReceiver(application_server_key=vapid_keys[1]) as second,
    ):
        a, c = first.new_subscription(), second.new_subscription()
        # Reproduce the reused-claims bug: the first origin's header sent to the second.
        stale = sender.vapid_headers(a.endpoint)
        sender._vapid_cache[second.base_url] = (stale, int(time.time()) + 3600 * 12)

        outcome = sender.send(c.info, payload(), ttl=60)

        assert (outcome.kind, outcome.status) == ("failed", 401)
        assert "aud" in outcome.reason
        assert second.rejected[0].status == 401


def test_wrong_application_server_key_is_forbidden(vapid_keys):
    other_pem, _ = generate_vapid_keys()
    with (
        PushReceiver(application_server_key=vapid_keys[1]) as receiver,
        Sender(other_pem, SUBJECT, allow_private=True) as sender,
    ):
        browser = receiver.new_subscription()
        outcome = sender.send(browser.info, payload(), ttl=60)
    assert (outcome.kind, outcome.status) == ("failed", 403)
    assert receiver.received == []


# -- answers from the push service --------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "retry_after", "reason"),
    [
        (Reply(410), "gone", None, "HTTP 410"),
        (Reply(404), "gone", None, "HTTP 404"),
        (Reply(429, retry_after=7), "retry", 7.0, "HTTP 429"),
        (Reply(503, retry_after=120), "retry", 120.0, "HTTP 503"),
        (Reply(500), "retry", None, "HTTP 500"),
        (Reply(400, body="BadJwtToken"), "failed", None, "HTTP 400: BadJwtToken"),
        (Reply(413, body="Payload Too Large"), "failed", None, "HTTP 413: Payload Too Large"),
    ],
)
def test_push_service_status_becomes_outcome(receiver, sender, reply, kind, retry_after, reason):
    browser = receiver.new_subscription()
    receiver.respond_status(browser, reply.status, reply.body, reply.retry_after)

    outcome = sender.send(browser.info, payload(), ttl=60)

    assert (outcome.kind, outcome.status) == (kind, reply.status)
    assert outcome.retry_after == retry_after
    assert outcome.reason == reason
    assert receiver.received == []


def test_unknown_endpoint_is_gone(receiver, sender):
    browser = receiver.new_subscription()
    info = dict(browser.info, endpoint=receiver.base_url + "/push/unsubscribed")
    assert sender.send(info, payload(), ttl=60).kind == "gone"


def test_scripted_429_then_delivered(receiver, sender):
    browser = receiver.new_subscription()
    receiver.script(browser, [Reply(429, retry_after=7), 201])
    first = sender.send(browser.info, payload(), ttl=60)
    second = sender.send(browser.info, payload(), ttl=60)
    assert (first.kind, first.retry_after) == ("retry", 7.0)
    assert second.kind == "delivered"
    assert receiver.count_for(browser) == 1


def test_hang_beyond_timeout_is_retry(vapid_keys, receiver):
    browser = receiver.new_subscription()
    receiver.hang(browser, 5)
    with Sender(vapid_keys[0], SUBJECT, timeout=0.5, allow_private=True) as sender:
        outcome = sender.send(browser.info, payload(), ttl=60)
    assert (outcome.kind, outcome.status, outcome.reason) == ("retry", None, "timeout")
    assert 400 < outcome.elapsed_ms < 3000


def test_connection_refused_is_retry(vapid_keys, sender):
    receiver = PushReceiver(application_server_key=vapid_keys[1]).start()
    browser = receiver.new_subscription()
    receiver.stop()
    outcome = sender.send(browser.info, payload(), ttl=60)
    assert (outcome.kind, outcome.status) == ("retry", None)
    assert outcome.reason.startswith("connection error")


def test_proxy_from_the_environment_unless_no_proxy(vapid_keys, receiver, monkeypatch):
    browser = receiver.new_subscription()
    proxy = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy}")
    with Sender(vapid_keys[0], SUBJECT, timeout=2.0, allow_private=True) as sender:
        outcome = sender.send(browser.info, payload(), ttl=60)
    assert (outcome.kind, outcome.status) == ("retry", None)
    assert proxy in outcome.reason and receiver.requests == 0
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Sender(vapid_keys[0], SUBJECT, timeout=2.0, allow_private=True) as sender:
        assert sender.send(browser.info, payload(), ttl=60).kind == "delivered"


def test_corrupt_stored_subscription_fails_without_raising(receiver, sender):
    browser = receiver.new_subscription()
    info = dict(browser.info, p256dh="BAAA")
    outcome = sender.send(info, payload(), ttl=60)
    assert outcome.kind == "failed" and outcome.reason.startswith("cannot send")


@pytest.mark.parametrize(
    ("ttl", "urgency"), [(-1, "normal"), (1.5, "normal"), (True, "normal"), (60, "urgent")]
)
def test_bad_ttl_or_urgency_is_a_caller_error(sender, ttl, urgency):
    info = {"endpoint": "https://push.services.test/x", "p256dh": "x", "auth": "y"}
    with pytest.raises(ValueError):
        sender.send(info, payload(), ttl=ttl, urgency=urgency)


def test_send_many_runs_in_parallel(vapid_keys):
    with (
        PushReceiver(application_server_key=vapid_keys[1], delay_ms=200) as receiver,
        Sender(vapid_keys[0], SUBJECT, max_workers=16, allow_private=True) as sender,
    ):
        browsers = [receiver.new_subscription() for _ in range(20)]
        jobs = [
            (n, b.info, payload(notification_id=n), 3600, "normal", f"n{n}")
            for n, b in enumerate(browsers)
        ]
        started = time.perf_counter()
        results = sender.send_many(jobs)
        elapsed = time.perf_counter() - started

    assert [key for key, _ in results] == list(range(20))
    assert all(outcome.kind == "delivered" for _, outcome in results)
    assert len(receiver.received) == 20
    assert elapsed < 2.0  # 20 x 0.2 s one after another would take 4 s


# -- classify (pure) ----------------------------------------------------------------


def test_classify_retry_after_http_date_relative_to_now():
    now = 1_700_000_000.0
    outcome = classify(503, {"Retry-After": formatdate(now + 90, usegmt=True)}, now=now)
    assert (outcome.kind, outcome.retry_after) == ("retry", 90.0)


@pytest.mark.parametrize(
    ("status", "headers", "error", "kind", "retry_after"),
    [
        (200, {}, None, "delivered", None),
        (202, {}, None, "delivered", None),
        (None, None, "timeout", "retry", None),
        (429, {"Retry-After": "soon"}, None, "retry", None),
        (429, {}, None, "retry", None),
        (401, {}, None, "failed", None),
        (302, {}, None, "failed", None),
    ],
)
def test_classify_table(status, headers, error, kind, retry_after):
    outcome = classify(status, headers, error)
    assert (outcome.kind, outcome.status, outcome.retry_after) == (kind, status, retry_after)


def test_classify_trims_long_bodies():
    outcome = classify(400, {}, body="x" * 10_000)
    assert outcome.kind == "failed" and len(outcome.reason) < 260


# -- validate_subscription -------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


GOOD_POINT = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
)
OFF_CURVE_POINT = b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01"
GOOD = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc:def",
    "expirationTime": None,
    "keys": {"p256dh": b64(GOOD_POINT), "auth": b64(bytes(range(16)))},
}


def with_endpoint(endpoint):
    return dict(GOOD, endpoint=endpoint)


def with_keys(**keys):
    return dict(GOOD, keys=dict(GOOD["keys"], **keys))


def test_good_subscription_is_normalised():
    padded = with_keys(auth=b64(bytes(range(16))) + "==")
    info, errors = validate_subscription(padded, allow_private=False)
    assert errors == {}
    assert info == {
        "endpoint": GOOD["endpoint"],
        "p256dh": GOOD["keys"]["p256dh"],
        "auth": GOOD["keys"]["auth"],
    }


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (None, "subscription", "must be a JSON object"),
        ([GOOD], "subscription", "must be a JSON object"),
        ("https://push", "subscription", "must be a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "endpoint"}, "endpoint", "URL string"),
        (with_endpoint(42), "endpoint", "URL string"),
        (with_endpoint(""), "endpoint", "URL string"),
        (with_endpoint("http://push.services.test/x"), "endpoint", "https"),
        (with_endpoint("ftp://push.services.test/x"), "endpoint", "https"),
        (with_endpoint("https:///nohost"), "endpoint", "host"),
        (with_endpoint("https://push.test:99999/x"), "endpoint", "valid URL"),
        (with_endpoint("https://user:pw@push.services.test/x"), "endpoint", "credentials"),
        (with_endpoint("https://push.services.test/" + "a" * 2048), "endpoint", "2048"),
        (with_endpoint("https://127.0.0.1/push/x"), "endpoint", "public push service"),
        (with_endpoint("https://127.1/push/x"), "endpoint", "public push service"),
        (with_endpoint("https://2130706433/push/x"), "endpoint", "public push service"),
        (with_endpoint("https://[::1]/push/x"), "endpoint", "public push service"),
        (with_endpoint("https://[::ffff:10.0.0.1]/x"), "endpoint", "public push service"),
        (with_endpoint("https://10.1.2.3/x"), "endpoint", "public push service"),
        (with_endpoint("https://172.20.0.1/x"), "endpoint", "public push service"),
        (with_endpoint("https://192.168.1.1/x"), "endpoint", "public push service"),
        (with_endpoint("https://169.254.169.254/latest"), "endpoint", "public push service"),
        (with_endpoint("https://[fd00::1]/x"), "endpoint", "public push service"),
        (with_endpoint("https://0.0.0.0/x"), "endpoint", "public push service"),
        (with_endpoint("https://224.0.0.1/x"), "endpoint", "public push service"),
        (with_endpoint("https://localhost/x"), "endpoint", "public push service"),
        (with_endpoint("https://push.localhost/x"), "endpoint", "public push service"),
        (with_endpoint("https://printer.local/x"), "endpoint", "public push service"),
        (with_endpoint("https://metadata.google.internal/x"), "endpoint", "public push service"),
        (dict(GOOD, expirationTime="tomorrow"), "expirationTime", "null or a number"),
        (dict(GOOD, expirationTime=True), "expirationTime", "null or a number"),
        ({k: v for k, v in GOOD.items() if k != "keys"}, "keys", "object"),
        (dict(GOOD, keys=["p256dh", "auth"]), "keys", "object"),
        (with_keys(p256dh=None), "keys.p256dh", "base64url"),
        (with_keys(p256dh=12345), "keys.p256dh", "base64url"),
        (with_keys(p256dh="not base64!"), "keys.p256dh", "base64url"),
        (with_keys(p256dh=b64(GOOD_POINT[:33])), "keys.p256dh", "65-byte"),
        (with_keys(p256dh=b64(b"\x02" + GOOD_POINT[1:])), "keys.p256dh", "65-byte"),
        (with_keys(p256dh=b64(OFF_CURVE_POINT)), "keys.p256dh", "not a point"),
        (with_keys(auth=None), "keys.auth", "base64url"),
        (with_keys(auth="A"), "keys.auth", "base64url"),
        (with_keys(auth="AAAA+/AAAAAAAAAAAAAAAA"), "keys.auth", "base64url"),
        (with_keys(auth=b64(bytes(15))), "keys.auth", "16 bytes"),
        (with_keys(auth=b64(bytes(32))), "keys.auth", "16 bytes"),
    ],
)
def test_bad_subscription_is_refused(data, field, message):
    info, errors = validate_subscription(data, allow_private=False)
    assert info is None
    assert message in errors[field]


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:8123/push/a", "https://localhost/x", "https://10.0.0.7/x"],
)
def test_private_endpoints_accepted_only_when_allowed(endpoint):
    assert validate_subscription(with_endpoint(endpoint), allow_private=False)[0] is None
    info, errors = validate_subscription(with_endpoint(endpoint), allow_private=True)
    assert errors == {} and info["endpoint"] == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/abc",
        "https://web.push.apple.com/QAbc",
        "https://wns2-by3p.notify.windows.com/w/?token=abc",
    ],
)
def test_real_push_services_accepted(endpoint):
    assert validate_subscription(with_endpoint(endpoint), allow_private=False)[1] == {}


# -- Sender subject -------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "mailto:you@example.com",
        "mailto:ops@example.org",
        "mailto:ops@push.example.net",
        "mailto:ops@clinic.example",
        "mailto:your.email@clinic-real.test",
        "mailto:admin@localhost",
        "https://example.com",
        "https://clinic-real.test/contact",
        "http://clinic-real.test",
        "ops@clinic-real.test",
        "mailto:nobody",
        "",
    ],
)
def test_sender_refuses_placeholder_or_malformed_subject(vapid_keys, subject):
    with pytest.raises(ValueError):
        Sender(vapid_keys[0], subject)


@pytest.mark.parametrize("subject", [SUBJECT, "https://aftercare.clinic-real.test"])
def test_sender_accepts_real_subject(vapid_keys, subject):
    Sender(vapid_keys[0], subject).close()


def test_sender_refuses_a_non_p256_key():
    rsa = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError):
        Sender(rsa, SUBJECT)


# -- build_payload -----------------------------------------------------------------------

TREATMENT_WORDS = ("needl", "micro", "derma", "peel", "retinol", "skin", "redness")


def test_payload_carries_the_notification():
    data = json.loads(build_payload("Day 2", "Avoid retinol", "/me/n/7", "n-7", 7))
    assert data == {
        "title": "Day 2",
        "body": "Avoid retinol",
        "url": "/me/n/7",
        "tag": "n-7",
        "id": 7,
    }


def test_discreet_payload_has_no_treatment_words():
    sent = build_payload(
        "Microneedling day 2",
        "Avoid retinol; some redness of the skin is normal",
        "/me/n/7",
        "n-7",
        7,
        discreet=True,
    )
    data = json.loads(sent)
    assert (data["title"], data["body"]) == (DISCREET_TITLE, DISCREET_BODY)
    assert not any(word in sent.decode().lower() for word in TREATMENT_WORDS)


@pytest.mark.parametrize("body", ["x" * 10_000, "é" * 5_000, '"' * 5_000, "\u2028" * 3_000])
def test_long_body_is_trimmed_under_the_size_bound(body):
    sent = build_payload("Day 1", body, "/me/n/1", "n-1", 1)
    assert len(sent) <= MAX_PAYLOAD_BYTES
    assert json.loads(sent)["body"].endswith("…")


def test_long_payload_still_fits_one_encrypted_record(receiver, sender):
    browser = receiver.new_subscription()
    sent = build_payload("Day 1", "é" * 5_000, "/me/n/1", "n-1", 1)
    assert sender.send(browser.info, sent, ttl=60).kind == "delivered"
    assert receiver.messages_for(browser)[0].raw == sent


def test_payload_too_large_without_body_is_refused():
    with pytest.raises(ValueError):
        build_payload("Day 1", "short", "/me/n/" + "x" * 4000, "n-1", 1)
