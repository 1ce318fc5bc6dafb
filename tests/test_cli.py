"""The `companion` command: every subcommand, the operator contract, the demo seed."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, count

from companion.cli import main
from testkit.processes import COMPANION, env_for, wait_for_health

COMMANDS = sorted(main.commands)


def create(runner, email="new@clinic-three.net", clinic="Clinic Three", password=PASSWORD, *extra):
    return runner.invoke(
        [
            "create-practitioner",
            "--email",
            email,
            "--name",
            "Dr New",
            "--clinic",
            clinic,
            *extra,
            "--password-stdin",
        ],
        input=password + "\n",
    )


def assert_clean_failure(result, *phrases):
    """A user error: non-zero exit, a message naming the problem, no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert "Error" in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


# Help -------------------------------------------------------------------------------------


def test_the_expected_commands_exist():
    assert {"run", "worker", "demo", "init-db", "create-practitioner"} <= set(COMMANDS)


def test_top_level_help_lists_every_command(runner):
    result = runner.invoke(["--help"])
    assert result.exit_code == 0
    assert "COMPANION_INSTANCE_PATH" in result.output
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", result.output, re.M), name


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_working_help(runner, name):
    result = runner.invoke([name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {name}" in result.output or f"{name} [OPTIONS]" in result.output
    summary = (main.commands[name].help or "").strip().splitlines()[0]
    assert summary and summary[:40] in " ".join(result.output.split())


def test_run_help_documents_host_and_port(runner):
    out = runner.invoke(["run", "--help"]).output
    assert "--host" in out and "--port" in out


def test_create_practitioner_help_documents_password_stdin(runner):
    out = runner.invoke(["create-practitioner", "--help"]).output
    for option in ("--email", "--name", "--clinic", "--timezone", "--password-stdin"):
        assert option in out


# init-db ----------------------------------------------------------------------------------


def test_init_db_on_a_migrated_database_is_up_to_date(runner, app):
    result = runner.invoke(["init-db"])
    assert result.exit_code == 0
    assert "already up to date" in result.output
    assert app.config["DATABASE"] in result.output


# create-practitioner ----------------------------------------------------------------------


def test_create_practitioner_makes_a_new_clinic(runner, app):
    result = create(
        runner,
        "new@clinic-three.net",
        "Clinic Three",
        PASSWORD,
        "--timezone",
        "America/New_York",
        "--phone",
        "+1 212 555 0100",
    )
    assert result.exit_code == 0, result.output
    assert "Created practitioner" in result.output
    assert "new@clinic-three.net" in result.output
    assert (
        count(
            app,
            "clinics",
            "name = ? AND timezone = ? AND phone = ?",
            ("Clinic Three", "America/New_York", "+1 212 555 0100"),
        )
        == 1
    )
    assert count(app, "practitioners", "email = ?", ("new@clinic-three.net",)) == 1
    # A new clinic starts with the default aftercare protocol.
    assert count(app, "protocols") == 1
    # The password works through the API, and it was stored hashed.
    login = app.test_client().post(
        "/api/auth/login", json={"email": "new@clinic-three.net", "password": PASSWORD}
    )
    assert login.status_code == 200, login.json
    assert login.json["clinic"]["name"] == "Clinic Three"
    assert count(app, "practitioners", "password_hash LIKE ?", (f"%{PASSWORD}%",)) == 0


def test_create_practitioner_reuses_a_clinic_by_name(runner, app):
    assert create(runner, "first@clinic-three.net", "Clinic Three").exit_code == 0
    result = create(runner, "second@clinic-three.net", "Clinic Three")
    assert result.exit_code == 0, result.output
    assert count(app, "clinics") == 1
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        clinic_ids = {r[0] for r in conn.execute("SELECT clinic_id FROM practitioners")}
    finally:
        conn.close()
    assert len(clinic_ids) == 1


def test_create_practitioner_without_a_terminal_reads_one_line(runner, app):
    result = runner.invoke(
        [
            "create-practitioner",
            "--email",
            "pipe@clinic-three.net",
            "--name",
            "Dr Pipe",
            "--clinic",
            "Pipe Clinic",
            "--password-stdin",
        ],
        input=PASSWORD + "\r\nignored second line\n",
    )
    assert result.exit_code == 0, result.output
    login = app.test_client().post(
        "/api/auth/login", json={"email": "pipe@clinic-three.net", "password": PASSWORD}
    )
    assert login.status_code == 200


def test_create_practitioner_prompts_for_the_password_without_the_flag(runner, app):
    result = runner.invoke(
        [
            "create-practitioner",
            "--email",
            "prompt@clinic-three.net",
            "--name",
            "Dr Prompt",
            "--clinic",
            "Prompt Clinic",
        ],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert count(app, "practitioners", "email = ?", ("prompt@clinic-three.net",)) == 1


def test_create_practitioner_without_a_terminal_or_the_flag_says_what_to_do(runner, app):
    result = runner.invoke(
        ["create-practitioner", "--email", "t@clinic-three.net", "--name", "T", "--clinic", "C"]
    )
    assert result.exit_code == 2, result.output
    assert "No terminal to ask for the password" in result.output
    assert "--password-stdin" in result.output and "Aborted" not in result.output
    assert count(app, "practitioners") == 0


@pytest.mark.parametrize(
    "email", ["dup@clinic-three.net", "DUP@Clinic-Three.net", "  dup@clinic-three.net "]
)
def test_duplicate_email_fails_cleanly(runner, app, email):
    assert create(runner, "dup@clinic-three.net", "Clinic Three").exit_code == 0
    result = create(runner, email, "Another Clinic")
    assert_clean_failure(result, "already exists")
    assert count(app, "practitioners") == 1
    # Nothing half-made: the other clinic was not created either.
    assert count(app, "clinics", "name = ?", ("Another Clinic",)) == 0


@pytest.mark.parametrize(
    ("args", "password", "phrase"),
    [
        (["--timezone", "Mars/Olympus_Mons"], PASSWORD, "timezone"),
        (["--timezone", "Europe/Londn"], PASSWORD, "Unknown time zone"),
        (["--timezone", ""], PASSWORD, "timezone"),
        ([], "short", "12"),  # the policy: at least 12 characters (issue 12)
        ([], "", "password"),
        (["--phone", "not a phone"], PASSWORD, "phone"),
    ],
)
def test_bad_input_fails_cleanly(runner, app, args, password, phrase):
    result = create(runner, "bad@clinic-three.net", "Clinic Three", password, *args)
    assert_clean_failure(result, phrase)
    assert count(app, "practitioners") == 0
    assert count(app, "clinics") == 0


@pytest.mark.parametrize(
    ("email", "phrase"),
    [
        ("not-an-email", "email"),
        ("a@" + "b" * 260 + ".net", "email"),
    ],
)
def test_bad_email_fails_cleanly(runner, app, email, phrase):
    assert_clean_failure(create(runner, email), phrase)
    assert count(app, "practitioners") == 0


def test_missing_required_option_fails_cleanly(runner):
    result = runner.invoke(
        ["create-practitioner", "--email", "x@clinic-three.net", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 2
    assert "Missing option" in result.output


def test_password_with_surrounding_spaces_signs_in(runner, app):
    spaced = "  " + PASSWORD + "  "
    assert create(runner, "spaces@clinic-three.net", "Clinic Three", spaced).exit_code == 0
    login = app.test_client().post(
        "/api/auth/login", json={"email": "spaces@clinic-three.net", "password": spaced}
    )
    assert login.status_code == 200, login.json


# demo -------------------------------------------------------------------------------------


def seed(runner) -> tuple[str, str]:
    result = runner.invoke(["demo", "--seed-only"])
    assert result.exit_code == 0, result.output
    found = re.search(r"Demo practitioner: (\S+) / password: (\S+)", result.output)
    assert found, result.output
    assert "/clinic/login" in result.output
    return found.group(1), found.group(2)


def test_demo_seed_only_seeds_clients_with_sessions_and_the_login_works(runner, app):
    email, password = seed(runner)
    assert count(app, "clinics") == 1
    clients = count(app, "clients")
    assert clients >= 3
    # Every demo client has a session, and so a planned schedule.
    assert count(app, "clients", "id NOT IN (SELECT client_id FROM treatment_sessions)") == 0
    assert count(app, "notifications", "kind != 'alert'") > 0
    assert count(app, "checkins") > 0

    http = app.test_client()
    login = http.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.json
    assert login.json["kind"] == "practitioner"
    listed = http.get("/api/clients")
    assert listed.status_code == 200
    assert len(listed.json["clients"]) == clients
    # The demo shows the review queue with something in it, waiting since the check-in came
    # in (hours ago), not since the seed ran.
    assert count(app, "flags", "status = 'open'") >= 1
    since = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert count(app, "flags", f"status = 'open' AND opened_at > '{since}'") == 0
    assert count(app, "checkins", "received_at != taken_at") == 0


def test_demo_refuses_an_instance_that_holds_real_clinics(runner, app):
    """`companion demo` on a production instance added a demo clinic, its clients and an owner
    with a printed password beside the real clinic (whose installed app lost its name)."""
    assert create(runner).exit_code == 0
    before = {t: count(app, t) for t in ("clinics", "practitioners", "clients")}
    for flags in (["--seed-only"], ["--port", "0"]):
        result = runner.invoke(["demo", *flags])
        assert_clean_failure(
            result, "holds other clinics (Clinic Three)", "COMPANION_INSTANCE_PATH"
        )
        assert "password:" not in result.output
    assert {t: count(app, t) for t in before} == before


def test_demo_seed_twice_refreshes_the_password_without_duplicating(runner, app):
    email, old = seed(runner)
    clients = count(app, "clients")
    email2, new = seed(runner)
    assert email2 == email and new != old
    assert count(app, "clients") == clients
    assert count(app, "clinics") == 1
    http = app.test_client()
    assert http.post("/api/auth/login", json={"email": email, "password": old}).status_code == 401
    assert http.post("/api/auth/login", json={"email": email, "password": new}).status_code == 200


# run (a real process) ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def companion_command() -> list[str]:
    script = Path(sys.executable).parent / "companion"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from companion.cli import main; main()"]


def get(url: str, timeout: float = 0.5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def test_run_serves_healthz_on_the_given_host_and_port(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env["COMPANION_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["COMPANION_VAPID_SUBJECT"] = "mailto:ops@clinic-tests.net"
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [*companion_command(), "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Ready when /healthz answers (it fails at once if the server exits). The bound is
        # generous: 8 s was missed at a load average of 10, and a hang still fails the test
        # at the per-test timeout.
        try:
            wait_for_health(port, proc, timeout=90)
        except (RuntimeError, TimeoutError) as e:
            raise AssertionError((tmp_path / "run.log").read_text()) from e
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200, (tmp_path / "run.log").read_text()
        assert b'"ok"' in body
        # It migrated the instance's database on the way up.
        assert (tmp_path / "instance" / "companion.sqlite3").exists()
        status, _ = get(f"http://127.0.0.1:{port}/api/me")
        assert status == 401
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


# What an operator meets at 3 am: bad settings, damaged files, impossible ports ---------------


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [
        ("COMPANION_PUSH_TIMEOUT", "abc", "a number"),
        ("COMPANION_PUSH_TIMEOUT", "0", "more than 0"),
        ("COMPANION_PUSH_TIMEOUT", "nan", "more than 0"),
        ("COMPANION_CLIENT_SESSION_DAYS", "1e309", "a whole number"),
        ("COMPANION_DISPATCH_BATCH", "0", "at least 1"),
        ("COMPANION_PUSH_MAX_ATTEMPTS", "-3", "at least 1"),
        ("COMPANION_PROXY_FIX_HOPS", "-1", "at least 0"),
        ("COMPANION_SMTP_PORT", "99999", "at most 65535"),
    ],
)
@pytest.mark.parametrize("command", ["doctor", "init-db"])
def test_a_bad_setting_is_named_not_a_traceback(
    runner, monkeypatch, command, variable, value, phrase
):
    monkeypatch.setenv(variable, value)
    assert_clean_failure(runner.invoke([command]), variable, phrase)


def test_good_settings_still_load(runner, monkeypatch):
    for variable, value in [
        ("COMPANION_PUSH_TIMEOUT", "2.5"),
        ("COMPANION_PROXY_FIX_HOPS", "0"),
        ("COMPANION_DISPATCH_BATCH", " 50 "),
        ("COMPANION_SMTP_PORT", "2525"),
    ]:
        monkeypatch.setenv(variable, value)
    assert runner.invoke(["init-db"]).exit_code == 0


@pytest.mark.parametrize("damage", ["", "{not json", "[]", '"key"'])
@pytest.mark.parametrize("command", ["doctor", "init-db"])
def test_a_damaged_secrets_file_is_named_and_kept(runner, app, command, damage):
    secrets = Path(app.instance_path) / "secrets.json"
    secrets.write_text(damage)
    assert_clean_failure(runner.invoke([command]), str(secrets), "backup")
    # Never replaced by new keys: that would sign everyone out and orphan every push device.
    assert secrets.read_text() == damage


ANOTHER_PUBLIC_KEY = (  # another instance's: a half copied from elsewhere
    "BL3A7mNQoegoLNj1YnUqUF9pGwC1kgiNLfYnJhZNKBnQqi_r6pAWod10tcVhW-MXPdAUna9TXxKMEU5kO0brU3Y"
)


@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    [
        ("VAPID_PRIVATE_KEY", "garbage", "VAPID_PRIVATE_KEY cannot be used"),
        ("VAPID_PRIVATE_KEY", 42, "VAPID_PRIVATE_KEY cannot be used"),
        ("VAPID_PUBLIC_KEY", ANOTHER_PUBLIC_KEY, "not the public half"),
        ("TOTP_KEY", "short", "TOTP_KEY cannot be used"),
    ],
)
@pytest.mark.parametrize("command", ["doctor", "init-db"])
def test_a_damaged_key_in_the_secrets_file_is_named_and_kept(
    runner, app, command, key, value, phrase
):
    # A garbage VAPID key started serve; the doctor and /healthz said push was fine, and every
    # reminder failed with a line in the dispatcher's log alone.
    secrets = Path(app.instance_path) / "secrets.json"
    stored = json.loads(secrets.read_text())
    stored[key] = value
    secrets.write_text(json.dumps(stored))
    before = secrets.read_text()
    assert_clean_failure(runner.invoke([command]), str(secrets), phrase)
    assert "backup" in runner.invoke([command]).output
    assert secrets.read_text() == before


def test_a_missing_public_key_is_made_from_the_private_one(runner, app):
    secrets = Path(app.instance_path) / "secrets.json"
    stored = json.loads(secrets.read_text())
    public = stored.pop("VAPID_PUBLIC_KEY")
    secrets.write_text(json.dumps(stored))  # was a KeyError traceback
    assert runner.invoke(["init-db"]).exit_code == 0
    assert json.loads(secrets.read_text())["VAPID_PUBLIC_KEY"] == public
    assert json.loads(secrets.read_text())["VAPID_PRIVATE_KEY"] == stored["VAPID_PRIVATE_KEY"]


def test_files_an_older_version_left_readable_are_found_and_made_owner_only(runner, app):
    # An instance made before the files were owner-only (or restored without umask 077)
    # kept its 0644 database and photos after the upgrade, and the doctor said nothing.
    instance = Path(app.instance_path)
    photo = Path(app.config["PHOTOS_DIR"]) / "7" / "a-photo.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"jpeg")
    database = Path(app.config["DATABASE"])
    opened = [instance, photo.parent.parent, photo.parent]
    for path in opened:
        path.chmod(0o755)
    for path in (database, photo, instance / "secrets.json"):
        path.chmod(0o644)
        opened.append(path)
    result = runner.invoke(["doctor"])
    assert result.exit_code == 1, result.output
    problem = next(line for line in result.output.splitlines() if "readable by other" in line)
    assert problem.startswith("PROBLEM") and str(database) in problem, problem
    assert f"chmod -R go= {instance}" in problem and "companion init-db" in problem
    result = runner.invoke(["init-db"])
    assert result.exit_code == 0, result.output
    assert "Made owner-only" in result.output and "companion.sqlite3" in result.output
    for path in opened:
        assert stat.S_IMODE(path.stat().st_mode) in (0o600, 0o700), path
    assert photo.read_bytes() == b"jpeg"
    result = runner.invoke(["doctor"])
    assert "ok       files are for Companion's user only" in result.output, result.output
    assert "Made owner-only" not in runner.invoke(["init-db"]).output  # once


@pytest.mark.parametrize("what", ["instance folder", "secrets.json", "database"])
def test_files_of_another_user_are_named_as_such_not_as_damage(app, what):
    """`sudo companion init-db`, then the service as its own user: the errors blamed a
    config.py that did not exist, or said secrets.json or the database was damaged and to
    restore a backup (older data over good)."""
    instance = Path(app.instance_path)
    target = {
        "instance folder": instance,
        "secrets.json": instance / "secrets.json",
        "database": Path(app.config["DATABASE"]),
    }[what]
    prefix = []
    if os.geteuid() == 0:  # another user's files, and root without its override of modes
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to run as root without CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
        os.chown(target, 65534, 65534)
        target.chmod(0o700 if target.is_dir() else 0o600)
    else:
        target.chmod(0o000)
    try:
        for command in ("init-db", "doctor"):
            r = subprocess.run(
                [*prefix, COMPANION, command],
                env=env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            said = r.stdout + r.stderr
            assert r.returncode == 1 and "Traceback" not in said, said
            assert str(target) in said and "backup" not in said and "config.py" not in said
            if prefix:
                assert f"{target} belongs to nobody, and Companion runs as root" in said, said
                assert f"chown -R root {instance}" in said, said
    finally:
        if prefix:
            os.chown(target, 0, 0)
        target.chmod(0o700 if target.is_dir() else 0o600)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB file system of its own (tmpfs: needs root), to be filled."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
    )
    if os.geteuid() != 0 or mounted.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_side_files_and_photos_of_another_user_are_named(app):
    """A command once run as another user (root with sudo) left -wal/-shm and photos this user
    cannot open: init-db said only SQLITE_CANTOPEN, the doctor nothing about the photos."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to give files away) and setpriv")
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    instance = Path(app.instance_path)
    env = env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net")
    photo = Path(app.config["PHOTOS_DIR"]) / "3" / "a.jpg"
    photo.parent.mkdir(parents=True, mode=0o700)
    photo.write_bytes(b"jpeg")
    for path in (photo, photo.parent):
        os.chown(path, 65534, 65534)
    r = subprocess.run([*prefix, COMPANION, "doctor"], env=env, capture_output=True, text=True)
    line = next(x for x in r.stdout.splitlines() if "files of another user" in x)
    assert line.startswith("PROBLEM") and str(photo.parent) in line, r.stdout  # (not listable)
    assert "belongs to nobody, and Companion runs as root" in line
    wal = Path(app.config["DATABASE"] + "-wal")
    wal.touch(mode=0o600)
    os.chown(wal, 65534, 65534)
    r = subprocess.run([*prefix, COMPANION, "init-db"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"{wal} belongs to nobody, and Companion runs as root here" in r.stderr, r.stderr
    wal.unlink()


def test_a_full_disk_is_said_to_be_full_not_a_database_to_restore(small_disk):
    """`companion worker` (or init-db, serve) started on a full disk said the database could
    not be read and to restore it from a backup: older data over a file that was fine."""
    instance = small_disk / "instance"
    env = env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net")
    subprocess.run([COMPANION, "init-db"], env=env, check=True, capture_output=True)
    filler = small_disk / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
    for command in ("init-db", "worker", "doctor"):
        r = subprocess.run(
            [COMPANION, command], env=env, capture_output=True, text=True, timeout=60
        )
        said = r.stdout + r.stderr
        assert r.returncode == 1 and "Traceback" not in said, said
        assert "MB free on its disk. Free some space" in said, said
        assert "restore the file from your backup" not in said, said
    assert not (instance / ".doctor-probe").exists()  # the doctor's write test left no file
    filler.unlink()
    assert (
        "already up to date"
        in subprocess.run(
            [COMPANION, "init-db"], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    conn = sqlite3.connect(instance / "companion.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_read_only_file_system_is_named_and_the_doctor_goes_on(small_disk):
    """The instance's disk mounted read-only (a failing disk remounted, a wrong fstab): the
    doctor's write test ended in a traceback, and init-db said SQLITE_CANTOPEN."""
    instance = small_disk / "instance"
    env = env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net")
    subprocess.run([COMPANION, "init-db"], env=env, check=True, capture_output=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for command in ("init-db", "doctor"):
        r = subprocess.run(
            [COMPANION, command], env=env, capture_output=True, text=True, timeout=60
        )
        said = r.stdout + r.stderr
        assert r.returncode == 1 and "Traceback" not in said, said
        assert f"{instance} is on a read-only file system" in said, said
        assert "mount it read-write" in said and "restore the file" not in said, said
    assert "PROBLEM  instance folder" in said and "is not writable" in said, said


def test_a_database_upgraded_by_a_newer_version_is_not_run_by_an_older_one(runner, app):
    """A rollback after an upgrade: the older code ran on tables it was not written for."""
    database = app.config["DATABASE"]
    conn = sqlite3.connect(database)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('companion', 'm099_from_a_later_release', '2027-01-01')"
    )
    conn.commit()
    conn.close()
    for command in (["init-db"], ["worker"], ["run", "--port", "0"], ["serve", "--port", "0"]):
        result = runner.invoke(command)
        assert_clean_failure(result, database, "m099_from_a_later_release", "newer version")
        assert "restore the backup made before the upgrade" in result.output
    result = runner.invoke(["doctor"])
    assert result.exit_code == 1, result.output
    assert "PROBLEM  the database was upgraded by a newer version" in result.output


def test_backup_copies_the_database_while_it_is_written_owner_only(runner, app, tmp_path):
    """The README's backup needed the sqlite3 tool, which a minimal server lacks."""
    assert create(runner).exit_code == 0
    writer = sqlite3.connect(app.config["DATABASE"])
    writer.execute("BEGIN IMMEDIATE")  # a request in the middle of its write
    writer.execute("UPDATE clinics SET name = 'Not committed'")
    old = os.umask(0o022)
    try:
        result = runner.invoke(["backup", str(tmp_path)])
    finally:
        os.umask(old)
        writer.rollback()
        writer.close()
    assert result.exit_code == 0, result.output
    [made] = tmp_path.glob("companion-*.sqlite3")
    assert f"to {made}" in result.output and "secrets.json" in result.output
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    copy = sqlite3.connect(made)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT email FROM practitioners").fetchall() == [("new@clinic-three.net",)]
    assert copy.execute("SELECT name FROM clinics").fetchall() == [("Clinic Three",)]
    copy.close()
    again = runner.invoke(["backup", str(made)])  # never written over
    assert_clean_failure(again, str(made), "exists")
    assert_clean_failure(
        runner.invoke(["backup", str(tmp_path / "no" / "x.db")]), "cannot be written"
    )


@pytest.mark.parametrize("command", ["doctor", "init-db"])
def test_a_file_that_is_not_a_database_is_named(runner, app, command):
    database = Path(app.config["DATABASE"])
    for side in ("-wal", "-shm"):
        Path(str(database) + side).unlink(missing_ok=True)
    database.write_bytes(b"not a database, whatever it once was" * 100)
    result = runner.invoke([command])
    if command == "doctor":  # the doctor says it as one of its findings, and goes on
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"PROBLEM  database {database} cannot be read" in result.output, result.output
        assert "instance folder" in result.output
        # A -wal left beside a restored copy would be replayed onto it: move it aside.
        assert "move the file and its -wal and -shm aside" in result.output
    else:
        assert_clean_failure(result, str(database), "not a database")
    assert database.read_bytes().startswith(b"not a database")


def test_the_doctor_before_init_db_says_to_run_it(tmp_path, monkeypatch):
    # It showed SQLite's "no such table: practitioners" and a list of fifteen migrations.
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "fresh"))
    monkeypatch.delenv("COMPANION_VAPID_SUBJECT", raising=False)
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "PROBLEM  the database is not initialised: run companion init-db" in result.output
    assert "no such table" not in result.output and "m001" not in result.output
    assert "PROBLEM  VAPID subject: no VAPID contact" in result.output
    assert CliRunner().invoke(main, ["init-db"]).exit_code == 0
    assert "ok       database migrated" in CliRunner().invoke(main, ["doctor"]).output


@pytest.mark.parametrize("command", ["run", "demo", "serve"])
@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_refused(runner, command, port):
    # 99999 was bound as 34463 (99999 - 65536) without a word.
    result = CliRunner().invoke(main, [command, "--port", port])
    assert result.exit_code == 2, result.output
    assert "--port" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("option", ["--workers", "--threads"])
@pytest.mark.parametrize("value", ["0", "-2"])
def test_serve_needs_at_least_one_worker_and_thread(runner, option, value):
    result = CliRunner().invoke(main, ["serve", option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output
