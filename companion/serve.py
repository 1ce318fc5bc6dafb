"""Production serving: gunicorn workers plus exactly one dispatcher process."""

import os
import subprocess
import sys

from gunicorn.app.base import BaseApplication

from companion import create_app


def serve(host: str, port: int, workers: int, threads: int, dispatch: bool) -> None:
    """Run gunicorn with `workers` gthread workers and one dispatcher child process."""
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
