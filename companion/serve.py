"""Production serving: gunicorn workers plus exactly one dispatcher process."""

import os
import subprocess
import sys

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from companion import create_app
from companion.db import connect
from companion.reminders import health as push_health
from companion.web import redact_tokens


class RedactingLogger(Logger):
    """Gunicorn's logger, with invite tokens taken out of every access-log field."""

    def atoms(self, resp, req, environ, request_time) -> dict:
        found = super().atoms(resp, req, environ, request_time)
        return {k: redact_tokens(v) if isinstance(v, str) else v for k, v in found.items()}


def refuse_without_contact(app: Flask) -> None:
    """Exit with the reason when the dispatcher would have no usable VAPID contact."""
    db = connect(app.config["DATABASE"])
    try:
        _, problem = push_health.contact(app.config, db)
    finally:
        db.close()
    if problem is not None:
        raise SystemExit(
            f"Not starting: reminders could not go out by push ({problem})."
            " Pass --without-push to start anyway."
        )


def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    dispatch: bool,
    without_push: bool = False,
    app: Flask | None = None,
) -> None:
    """Run gunicorn with `workers` gthread workers and one dispatcher child process.

    Refuse to start (SystemExit) without a usable VAPID contact unless without_push:
    the server would accept subscriptions and plan reminders that never go out.
    """
    if not without_push:
        refuse_without_contact(app or create_app())
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
                "logger_class": RedactingLogger,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()

    Server().run()
