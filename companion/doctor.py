"""The installation doctor: secrets, VAPID contact, files, database, dispatcher, backlog."""

import contextlib
import os
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

from flask import Flask

from companion import migrations
from companion.config import not_this_users
from companion.db import connect, iso, one, parse_iso, utcnow
from companion.reminders import health as push_health
from companion.reminders import mail


def unreadable_database(path: str, error: Exception) -> str:
    """Say that the database file cannot be used, and what to do (no traceback at 3 am)."""
    folder = Path(path).parent
    if not folder.is_dir():  # a COMPANION_DATABASE typo: nothing to restore
        return (
            f"database {path} cannot be opened: the folder {folder} does not exist"
            " (check COMPANION_DATABASE, or create the folder)"
        )
    if not os.access(folder, os.W_OK | os.X_OK) and not Path(path).exists():
        return f"database {path} cannot be created: this user cannot write to {folder}"
    kind = getattr(error, "sqlite_errorname", "")
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return (
            f"database {path} cannot be opened: {folder} is on a read-only file system (SQLite"
            " writes its -wal and -shm files beside the database): mount it read-write"
        )
    for side in (Path(path), Path(path + "-wal"), Path(path + "-shm")):
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):  # not damaged: not ours
            return f"database {path} cannot be opened: {not_this_users(side)}"
    if kind == "SQLITE_CANTOPEN" and not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"database {path} cannot be opened: this user cannot write to {folder}, where"
            " SQLite keeps its -wal and -shm files"
        )
    if kind.startswith(("SQLITE_FULL", "SQLITE_IOERR")):  # the disk, not the file
        free = shutil.disk_usage(folder).free
        return (
            f"database {path} cannot be opened: {error}, with {free // 2**20} MB free on its"
            " disk. Free some space (or check the disk: dmesg), then start again; the file"
            " is most likely fine: do not restore a backup over it"
        )
    if kind.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return (
            f"database {path} cannot be opened: {error} by another program (a backup, a"
            " sqlite3 shell left open?); try again once it is done"
        )
    if not kind.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return f"database {path} cannot be opened: {error} ({kind or 'no SQLite code'})"
    return (
        f"database {path} cannot be read: {error}. Stop Companion and restore the file from"
        " your backup (README, Backups: first move the file and its -wal and -shm aside)"
    )


def owned_files(cfg, instance: Path) -> list[Path]:
    """What Companion keeps for its own user (health data and keys): the instance folder,
    secrets.json, the database and its side files, the photos folder and every photo."""
    paths = [instance, instance / "secrets.json"]
    if not cfg["DATABASE"].startswith((":memory:", "file:")):
        paths += [Path(cfg["DATABASE"] + suffix) for suffix in ("", "-wal", "-shm", "-writelock")]
    photos = Path(cfg["PHOTOS_DIR"])
    paths.append(photos)
    for folder, dirs, files in os.walk(photos):
        paths += [Path(folder, name) for name in dirs + files]
    return [p for p in paths if p.exists() and not p.is_symlink()]


def open_to_others(cfg, instance: Path) -> list[Path]:
    """The owned files other users of this machine can read or enter (made by an older
    version, or by a copy or restore without umask 077)."""
    return [p for p in owned_files(cfg, instance) if p.stat().st_mode & 0o077]


def make_owner_only(cfg, instance: Path) -> list[Path]:
    """Take every permission of group and others off the owned files (what `chmod -R go=`
    does); return those changed. One this user may not change is left to the doctor."""
    changed = []
    for path in open_to_others(cfg, instance):
        try:
            path.chmod(path.stat().st_mode & 0o700)
        except OSError:
            continue
        changed.append(path)
    return changed


def doctor(app: Flask) -> list[tuple[bool, str]]:
    """Check an installation; return (ok, message) findings (ok is None for a warning)."""
    cfg = app.config
    found: list[tuple[bool, str]] = []
    secrets = Path(app.instance_path) / "secrets.json"
    found.append(
        (
            secrets.exists() and bool(cfg.get("SECRET_KEY")) and bool(cfg.get("VAPID_PRIVATE_KEY")),
            f"secrets (SECRET_KEY, VAPID keys) in {secrets}",
        )
    )
    broken, initialised = None, False
    try:
        db = connect(cfg["DATABASE"])
        initialised = bool(migrations.migrations.applied(db))
    except sqlite3.DatabaseError as e:  # not a database (any more): said below, once
        broken, db = unreadable_database(cfg["DATABASE"], e), None
    try:
        # The dispatcher's own judgement, fallback included (reminders/health.py).
        if not initialised:
            raise sqlite3.DatabaseError("no database yet")
        subject, problem = push_health.contact(cfg, db)
    except sqlite3.Error:  # no database yet: judge the configured contact alone
        subject, problem = cfg.get("VAPID_SUBJECT"), push_health.configured_contact(cfg) or None
        if not subject:  # as after init-db without a practitioner
            problem = push_health.NO_CONTACT
    finally:
        if db is not None:
            db.close()
    found.append(
        (
            problem is None,
            f"VAPID subject {subject}" if problem is None else f"VAPID subject: {problem}",
        )
    )
    found.append(mail.describe(cfg))
    try:
        settings = mail.settings_from(cfg)
    except ValueError:  # said by describe()
        settings = None
    if settings is not None:
        found.append(mail.reach(settings))
    probe = Path(app.instance_path) / ".doctor-probe"
    try:
        probe.write_text("ok")
        probe.unlink()
        found.append((True, f"instance folder {app.instance_path} is writable"))
    except OSError as e:
        found.append((False, f"instance folder {app.instance_path} is not writable: {e}"))
        with contextlib.suppress(OSError):  # made, then a full disk refused its two bytes
            probe.unlink()
    # SQLite gives the -wal and -shm files it creates the database file's mode: made while
    # the database was read-only, they stay read-only after it is fixed, and every write
    # fails (503) until they are fixed too.
    stuck = [
        p.name
        for p in (Path(cfg["DATABASE"] + suffix) for suffix in ("", "-wal", "-shm"))
        if p.exists() and not os.access(p, os.W_OK)
    ]
    found.append(
        (
            not stuck,
            "database files are writable"
            if not stuck
            else f"read-only database files: {', '.join(stuck)} (every write fails; make them"
            " writable by the user Companion runs as, e.g. chmod u+w companion.sqlite3*)",
        )
    )
    others = [
        p for p in owned_files(cfg, Path(app.instance_path)) if p.stat().st_uid != os.geteuid()
    ]
    if others:  # made by a command run as root (sudo) or another user: this one cannot write them
        found.append(
            (
                False,
                "files of another user: "
                + ", ".join(str(p) for p in others[:5])
                + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                + f" ({not_this_users(others[0])})",
            )
        )
    shown = open_to_others(cfg, Path(app.instance_path))
    found.append(
        (
            not shown,
            "files are for Companion's user only"
            if not shown
            else "readable by other users of this machine (health data, keys): "
            + ", ".join(str(p) for p in shown[:5])
            + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
            + f" (companion init-db makes them owner-only; or chmod -R go= {app.instance_path})",
        )
    )
    if not cfg.get("PUBLIC_URL"):
        # A warning, not a problem: `run` on this computer builds links from its own address.
        found.append(
            (
                None,
                "PUBLIC_URL is not set: invite links are made only from a loopback address or"
                " a host in TRUSTED_HOSTS; set COMPANION_PUBLIC_URL to this installation's"
                " address (e.g. https://aftercare.example-clinic.com)",
            )
        )
    if cfg.get("PUSH_ALLOW_PRIVATE_ENDPOINTS"):
        found.append((False, "PUSH_ALLOW_PRIVATE_ENDPOINTS is on: for tests only"))
    if broken:
        found.append((False, broken))
        return found
    if not initialised:  # before `init-db`: one plain finding, not its fifteen migrations
        found.append((False, "the database is not initialised: run companion init-db"))
        return found
    db = connect(cfg["DATABASE"])
    try:
        if newer := migrations.from_a_newer_version(db):
            found.append((False, newer))
            return found
        pending = [m.name for m in migrations.migrations.pending(db)]
        found.append(
            (
                not pending,
                "database migrated"
                if not pending
                else f"database needs migrations: {', '.join(pending)} (run companion init-db)",
            )
        )
        mode = one(db, "PRAGMA journal_mode")["journal_mode"]
        found.append((mode == "wal", f"journal mode {mode}"))
        if pending:
            return found
        now = utcnow()
        beat = one(db, "SELECT * FROM heartbeats WHERE name = 'dispatcher'")
        alive = beat is not None and now - parse_iso(beat["at"]) < timedelta(minutes=1)
        found.append(
            (
                alive,
                f"dispatcher heartbeat {beat['at'] if beat else 'never'}"
                + ("" if alive else ": no dispatcher is running (companion run, serve or worker)"),
            )
        )
        overdue = one(
            db,
            "SELECT count(*) AS n FROM notifications WHERE status = 'pending'"
            " AND next_attempt_at < :since",
            {"since": iso(now - timedelta(minutes=5))},
        )["n"]
        found.append((overdue == 0, f"{overdue} notifications overdue by more than 5 minutes"))
        failed = one(
            db,
            "SELECT count(*) AS n FROM notifications WHERE status = 'failed'"
            " AND created_at > :since",
            {"since": iso(now - timedelta(days=7))},
        )["n"]
        found.append((failed == 0, f"{failed} notifications failed in the last 7 days"))
    finally:
        db.close()
    return found
