"""Two-factor sign-in for practitioners: TOTP set-up, sign-in with a code (API and pages),
single-use recovery codes, replay refused, throttled like passwords, the clinic's rule."""

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from conftest import PASSWORD, Api, count, sql
from cryptography.fernet import Fernet

from companion import twofactor
from companion.cli import migrate
from companion.db import connect

P1_EMAIL = "one@clinic-one.net"


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def enrol(api) -> tuple[str, list[str]]:
    """Set up two-factor sign-in for the signed-in practitioner; return the secret, codes."""
    setup = api.post("/api/auth/two-factor/setup")
    assert setup.status_code == 200, setup.json
    secret = setup.json["secret"]
    r = api.post("/api/auth/two-factor/confirm", {"code": code_at(secret)})
    assert r.status_code == 200, r.json
    return secret, r.json["recovery_codes"]


def login(app, code=None, email=P1_EMAIL, **kw):
    body = {"email": email, "password": PASSWORD}
    if code is not None:
        body["code"] = code
    api = Api(app)
    return api, api.post("/api/auth/login", body, **kw)


def audited(app, action) -> int:
    return count(app, "audit_log", "action = ?", (action,))


def test_set_up_answers_a_qr_code_and_the_secret_and_changes_nothing_yet(world):
    r = world.p1.post("/api/auth/two-factor/setup")
    assert r.status_code == 200
    secret = r.json["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert r.json["otpauth_url"].startswith("otpauth://totp/Companion:one%40clinic-one.net?")
    assert f"secret={secret}" in r.json["otpauth_url"]
    assert r.json["qr_svg"].startswith("<svg") and "Two-factor QR code" in r.json["qr_svg"]
    status = world.p1.get("/api/auth/two-factor").json
    assert status == {
        "enabled": False,
        "setup_pending": True,
        "required_by_clinic": False,
        "recovery_codes_left": 0,
    }
    # Not on until confirmed: the password alone still signs in.
    assert login(world.app)[1].status_code == 200


def test_a_wrong_code_does_not_turn_it_on(world):
    secret = world.p1.post("/api/auth/two-factor/setup").json["secret"]
    wrong = str((int(code_at(secret)) + 1) % 1_000_000).zfill(6)
    r = world.p1.post("/api/auth/two-factor/confirm", {"code": wrong})
    assert r.status_code == 422 and "code" in r.json["error"]["fields"]
    assert world.p1.get("/api/auth/two-factor").json["enabled"] is False


def test_confirming_without_a_set_up_is_a_conflict(world):
    r = world.p1.post("/api/auth/two-factor/confirm", {"code": "123456"})
    assert r.status_code == 409


def test_once_on_sign_in_needs_a_code(world):
    secret, codes = enrol(world.p1)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
    me = world.p1.get("/api/me").json["practitioner"]
    assert me["two_factor"] is True
    _, r = login(world.app)
    assert r.status_code == 401 and r.json["error"]["code"] == "code_required"
    _, r = login(world.app, "000000" if code_at(secret, 1) != "000000" else "111111")
    assert r.status_code == 401 and r.json["error"]["code"] == "bad_code"
    api, r = login(world.app, code_at(secret, 1))
    assert r.status_code == 200, r.json
    assert api.get("/api/me").status_code == 200
    assert audited(world.app, "two_factor_enabled") == 1
    assert audited(world.app, "two_factor_failed") == 1
    [(detail,)] = sql(
        world.app, "SELECT detail FROM audit_log WHERE action = 'sign_in' ORDER BY id DESC LIMIT 1"
    )
    assert detail == "second_factor=totp"


def test_a_code_is_accepted_once(world):
    secret, _ = enrol(world.p1)
    code = code_at(secret, 1)
    assert login(world.app, code)[1].status_code == 200
    _, again = login(world.app, code)
    assert again.status_code == 401 and again.json["error"]["code"] == "bad_code"
    # The code confirmed with at set-up is spent too (same window).
    _, earlier = login(world.app, code_at(secret))
    assert earlier.status_code == 401


def test_the_replay_check_holds_under_a_race(world, app):
    """Two sign-ins with one code at once: the step is recorded atomically."""
    from companion.accounts import clinics
    from companion.db import connect

    secret, _ = enrol(world.p1)
    db = connect(app.config["DATABASE"])
    try:
        row = clinics.find_practitioner_by_email(db, P1_EMAIL)
        now = datetime.now(UTC)
        code = code_at(secret, 1)
        with app.app_context():  # the stored secret is decrypted with the app's TOTP_KEY
            assert twofactor.use_totp(db, row, code, now) is True
            assert twofactor.use_totp(db, row, code, now) is False  # same stale row read
    finally:
        db.close()


def test_codes_within_one_step_of_clock_drift_are_accepted():
    secret = pyotp.random_base32()
    now = datetime.now(UTC)
    step = pyotp.TOTP(secret).timecode(now)
    for offset in (-1, 0, 1):
        code = pyotp.TOTP(secret).generate_otp(step + offset)
        assert twofactor.totp_step(secret, code, 0, now) == step + offset
    assert twofactor.totp_step(secret, pyotp.TOTP(secret).generate_otp(step + 2), 0, now) is None
    assert twofactor.totp_step(secret, pyotp.TOTP(secret).generate_otp(step), step, now) is None
    for bad in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert twofactor.totp_step(secret, bad, 0, now) is None


def test_a_recovery_code_signs_in_once(world):
    _, codes = enrol(world.p1)
    api, r = login(world.app, codes[0].upper().replace("-", " "))
    assert r.status_code == 200
    _, again = login(world.app, codes[0])
    assert again.status_code == 401
    assert api.get("/api/auth/two-factor").json["recovery_codes_left"] == 9
    stored = [h for (h,) in sql(world.app, "SELECT code_hash FROM recovery_codes")]
    assert len(stored) == 10 and not any(c.replace("-", "") in h for c in codes for h in stored)
    assert all(h.startswith("pbkdf2:sha256:") for h in stored)


def test_wrong_codes_are_throttled_like_passwords(world):
    app, stranger = world.app, {"REMOTE_ADDR": "203.0.113.9"}
    secret, _ = enrol(world.p1)
    statuses = [
        login(app, "999999" if code_at(secret, 1) != "999999" else "888888", environ_base=stranger)[
            1
        ].status_code
        for _ in range(7)
    ]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    # The right code waits too, while the account's delay runs.
    _, r = login(app, code_at(secret, 1), environ_base=stranger)
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_turning_it_off_needs_the_password(world):
    enrol(world.p1)
    r = world.p1.post("/api/auth/two-factor/disable", {"password": "not my password"})
    assert r.status_code == 422 and "password" in r.json["error"]["fields"]
    assert world.p1.post("/api/auth/two-factor/disable", {"password": PASSWORD}).status_code == 204
    assert count(world.app, "recovery_codes") == 0
    assert login(world.app)[1].status_code == 200
    assert audited(world.app, "two_factor_disabled") == 1


def test_new_recovery_codes_replace_the_old_ones(world):
    _, old = enrol(world.p1)
    r = world.p1.post("/api/auth/two-factor/recovery-codes", {"password": PASSWORD})
    assert r.status_code == 200 and len(r.json["recovery_codes"]) == 10
    assert login(world.app, old[0])[1].status_code == 401
    assert login(world.app, r.json["recovery_codes"][0])[1].status_code == 200


def test_setting_up_again_while_on_is_a_conflict(world):
    enrol(world.p1)
    assert world.p1.post("/api/auth/two-factor/setup").status_code == 409


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/auth/two-factor/confirm", {}, "code"),
        ("/api/auth/two-factor/confirm", {"code": 123456}, "code"),
        ("/api/auth/two-factor/confirm", {"code": "x" * 41}, "code"),
        ("/api/auth/two-factor/disable", {}, "password"),
        ("/api/clinic/two-factor", {"required": "yes"}, "required"),
        ("/api/clinic/two-factor", {}, "required"),
    ],
)
def test_bad_bodies_are_422_with_the_field_named(world, path, body, field):
    call = world.p1.put if path == "/api/clinic/two-factor" else world.p1.post
    r = call(path, body)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["fields"]


def signed_in_colleague(world):
    """A practitioner added to clinic one by its owner, signed in: (their JSON, their client)."""
    colleague = world.p1.post(
        "/api/practitioners",
        {"email": "pr@clinic-one.net", "name": "Dr PR", "password": PASSWORD},
    ).json
    pr, r = login(world.app, email=colleague["email"])
    assert r.status_code == 200
    return colleague, pr


def test_an_owner_requires_it_and_a_practitioner_without_it_can_only_enrol(world):
    app = world.app
    # An owner turns it on for themselves first.
    r = world.p1.put("/api/clinic/two-factor", {"required": True})
    assert r.status_code == 409
    secret, _ = enrol(world.p1)
    colleague, pr = signed_in_colleague(world)
    assert pr.put("/api/clinic/two-factor", {"required": True}).status_code == 403
    r = world.p1.put("/api/clinic/two-factor", {"required": True})
    assert r.status_code == 200 and r.json == {"required": True}
    assert world.p1.get("/api/clinic/two-factor").json == {"required": True}
    assert audited(app, "clinic_two_factor_required") == 1
    # The colleague, already signed in, can do nothing but set it up (or sign out).
    r = pr.get("/api/clients")
    assert r.status_code == 403 and r.json["error"]["code"] == "two_factor_setup_required"
    assert pr.get("/api/me").status_code == 200
    assert pr.get("/api/auth/two-factor").json["required_by_clinic"] is True
    page = pr.http.get("/clinic/clients")
    assert page.status_code == 302 and page.headers["Location"].endswith("/clinic/two-factor")
    assert pr.http.get("/clinic/two-factor").status_code == 200
    # Another clinic is not touched.
    assert world.p2.get("/api/clients").status_code == 200
    pr_secret, _ = enrol(pr)
    assert pr.get("/api/clients").status_code == 200
    # Turning it off sends them back to set it up.
    assert pr.post("/api/auth/two-factor/disable", {"password": PASSWORD}).status_code == 204
    assert pr.get("/api/clients").status_code == 403
    assert pr_secret and secret


def test_an_owner_resets_a_colleagues_lost_phone(world):
    colleague, pr = signed_in_colleague(world)
    enrol(pr)
    assert pr.post(f"/api/practitioners/{colleague['id']}/two-factor/reset").status_code == 403
    assert (
        world.p2.post(f"/api/practitioners/{colleague['id']}/two-factor/reset").status_code == 404
    )
    r = world.p1.post(f"/api/practitioners/{colleague['id']}/two-factor/reset")
    assert r.status_code == 200 and r.json["two_factor"] is False
    assert pr.get("/api/me").status_code == 401  # their sessions ended
    assert login(world.app, email=colleague["email"])[1].status_code == 200
    assert audited(world.app, "two_factor_reset") == 1


def test_an_owners_reset_of_a_colleague_without_two_factor_leaves_their_sessions(world):
    # It ended their sessions and audited a reset of nothing.
    colleague, pr = signed_in_colleague(world)
    r = world.p1.post(f"/api/practitioners/{colleague['id']}/two-factor/reset")
    assert r.status_code == 200 and r.json["two_factor"] is False
    assert pr.get("/api/me").status_code == 200
    assert audited(world.app, "two_factor_reset") == 0


def csrf(http, path):
    page = http.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_pages_set_it_up_and_sign_in_in_two_steps(world):
    http = world.app.test_client()
    token = csrf(http, "/clinic/login")
    signin = {"email": P1_EMAIL, "password": PASSWORD, "csrf_token": token}
    assert http.post("/clinic/login", data=signin).status_code == 302
    # Reading the page writes nothing (a GET may be a prefetch, a reload, a look around).
    page = http.get("/clinic/two-factor").get_data(as_text=True)
    assert "Set up two-factor sign-in</button>" in page and "<svg" not in page
    pending = "SELECT totp_pending FROM practitioners WHERE email = ?"
    assert sql(world.app, pending, (P1_EMAIL,)) == [(None,)]
    assert audited(world.app, "two_factor_setup_started") == 0
    # The set-up starts on the button, then shows its QR code.
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = http.post("/clinic/two-factor/start", data={"csrf_token": token})
    assert (r.status_code, r.headers["Location"]) == (303, "/clinic/two-factor")
    page = http.get("/clinic/two-factor").get_data(as_text=True)
    shown = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', page).group(1)
    secret = shown.replace(" ", "")  # shown in groups of four
    assert "<svg" in page
    # The same secret on every visit and reload until it is confirmed, and after a second
    # tap (a resent form) too: the QR code being scanned stays good.
    assert secret in http.get("/clinic/two-factor").get_data(as_text=True)
    assert http.post("/clinic/two-factor/start", data={"csrf_token": token}).status_code == 303
    assert secret in http.get("/clinic/two-factor").get_data(as_text=True)
    assert audited(world.app, "two_factor_setup_started") == 1
    token = csrf(http, "/clinic/two-factor")
    r = http.post("/clinic/two-factor/confirm", data={"csrf_token": token, "code": "000000"})
    assert r.status_code == 422
    r = http.post("/clinic/two-factor/confirm", data={"csrf_token": token, "code": code_at(secret)})
    assert r.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", r.get_data(as_text=True))
    assert len(codes) == 10
    # A new browser: password, then the code step.
    other = world.app.test_client()
    token = csrf(other, "/clinic/login")
    r = other.post("/clinic/login?next=/clinic/clients", data=dict(signin, csrf_token=token))
    assert r.status_code == 302 and "/clinic/login/code" in r.headers["Location"]
    assert other.get("/clinic/clients").status_code == 302  # not signed in yet
    token = csrf(other, "/clinic/login/code")
    r = other.post(r.headers["Location"], data={"csrf_token": token, "code": "000001"})
    assert r.status_code == 401 and "not right" in r.get_data(as_text=True)
    r = other.post(
        "/clinic/login/code?next=/clinic/clients",
        data={"csrf_token": token, "code": code_at(secret, 1)},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/clinic/clients")
    assert other.get("/clinic/clients").status_code == 200


def test_the_code_step_without_a_password_first_goes_back_to_sign_in(world):
    http = world.app.test_client()
    r = http.get("/clinic/login/code")
    assert r.status_code == 302 and r.headers["Location"].endswith("/clinic/login")


def test_the_operator_resets_a_lost_phone_from_the_command_line(world, runner):
    enrol(world.p1)
    assert login(world.app)[1].status_code == 401  # code required
    result = runner.invoke(["reset-two-factor", "--email", P1_EMAIL])
    assert result.exit_code == 0, result.output
    assert "off for one@clinic-one.net; their 1 session ended." in result.output
    assert world.p1.get("/api/me").status_code == 401  # sessions ended
    assert login(world.app)[1].status_code == 200  # the password alone again
    assert count(world.app, "recovery_codes") == 0
    [(actor,)] = sql(
        world.app, "SELECT actor_kind FROM audit_log WHERE action = 'two_factor_reset'"
    )
    assert actor == "operator"
    unknown = runner.invoke(["reset-two-factor", "--email", "nobody@clinic-one.net"])
    assert unknown.exit_code != 0 and "No practitioner" in unknown.output


def test_the_command_line_reset_says_so_when_two_factor_was_not_on(world, runner):
    # It said "their sessions ended" for an account without two-factor sign-in: now it
    # says nothing was on, and leaves the sessions and the audit log as they were.
    result = runner.invoke(["reset-two-factor", "--email", P1_EMAIL])
    assert result.exit_code == 0, result.output
    assert "was not on for one@clinic-one.net" in result.output
    assert "ended" not in result.output
    assert world.p1.get("/api/me").status_code == 200  # still signed in
    assert audited(world.app, "two_factor_reset") == 0


# The secret at rest ---------------------------------------------------------------------------


def instance_files(app) -> dict[str, bytes]:
    """Every file of the instance folder but secrets.json (where the key is meant to be)."""
    folder = Path(app.instance_path)
    return {
        str(p): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "secrets.json"
    }


def test_the_secret_is_stored_encrypted_with_a_key_kept_in_secrets_json(world, app):
    secret, _ = enrol(world.p1)
    for path, data in instance_files(app).items():
        assert secret.encode() not in data, path  # the database, its -wal and -shm
    ((stored,),) = sql(app, "SELECT totp_secret FROM practitioners WHERE email = ?", (P1_EMAIL,))
    secrets_file = Path(app.instance_path) / "secrets.json"
    key = json.loads(secrets_file.read_text())["TOTP_KEY"]
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert Fernet(key).decrypt(stored.encode()).decode() == secret
    # The database has it and nobody can make codes from the database alone; sign-in works.
    assert login(world.app, code_at(secret, 1))[1].status_code == 200


def test_m014_encrypts_secrets_stored_in_clear(world, app):
    secret, _ = enrol(world.p1)
    pending = pyotp.random_base32()
    db = connect(app.config["DATABASE"])
    try:  # as an instance of the version before left it
        db.execute("UPDATE practitioners SET totp_secret = ? WHERE email = ?", [secret, P1_EMAIL])
        db.execute(
            "UPDATE practitioners SET totp_pending = ? WHERE email = ?",
            [pending, "two@clinic-two.net"],
        )
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm014_totp_secrets_encrypted'")
        db.conn.commit()
    finally:
        db.close()
    # The check below can fail: the secret in clear is in the database's files now.
    assert any(secret.encode() in data for data in instance_files(app).values())
    assert migrate(app) == ["m014_totp_secrets_encrypted"]
    for path, data in instance_files(app).items():
        assert secret.encode() not in data and pending.encode() not in data, path
    assert login(world.app, code_at(secret, 1))[1].status_code == 200
    # The colleague's set-up in progress survives too: the page shows the same secret again.
    page = world.p2.get("/clinic/two-factor").get_data(as_text=True)
    assert " ".join(pending[i : i + 4] for i in range(0, len(pending), 4)) in page


def test_a_secret_this_instance_cannot_decrypt_is_a_bad_code_not_a_500(world, app):
    secret, _ = enrol(world.p1)
    app.config["TOTP_KEY"] = Fernet.generate_key().decode()  # secrets.json of another instance
    _, r = login(world.app, code_at(secret, 1))
    assert r.status_code == 401 and r.json["error"]["code"] == "bad_code"
