"""The app factory: config precedence, instance secrets, and the schema migrations."""

import base64
import json
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from companion import config, create_app, db
from companion import migrations as schema
from companion.cli import main, migrate


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """An empty instance folder named by COMPANION_INSTANCE_PATH, and no other COMPANION_* set."""
    for name in config.ENV_SETTINGS:
        monkeypatch.delenv(f"COMPANION_{name}", raising=False)
    path = tmp_path / "instance"
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(path))
    return path


def tables(path: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# Config precedence ------------------------------------------------------------------------


def test_defaults_apply_when_nothing_else_is_set(instance):
    app = create_app()
    assert app.config["LOGIN_MAX_FAILURES"] == config.DEFAULTS["LOGIN_MAX_FAILURES"]
    assert app.config["PRACTITIONER_IDLE_MINUTES"] == 60
    assert app.config["CLIENT_SESSION_DAYS"] == 90
    assert app.config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] is False
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["DATABASE"] == str(instance / "companion.sqlite3")
    assert app.config["PHOTOS_DIR"] == str(instance / "photos")


def test_precedence_defaults_instance_env_test_config(instance, monkeypatch):
    instance.mkdir(parents=True)
    (instance / "config.py").write_text(
        "LOGIN_MAX_FAILURES = 7\n"  # overridden by env and by test_config
        "PUSH_TIMEOUT = 3.5\n"  # overridden by env only
        "CHECKIN_RATE_PER_HOUR = 11\n"  # from the instance folder only
        "INVITE_DAYS = 3\n"  # not an env setting: instance wins over the default
    )
    monkeypatch.setenv("COMPANION_LOGIN_MAX_FAILURES", "9")
    monkeypatch.setenv("COMPANION_PUSH_TIMEOUT", "4.25")
    monkeypatch.setenv("COMPANION_PRACTITIONER_IDLE_MINUTES", "15")
    app = create_app({"LOGIN_MAX_FAILURES": 13})

    assert app.config["LOGIN_MAX_FAILURES"] == 13  # test_config beats all
    assert app.config["PUSH_TIMEOUT"] == 4.25  # env beats the instance file, parsed as float
    assert app.config["CHECKIN_RATE_PER_HOUR"] == 11  # instance beats the default
    assert app.config["INVITE_DAYS"] == 3
    assert app.config["PRACTITIONER_IDLE_MINUTES"] == 15  # env beats the default, parsed as int
    assert app.config["DISPATCH_BATCH"] == config.DEFAULTS["DISPATCH_BATCH"]


def test_instance_config_beats_defaults_without_env(instance):
    instance.mkdir(parents=True)
    (instance / "config.py").write_text("LOGIN_MAX_FAILURES = 7\n")
    assert create_app().config["LOGIN_MAX_FAILURES"] == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PUSH_TIMEOUT = (\n", r"config.py, line 1: '\(' was never closed"),
        ("X = 1\nPUSH_TIMEOUT = TEN\n", "config.py, line 2: NameError: name 'TEN'"),
        ('PUSH_TIMEOUT = "x"\n', "config.py: PUSH_TIMEOUT = 'x': must be a number"),
        ("DISPATCH_BATCH = 0\n", "config.py: DISPATCH_BATCH = 0: must be at least 1"),
        ("DISPATCH_BATCH = 5.5\n", "DISPATCH_BATCH = 5.5: must be a whole number"),
        ('PUSH_ALLOW_PRIVATE_ENDPOINTS = "no"\n', "must be True or False"),
        ("SMTP_PORT = 70000\n", "SMTP_PORT = 70000: must be at most 65535"),
        ("TRUSTED_HOSTS = 5\n", "TRUSTED_HOSTS = 5: must be a list of host names"),
        ("PUBLIC_URL = 443\n", "PUBLIC_URL = 443: must be text"),
    ],
)
def test_a_bad_instance_config_stops_every_command_with_the_setting_named(instance, text, message):
    """instance/config.py is checked like the environment: a typo there started the app with
    a timeout of "x" (every push then failed) and a Python error was a traceback."""
    instance.mkdir(parents=True)
    (instance / "config.py").write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        create_app()
    result = CliRunner().invoke(main, ["init-db"])
    assert result.exit_code == 1 and message.split(": ")[-1].replace("\\", "") in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_instance_config_values_of_the_right_kind(instance):
    instance.mkdir(parents=True)
    (instance / "config.py").write_text(
        'TRUSTED_HOSTS = ["a.clinic-tests.net", ".b.clinic-tests.net"]\n'
        "PUSH_TIMEOUT = 5\nPUSH_ALLOW_PRIVATE_ENDPOINTS = True\n"
        'SECRET_KEY = b"0123456789abcdef0123456789abcdef"\n'
    )
    cfg = create_app().config
    assert cfg["TRUSTED_HOSTS"] == ["a.clinic-tests.net", ".b.clinic-tests.net"]
    assert cfg["PUSH_TIMEOUT"] == 5.0 and cfg["PUSH_ALLOW_PRIVATE_ENDPOINTS"] is True
    assert cfg["SECRET_KEY"] == b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        (" Off ", False),
    ],
)
def test_boolean_env_settings_are_parsed(instance, monkeypatch, raw, expected):
    monkeypatch.setenv("COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS", raw)
    assert create_app().config["PUSH_ALLOW_PRIVATE_ENDPOINTS"] is expected


@pytest.mark.parametrize("raw", ["maybe", "ture", "2", "enabled"])
def test_a_boolean_setting_that_says_neither_stops_with_the_variable_named(
    instance, monkeypatch, raw
):
    monkeypatch.setenv("COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS", raw)
    with pytest.raises(config.ConfigError, match="COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS"):
        create_app()


def test_empty_env_setting_is_ignored(instance, monkeypatch):
    monkeypatch.setenv("COMPANION_LOGIN_MAX_FAILURES", "")
    assert create_app().config["LOGIN_MAX_FAILURES"] == config.DEFAULTS["LOGIN_MAX_FAILURES"]


def test_env_database_and_vapid_subject(instance, monkeypatch, tmp_path):
    monkeypatch.setenv("COMPANION_DATABASE", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("COMPANION_VAPID_SUBJECT", "mailto:ops@clinic-tests.net")
    app = create_app()
    assert app.config["DATABASE"] == str(tmp_path / "elsewhere.db")
    assert app.config["VAPID_SUBJECT"] == "mailto:ops@clinic-tests.net"


def test_env_secret_key_beats_the_generated_one(instance, monkeypatch):
    monkeypatch.setenv("COMPANION_SECRET_KEY", "from-the-environment-" + "x" * 20)
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-the-environment-" + "x" * 20
    stored = json.loads((instance / "secrets.json").read_text())
    assert stored["SECRET_KEY"] != app.config["SECRET_KEY"]


def test_factory_does_not_touch_the_database(instance):
    app = create_app()
    # Migrations run from the CLI, never as a side effect of building the app.
    assert not Path(app.config["DATABASE"]).exists()


# Instance folder and secrets --------------------------------------------------------------


def test_instance_path_comes_from_the_environment(instance):
    app = create_app()
    assert Path(app.instance_path) == instance
    assert instance.is_dir()
    assert (instance / "secrets.json").is_file()


def test_instance_path_defaults_to_instance_in_the_working_directory(tmp_path, monkeypatch):
    for name in config.ENV_SETTINGS:
        monkeypatch.delenv(f"COMPANION_{name}", raising=False)
    monkeypatch.delenv("COMPANION_INSTANCE_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    app = create_app()
    assert Path(app.instance_path) == tmp_path / "instance"
    assert (tmp_path / "instance" / "secrets.json").is_file()


def test_secrets_are_made_once_owner_only_and_reused(instance):
    first = create_app()
    path = instance / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert set(stored) >= {"SECRET_KEY", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"}
    assert len(stored["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == stored["SECRET_KEY"]
    assert first.config["VAPID_PRIVATE_KEY"] == stored["VAPID_PRIVATE_KEY"]
    assert first.config["VAPID_PUBLIC_KEY"] == stored["VAPID_PUBLIC_KEY"]
    # The application server key is an uncompressed P-256 point, base64url without padding.
    public = stored["VAPID_PUBLIC_KEY"]
    assert "=" not in public
    point = base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))
    assert len(point) == 65 and point[0] == 4

    before = path.read_bytes()
    second = create_app()
    assert path.read_bytes() == before
    assert second.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert second.config["VAPID_PRIVATE_KEY"] == first.config["VAPID_PRIVATE_KEY"]
    assert second.config["VAPID_PUBLIC_KEY"] == first.config["VAPID_PUBLIC_KEY"]


def test_missing_vapid_keys_are_added_and_the_secret_key_kept(instance):
    instance.mkdir(parents=True)
    path = instance / "secrets.json"
    path.write_text(json.dumps({"SECRET_KEY": "kept-" + "k" * 40}))
    os.chmod(path, 0o600)
    app = create_app()
    stored = json.loads(path.read_text())
    assert stored["SECRET_KEY"] == "kept-" + "k" * 40 == app.config["SECRET_KEY"]
    assert stored["VAPID_PRIVATE_KEY"] and stored["VAPID_PUBLIC_KEY"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_instances_get_different_secrets(tmp_path, monkeypatch, instance):
    a = create_app()
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "other"))
    b = create_app()
    assert a.config["SECRET_KEY"] != b.config["SECRET_KEY"]
    assert a.config["VAPID_PUBLIC_KEY"] != b.config["VAPID_PUBLIC_KEY"]


# Migrations ------------------------------------------------------------------------------


def test_migrations_on_a_fresh_database_then_a_rerun(instance):
    app = create_app()
    # Migrations are named m001_..., m002_...: applied in that order.
    names = sorted(n for n in vars(schema) if re.fullmatch(r"m\d{3}_\w+", n))
    assert names[:4] == [
        "m001_accounts",
        "m002_sessions_and_protocols",
        "m003_push_outbox",
        "m004_checkins_and_flags",
    ]
    assert migrate(app) == names
    expected = {
        "clinics",
        "practitioners",
        "clients",
        "invites",
        "auth_sessions",
        "login_failures",
        "audit_log",
        "protocols",
        "treatment_sessions",
        "push_subscriptions",
        "notifications",
        "deliveries",
        "checkins",
        "photos",
        "flags",
        "flag_events",
        "_sqlite_migrations",
    }
    assert expected <= tables(app.config["DATABASE"])

    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        applied = conn.execute(
            "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
        assert applied == [("companion", n) for n in names]
        schema_before = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY name"
        ).fetchall()
    finally:
        conn.close()

    assert migrate(app) == []  # idempotent: nothing pending the second time
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(names)
        assert (
            conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
            == schema_before
        )
    finally:
        conn.close()


def test_migrations_keep_data(instance):
    app = create_app()
    migrate(app)
    conn = sqlite3.connect(app.config["DATABASE"])
    conn.execute("INSERT INTO clinics (name, timezone, created_at) VALUES ('Kept', 'UTC', 'now')")
    conn.commit()
    conn.close()
    migrate(app)
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        assert conn.execute("SELECT name FROM clinics").fetchall() == [("Kept",)]
    finally:
        conn.close()


def test_database_is_wal_with_foreign_keys_on(instance):
    app = create_app()
    migrate(app)
    # WAL is a property of the file: a plain connection sees it too.
    conn = sqlite3.connect(app.config["DATABASE"])
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    with app.app_context():
        database = db.get_db()
        assert database.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert database.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        with pytest.raises(sqlite3.IntegrityError):
            database.conn.execute(
                "INSERT INTO clients (clinic_id, name, timezone, created_at, updated_at)"
                " VALUES (999, 'Orphan', 'UTC', 'x', 'x')"
            )


def test_connect_sets_the_pragmas_on_every_connection(instance):
    app = create_app()
    migrate(app)
    one = db.connect(app.config["DATABASE"])
    two = db.connect(app.config["DATABASE"])
    try:
        for conn in (one, two):
            assert conn.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        one.close()
        two.close()


def test_init_db_cli_applies_then_says_up_to_date(instance):
    runner = CliRunner()
    first = runner.invoke(main, ["init-db"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "applied" in first.output
    assert "m001_accounts" in first.output
    assert str(instance / "companion.sqlite3") in first.output

    second = runner.invoke(main, ["init-db"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output
    assert "m001_accounts" not in second.output


def test_an_instance_folder_that_cannot_be_made_is_named_without_a_traceback(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("COMPANION_INSTANCE_PATH", str(tmp_path / "a-file" / "instance"))
    result = CliRunner().invoke(main, ["init-db"])
    assert result.exit_code == 1, result.output
    assert "the instance folder" in result.output and "COMPANION_INSTANCE_PATH" in result.output
    assert not isinstance(result.exception, OSError)


def test_a_database_in_a_missing_folder_says_so_not_restore_from_backup(instance, monkeypatch):
    monkeypatch.setenv("COMPANION_DATABASE", str(instance.parent / "no-such-folder" / "c.sqlite3"))
    for command in (["init-db"], ["doctor"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert "no-such-folder does not exist (check COMPANION_DATABASE" in result.output
        assert "restore" not in result.output
