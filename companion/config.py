"""Configuration: defaults, then the instance folder, then COMPANION_* environment variables."""

import json
import os
import pwd
import secrets
import traceback
from pathlib import Path

from cryptography.fernet import Fernet
from flask import Flask

from companion.reminders.push import generate_vapid_keys, public_key_from_private

DEFAULTS = {
    "DATABASE": None,  # set to <instance>/companion.sqlite3 when not given
    "PHOTOS_DIR": None,  # set to <instance>/photos when not given
    "VAPID_SUBJECT": None,  # the operator's real contact: mailto:... or https://...
    "PUSH_ALLOW_PRIVATE_ENDPOINTS": False,  # tests only: push endpoints on loopback
    "PUSH_TIMEOUT": 10.0,
    # Email: off without SMTP_HOST (reminders/mail.py reads and checks these).
    "SMTP_HOST": None,
    "SMTP_PORT": None,  # 25, 587 or 465 by SMTP_SECURITY when not given
    "SMTP_SECURITY": "starttls",  # none | starttls | tls
    "SMTP_USER": None,
    "SMTP_PASSWORD": None,
    "SMTP_TIMEOUT": 10.0,
    "SMTP_CA_FILE": None,  # CA bundle (PEM) for the SMTP server's certificate; system's if None
    "MAIL_FROM": None,  # the From address; the clinic's name is shown beside it
    "MAIL_ENVELOPE_FROM": None,  # where bounces go; MAIL_FROM when not given
    "PUSH_MAX_ATTEMPTS": 6,
    "DISPATCH_BATCH": 500,
    "DISPATCH_LEASE_SECONDS": 120,
    "PRACTITIONER_IDLE_MINUTES": 60,
    "PRACTITIONER_ABSOLUTE_HOURS": 12,
    "CLIENT_SESSION_DAYS": 90,
    "CLIENT_IDLE_DAYS": 60,  # a phone unused this long is signed out
    "INVITE_DAYS": 7,
    "LOGIN_MAX_FAILURES": 5,  # per account and per address within LOGIN_WINDOW_MINUTES
    "LOGIN_WINDOW_MINUTES": 15,
    "CHECKIN_RATE_PER_HOUR": 60,
    "PHOTO_RATE_PER_HOUR": 30,  # photo uploads per client per hour (refused ones count)
    "CALENDAR_RATE_PER_HOUR": 60,  # calendar feed fetches per token per hour, per worker
    "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    "PUBLIC_URL": None,  # e.g. https://aftercare.example-clinic.com, for invite links
    "TRUSTED_HOSTS": None,  # host names this installation answers to; others get 400
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PROXY_FIX_HOPS": 0,
}

# Settings read from COMPANION_<NAME> environment variables, with their types.
ENV_SETTINGS = {
    "SECRET_KEY": str,
    "DATABASE": str,
    "PHOTOS_DIR": str,
    "VAPID_SUBJECT": str,
    "PUSH_ALLOW_PRIVATE_ENDPOINTS": bool,
    "PUSH_TIMEOUT": float,
    "SMTP_HOST": str,
    "SMTP_PORT": int,
    "SMTP_SECURITY": str,
    "SMTP_USER": str,
    "SMTP_PASSWORD": str,
    "SMTP_TIMEOUT": float,
    "SMTP_CA_FILE": str,
    "MAIL_FROM": str,
    "MAIL_ENVELOPE_FROM": str,
    "PUSH_MAX_ATTEMPTS": int,
    "DISPATCH_BATCH": int,
    "PRACTITIONER_IDLE_MINUTES": int,
    "PRACTITIONER_ABSOLUTE_HOURS": int,
    "CLIENT_SESSION_DAYS": int,
    "CLIENT_IDLE_DAYS": int,
    "LOGIN_MAX_FAILURES": int,
    "CHECKIN_RATE_PER_HOUR": int,
    "PHOTO_RATE_PER_HOUR": int,
    "CALENDAR_RATE_PER_HOUR": int,
    "PUBLIC_URL": str,
    "TRUSTED_HOSTS": list,
    "PROXY_FIX_HOPS": int,
}


# The numbers' ranges (an operator's typo must not start a server that never sends, e.g. a
# dispatch batch of 0); ints not listed here are counts and durations: at least 1.
# 0 photos or calendar fetches an hour turns those off.
INT_RANGES = {
    "PROXY_FIX_HOPS": (0, 10),
    "SMTP_PORT": (1, 65535),
    "CALENDAR_RATE_PER_HOUR": (0, None),
    "PHOTO_RATE_PER_HOUR": (0, None),
}


class ConfigError(Exception):
    """A setting or the instance's secrets cannot be used; the message says which and why."""


def _parse(name: str, kind: type, raw: str, where: str = ""):
    where = where or f"COMPANION_{name}={raw!r}"
    if kind is bool:  # a typo ("ture") must not quietly mean off
        word = raw.strip().lower()
        if word not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            raise ConfigError(f"{where}: must be 1 or 0 (true/false, yes/no, on/off)")
        return word in {"1", "true", "yes", "on"}
    if kind is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind is str:
        return raw
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{where}: must be a number of seconds, e.g. 10") from None
        if not 0 < value < 3600:  # also refuses nan and inf
            raise ConfigError(f"{where}: must be more than 0 and less than 3600 seconds")
        return value
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{where}: must be a whole number, e.g. 5") from None
    low, high = INT_RANGES.get(name, (1, None))
    if value < low:
        raise ConfigError(f"{where}: must be at least {low}")
    if high is not None and value > high:
        raise ConfigError(f"{where}: must be at most {high}")
    return value


def _load_file(app: Flask, path: Path) -> None:
    """instance/config.py: a Python error in it, or a setting of the wrong kind, stops every
    command with the file and the setting named, as a bad COMPANION_* variable does."""
    try:
        app.config.from_pyfile(path, silent=True)
    except Exception as e:  # any error of the operator's file: named, without a traceback
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        line = e.lineno if isinstance(e, SyntaxError) else (lines or [None])[-1]
        what = e.msg if isinstance(e, SyntaxError) else f"{type(e).__name__}: {e}"
        raise ConfigError(f"{path}{f', line {line}' if line else ''}: {what}") from None
    for name, kind in ENV_SETTINGS.items():
        value = app.config.get(name)
        if value is None or value == DEFAULTS.get(name):
            continue
        where = f"{path}: {name} = {value!r}"
        if kind is list and isinstance(value, list | tuple):
            value = ",".join(map(str, value))
        number = isinstance(value, int | float) and not isinstance(value, bool)
        fits = {
            bool: isinstance(value, bool),
            int: number and isinstance(value, int),
            float: number,
            str: isinstance(value, str) or (name == "SECRET_KEY" and isinstance(value, bytes)),
            list: isinstance(value, str),
        }[kind]
        if not fits:
            wanted = {bool: "True or False", int: "a whole number", float: "a number"}
            wanted[list] = "a list of host names"
            raise ConfigError(f"{where}: must be {wanted.get(kind, 'text')}")
        if kind is not bool and not isinstance(value, bytes):
            app.config[name] = _parse(name, kind, str(value), where)


def load(app: Flask, test_config: dict | None) -> None:
    """Fill app.config from defaults, the instance folder, the environment, then test_config."""
    app.config.from_mapping(DEFAULTS)
    instance = Path(app.instance_path)
    # Owner-only, like everything in it: the database, its side files, secrets and photos.
    try:
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"the instance folder {instance} cannot be made ({e.strerror}): set"
            " COMPANION_INSTANCE_PATH to a folder this user can write"
        ) from None
    if not os.access(instance, os.R_OK | os.X_OK):  # config.py was blamed, existing or not
        raise ConfigError(f"the instance folder cannot be read: {not_this_users(instance)}")
    _load_file(app, instance / "config.py")
    for name, kind in ENV_SETTINGS.items():
        raw = os.environ.get(f"COMPANION_{name}")
        if raw is not None and raw != "":
            app.config[name] = _parse(name, kind, raw)
    if test_config:
        app.config.from_mapping(test_config)
    app.config["DATABASE"] = app.config["DATABASE"] or str(instance / "companion.sqlite3")
    app.config["PHOTOS_DIR"] = app.config["PHOTOS_DIR"] or str(instance / "photos")
    _ensure_secrets(app, instance)


def _ensure_secrets(app: Flask, instance: Path) -> None:
    """Make SECRET_KEY, the VAPID key pair and the TOTP key in the instance folder on first run
    (an instance made by an older version gets the keys it lacks)."""
    path = instance / "secrets.json"
    stored = _read_secrets(path) if path.exists() else {}
    changed = False
    if not stored.get("SECRET_KEY"):
        stored["SECRET_KEY"] = secrets.token_urlsafe(48)
        changed = True
    if not stored.get("VAPID_PRIVATE_KEY"):
        stored["VAPID_PRIVATE_KEY"], stored["VAPID_PUBLIC_KEY"] = generate_vapid_keys()
        changed = True
    elif not stored.get("VAPID_PUBLIC_KEY"):  # the public half is derived, never guessed
        stored["VAPID_PUBLIC_KEY"] = _public_half(stored["VAPID_PRIVATE_KEY"], path)
        changed = True
    if not stored.get("TOTP_KEY"):  # encrypts two-factor secrets in the database (twofactor.py)
        stored["TOTP_KEY"] = Fernet.generate_key().decode()
        changed = True
    if changed:
        # Written owner-only: these keys sign sessions and push messages.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f, indent=2)
    app.config.setdefault("SECRET_KEY", None)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = stored["SECRET_KEY"]
    app.config.setdefault("VAPID_PRIVATE_KEY", stored["VAPID_PRIVATE_KEY"])
    app.config.setdefault("VAPID_PUBLIC_KEY", stored["VAPID_PUBLIC_KEY"])
    app.config.setdefault("TOTP_KEY", stored["TOTP_KEY"])
    _check_keys(app.config, path)


RESTORE = (
    "Restore secrets.json from your backup (README, Backups): Companion never makes new keys"
    " over it, as they would end every push subscription and two-factor sign-in"
)


def _public_half(private_pem, path: Path) -> str:
    """The VAPID public key of `private_pem`; a key that cannot be loaded stops us."""
    try:
        return public_key_from_private(private_pem)
    except (ValueError, TypeError, AttributeError) as e:
        why = str(e).split(". ")[0] or type(e).__name__
        raise ConfigError(f"{path}: VAPID_PRIVATE_KEY cannot be used ({why}). {RESTORE}.") from None


def _check_keys(cfg, path: Path) -> None:
    """Stop every command on keys that cannot work (a damaged value in secrets.json, or a
    half copied from elsewhere): otherwise the server started, /healthz and the doctor said
    push was fine, and every reminder failed in the dispatcher's log alone."""
    if cfg["VAPID_PUBLIC_KEY"] != _public_half(cfg["VAPID_PRIVATE_KEY"], path):
        raise ConfigError(
            f"{path}: VAPID_PUBLIC_KEY is not the public half of VAPID_PRIVATE_KEY (phones"
            f" would subscribe with one key and every push be signed with another). {RESTORE}."
        )
    try:
        Fernet(cfg["TOTP_KEY"])
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{path}: TOTP_KEY cannot be used ({str(e).rstrip('.')}). {RESTORE}."
        ) from None


def not_this_users(path: Path) -> str:
    """Why this user cannot use `path`: it (or its folder) belongs to another user, e.g. after
    `sudo companion init-db` for a service that runs as its own user. Both are named, with
    the two ways out; never "restore from backup", which would put older data over good."""

    def name(uid: int) -> str:
        return next((u.pw_name for u in pwd.getpwall() if u.pw_uid == uid), f"uid {uid}")

    me = name(os.geteuid())
    for where in (path, *path.parents):
        try:
            owner = name(where.stat().st_uid)
            break
        except OSError:
            continue
    folder = where if where.is_dir() else where.parent
    run_as = "" if owner == "root" else f"Run Companion as {owner}, or "  # never as root
    return (
        f"{where} belongs to {owner}, and Companion runs as {me} here. {run_as}"
        f"{'g' if run_as else 'G'}ive the files to {me}: chown -R {me} {folder}"
        if owner != me
        else f"{me} cannot read and write {path} (mode {path.stat().st_mode & 0o777:o}: chmod u+rw,"
        " or u+rwx for a folder)"
    )


def _read_secrets(path: Path) -> dict:
    """Read secrets.json; a damaged one stops us: new keys would sign everyone out and lose
    every push subscription and two-factor sign-in, so it is never silently replaced."""
    try:
        stored = json.loads(path.read_text())
    except PermissionError:  # not damaged: another user's (no backup to restore)
        raise ConfigError(f"{path} cannot be read: {not_this_users(path)}") from None
    except (OSError, ValueError) as e:
        stored = e
    if not isinstance(stored, dict):
        why = stored if isinstance(stored, Exception) else "not a JSON object"
        raise ConfigError(
            f"{path} cannot be read ({why}). Restore it from your backup (README, Backups);"
            " it holds the keys that sign cookies and push messages and encrypt two-factor"
            " secrets, so Companion does not make new ones over it."
        )
    return stored
