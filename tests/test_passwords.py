"""Passwords: the policy wherever one is set, changing your own, and throttled sign-in."""

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD, Api, Cli, count, sql

from companion import throttle
from companion.accounts import passwords

NEW = "tulip garden mornings"
P1_EMAIL = "one@clinic-one.net"

# (password, what the reason says): each is refused wherever a password is set.
REFUSED = [
    ("aaaaaaaaaa", "at least 12"),  # accepted before the policy
    ("1234567890", "at least 12"),  # accepted before the policy
    ("aaaaaaaaaaaa", "too easy to guess"),
    ("123456789012", "common or breached"),
    ("password1234", "common or breached"),
    ("qwertyuiopasdfgh", "common or breached"),
    ("1qaz2wsx3edc", "common or breached"),
    ("iloveyou1234", "common or breached"),
]


def test_the_product_hashes_at_werkzeugs_full_scrypt_cost():
    """conftest.py lowers the cost for the suite; the product, and its hash for unknown emails
    (so a wrong email takes as long as a wrong password), keep scrypt at n=2**15."""
    code = "from companion import credentials as c; print(c.hash_password('x'), c._dummy_hash(c.METHOD))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hashes = run.stdout.split()
    assert len(hashes) == 2 and all(h.startswith("scrypt:32768:8:1$") for h in hashes), hashes


@pytest.mark.parametrize(("password", "reason"), REFUSED)
def test_policy_refuses_short_and_common_passwords(password, reason):
    assert reason in passwords.problem(password)


@pytest.mark.parametrize("password", [PASSWORD, NEW, "long enough password", "Ünïcødé ist schön"])
def test_policy_accepts_long_uncommon_passwords_without_composition_rules(password):
    assert passwords.problem(password) is None


def test_policy_counts_the_persons_own_details_as_known():
    email, name = "ana.lopez@rosewood-clinic.net", "Ana Lopez"
    assert passwords.problem(email, (email, name)) is not None
    assert passwords.problem(email) is None  # only as context is it weak


def test_policy_refuses_nul_and_over_long():
    assert "12 to 200" in passwords.problem("correct horse\x00battery")
    assert "surrogate" in passwords.problem("\ud800correct horse battery")
    assert "12 to 200" in passwords.problem("x" * 150 + " unrelated words " * 4)


@pytest.mark.parametrize(("password", "reason"), REFUSED)
def test_setup_refuses_a_weak_password(client, password, reason):
    body = {
        "clinic_name": "Rosewood",
        "timezone": "Europe/London",
        "email": "ana@rosewood.net",
        "name": "Ana",
        "password": password,
    }
    r = client.post("/api/setup", json=body)
    assert r.status_code == 422, r.json
    assert reason in r.json["error"]["fields"]["password"]
    assert count(client.application, "practitioners") == 0


def test_setup_refuses_a_password_made_of_the_clinics_own_details(client):
    body = {
        "clinic_name": "Rosewood Skin",
        "timezone": "Europe/London",
        "email": "ana@rosewood.net",
        "name": "Ana Lopez",
        "password": "rosewood skin",
    }
    r = client.post("/api/setup", json=body)
    assert r.status_code == 422
    assert "password" in r.json["error"]["fields"]


@pytest.mark.parametrize(("password", "reason"), REFUSED[::2])
def test_adding_a_colleague_refuses_a_weak_password(world, password, reason):
    body = {"email": "new@clinic-one.net", "name": "Dr New", "password": password}
    r = world.p1.post("/api/practitioners", body)
    assert r.status_code == 422
    assert reason in r.json["error"]["fields"]["password"]


@pytest.mark.parametrize("where", ["adding a colleague", "a change"])
def test_the_clinics_own_names_count_as_known_beyond_setup(world, where):
    # Only the setup counted the clinic's name: the same password was refused there and
    # accepted for a colleague or a change.
    assert (
        world.p1.patch("/api/clinic", {"display_name": "Rosewood Skin Studio"}).status_code == 200
    )
    if where == "a change":
        r = change(world.p1, new="Rosewood Skin Studio")
    else:
        body = {"email": "new@clinic-one.net", "name": "Dr New", "password": "Rosewood Skin Studio"}
        r = world.p1.post("/api/practitioners", body)
    assert r.status_code == 422, r.json
    assert "too easy to guess" in r.json["error"]["fields"]["password"]


def surrogate_body(body: dict, field: str) -> dict:
    # JSON may spell an unpaired surrogate ("\ud800"), which cannot be hashed: it was a 500.
    raw = json.dumps(body | {field: "\ud800violet tractor moonbeam"})
    return {"data": raw, "headers": {"Content-Type": "application/json"}}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/practitioners", {"email": "new@clinic-one.net", "name": "Dr New"}, "password"),
        ("/api/auth/password", {"current_password": PASSWORD}, "new_password"),
    ],
)
def test_a_lone_surrogate_in_a_new_password_is_a_422_not_a_500(world, path, body, field):
    r = world.p1.post(path, **surrogate_body(body, field))
    assert r.status_code == 422, r.status_code
    assert "surrogate" in r.json["error"]["fields"]["password"]


def test_setup_refuses_a_lone_surrogate_in_the_password(client):
    body = {"email": "a@b-clinic.net", "name": "A", "clinic_name": "B", "timezone": "UTC"}
    r = client.post("/api/setup", **surrogate_body(body, "password"))
    assert r.status_code == 422 and "surrogate" in r.json["error"]["fields"]["password"]
    assert count(client.application, "practitioners") == 0


@pytest.mark.parametrize(("password", "reason"), REFUSED[1::2])
def test_create_practitioner_refuses_a_weak_password(app, password, reason):
    result = Cli().invoke(
        ["create-practitioner", "--email", "a@b-clinic.net", "--name", "A", "--clinic", "B"]
        + ["--password-stdin"],
        input=password + "\n",
    )
    assert result.exit_code != 0
    assert "password" in result.output and reason in result.output
    assert count(app, "practitioners") == 0


# Changing your own password ----------------------------------------------------------------


def login(api, password=PASSWORD, email=P1_EMAIL, **kw):
    return api.post("/api/auth/login", {"email": email, "password": password}, **kw)


def change(api, current=PASSWORD, new=NEW):
    return api.post("/api/auth/password", {"current_password": current, "new_password": new})


def test_changing_your_password_ends_your_other_sessions(world):
    laptop = Api(world.app)
    assert login(laptop).status_code == 200
    r = change(world.p1)
    assert r.status_code == 204, r.json
    assert world.p1.get("/api/me").status_code == 200  # this session stays
    assert laptop.get("/api/me").status_code == 401  # every other one ends
    assert world.p2.get("/api/me").status_code == 200
    assert login(Api(world.app)).status_code == 401
    assert login(Api(world.app), NEW).status_code == 200
    assert count(world.app, "audit_log", "action = 'password_changed' AND actor_id = 1") == 1


def test_changing_your_password_needs_the_current_one(world):
    r = change(world.p1, current="not my password at all")
    assert r.status_code == 422
    assert "current_password" in r.json["error"]["fields"]
    # A wrong current password counts as a failed sign-in.
    assert count(world.app, "login_failures", "email = ?", (P1_EMAIL,)) == 1
    assert login(Api(world.app)).status_code == 200  # unchanged


@pytest.mark.parametrize(("password", "reason"), REFUSED)
def test_changing_your_password_applies_the_policy(world, password, reason):
    r = change(world.p1, new=password)
    assert r.status_code == 422
    assert reason in r.json["error"]["fields"]["password"]


def test_the_new_password_may_not_be_made_of_your_email(world):
    r = change(world.p1, new="one@clinic-one.net")
    assert r.status_code == 422 and "password" in r.json["error"]["fields"]


def test_a_client_cannot_change_a_password(world):
    assert change(world.c1).status_code == 403
    assert change(world.anon).status_code == 401


def test_the_password_page_changes_it(world):
    http = world.app.test_client()
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', http.get("/clinic/login").get_data(as_text=True)
    ).group(1)
    signin = {"email": P1_EMAIL, "password": PASSWORD, "csrf_token": token}
    assert http.post("/clinic/login", data=signin).status_code == 302
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', http.get("/clinic/password").get_data(as_text=True)
    ).group(1)
    weak = {"csrf_token": token, "current_password": PASSWORD, "password": "aaaaaaaaaaaa"}
    r = http.post("/clinic/password", data=weak)
    assert r.status_code == 422 and "too easy to guess" in r.get_data(as_text=True)
    good = {"csrf_token": token, "current_password": PASSWORD, "password": NEW}
    assert http.post("/clinic/password", data=good).status_code == 302
    assert world.p1.get("/api/me").status_code == 401  # the API session was another one
    assert login(Api(world.app), NEW).status_code == 200


# Throttling, not lock-out -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "free", "cap", "delay"),
    [
        (0, 5, 60, 0),
        (4, 5, 60, 0),
        (5, 5, 60, 5),
        (6, 5, 60, 10),
        (7, 5, 60, 20),
        (8, 5, 60, 40),
        (9, 5, 60, 60),
        (500, 5, 60, 60),
        (30, 20, 900, 900),
    ],
)
def test_the_delay_grows_with_each_failure_up_to_its_cap(failures, free, cap, delay):
    assert throttle.throttle_delay(failures, free, cap) == delay


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_strangers_wrong_passwords_do_not_lock_the_practitioner_out(world):
    app, stranger = world.app, {"REMOTE_ADDR": "203.0.113.9"}
    statuses = [
        login(Api(app), "wrong guess!", environ_base=stranger).status_code for _ in range(30)
    ]
    assert statuses.count(401) == app.config["LOGIN_MAX_FAILURES"]  # then it waits
    assert set(statuses[5:]) == {429}
    # It says how long: "Try again later" left the practitioner guessing at a 5-second wait.
    r = login(Api(app), "wrong guess!", environ_base=stranger)
    wait = r.headers["Retry-After"]
    assert f"Try again in {wait} second" in r.json["error"]["message"], r.json
    # The stranger kept at it from many addresses: the account's delay is at its cap.
    at = iso(datetime.now(UTC))
    for i in range(40):
        sql(
            app,
            "INSERT INTO login_failures (email, address, at) VALUES (?, ?, ?)",
            (P1_EMAIL, f"198.51.100.{i}", at),
        )
    r = login(Api(app), environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) <= throttle.ACCOUNT_MAX_DELAY
    # A minute later the right password works from the practitioner's own address ...
    later = iso(datetime.now(UTC) - timedelta(seconds=throttle.ACCOUNT_MAX_DELAY + 1))
    sql(app, "UPDATE login_failures SET at = ?", (later,))
    assert login(Api(app), environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200


def test_an_address_that_keeps_failing_waits_longer_and_longer(world):
    app, stranger = world.app, {"REMOTE_ADDR": "203.0.113.9"}
    earlier = iso(datetime.now(UTC) - timedelta(minutes=5))
    for i in range(4 * app.config["LOGIN_MAX_FAILURES"] + 10):
        sql(
            app,
            "INSERT INTO login_failures (email, address, at) VALUES (?, ?, ?)",
            (f"guess{i}@clinic-one.net", "203.0.113.9", earlier),
        )
    r = login(Api(app), environ_base=stranger)
    assert r.status_code == 429  # five minutes on, the address still waits (up to the window)
    assert int(r.headers["Retry-After"]) > 60
    minutes = -(-int(r.headers["Retry-After"]) // 60)
    assert f"Try again in {minutes} minutes." in r.json["error"]["message"], r.json
    assert login(Api(app), environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 200
