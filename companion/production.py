"""Production serving (gunicorn workers plus exactly one dispatcher) and the installation doctor."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from flask import Flask

from companion.db import connect, one, parse_iso, utcnow


def serve(host: str, port: int, workers: int, threads: int, dispatch: bool) -> None:
    """Run gunicorn with `workers` gthread workers and one dispatcher child process."""
    from gunicorn.app.base import BaseApplication

    from companion import create_app

    dispatcher: dict = {}

    def when_ready(_server):
        if dispatch:
            # Exactly one dispatcher, beside the workers; claims are atomic anyway, so
            # a second one started by mistake still sends each notification once.
            dispatcher["proc"] = subprocess.Popen([sys.executable, "-m", "companion.cli", "worker"])

    def on_exit(server):
        proc = dispatcher.get("proc")
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the worker finishes its batch and releases its leases
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                server.log.warning(
                    "The dispatcher did not stop within 30 s and was killed: the reminders it"
                    " held stay leased until their lease runs out, then the next dispatcher"
                    " sends them (a device may get one twice; the tag replaces it)."
                )

    class Server(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread" if threads > 1 else "sync",
                "graceful_timeout": 30,
                "timeout": 60,
                "keepalive": 5,
                # Several instances may run on one host; none needs the control socket.
                "control_socket_disable": True,
                "when_ready": when_ready,
                "on_exit": on_exit,
                "accesslog": os.environ.get("COMPANION_ACCESS_LOG") or None,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()

    Server().run()


def doctor(app: Flask) -> list[tuple[bool, str]]:
    """Check an installation; return (ok, message) findings."""
    from companion import migrations
    from companion.reminders import push

    cfg = app.config
    found: list[tuple[bool, str]] = []
    secrets = Path(app.instance_path) / "secrets.json"
    found.append(
        (
            secrets.exists() and bool(cfg.get("SECRET_KEY")) and bool(cfg.get("VAPID_PRIVATE_KEY")),
            f"secrets (SECRET_KEY, VAPID keys) in {secrets}",
        )
    )
    subject = cfg.get("VAPID_SUBJECT")
    try:
        push.check_subject(subject or "")
        found.append((True, f"VAPID subject {subject}"))
    except ValueError as e:
        found.append(
            (
                False,
                f"VAPID subject: {e} Set COMPANION_VAPID_SUBJECT to mailto:you@yourclinic or https://yourclinic",
            )
        )
    probe = Path(app.instance_path) / ".doctor-probe"
    try:
        probe.write_text("ok")
        probe.unlink()
        found.append((True, f"instance folder {app.instance_path} is writable"))
    except OSError as e:
        found.append((False, f"instance folder {app.instance_path} is not writable: {e}"))
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
    if cfg.get("PUSH_ALLOW_PRIVATE_ENDPOINTS"):
        found.append((False, "PUSH_ALLOW_PRIVATE_ENDPOINTS is on: for tests only"))
    db = connect(cfg["DATABASE"])
    try:
        pending = [m.name for m in migrations.migrations.pending(db)]
        found.append(
            (
                not pending,
                "database migrated"
                if not pending
                else f"database needs migrations: {', '.join(pending)} (run companion init-db)",
            )
        )
        mode = db.conn.execute("PRAGMA journal_mode").fetchone()[0]
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
            " AND next_attempt_at < ?",
            ((now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
        )["n"]
        found.append((overdue == 0, f"{overdue} notifications overdue by more than 5 minutes"))
        failed = one(
            db,
            "SELECT count(*) AS n FROM notifications WHERE status = 'failed' AND created_at > ?",
            ((now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
        )["n"]
        found.append((failed == 0, f"{failed} notifications failed in the last 7 days"))
    finally:
        db.close()
    return found
