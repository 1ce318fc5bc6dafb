"""Production serving: gunicorn or granian workers plus exactly one dispatcher process.

Past 300 lines on purpose: the checks before a start, the dispatcher process and both servers'
runners, in the order `serve` runs them.
"""

import ctypes
import errno
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading

from flask import Flask

from companion import create_app
from companion.db import connect
from companion.reminders import health as push_health
from companion.reminders import mail
from companion.web import redact_tokens

SERVERS = ("gunicorn", "granian")
SERVE_PID = "COMPANION_SERVE_PID"  # serve's main process, for the children it starts
GRACE_SECONDS = 30  # SIGTERM: in-flight requests get this long to finish, the dispatcher too


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


def refuse_bad_email_settings(app: Flask) -> None:
    """Exit with the reason when email is set up (SMTP_HOST) but its settings cannot work:
    otherwise the server would start and every email wait for a fix nobody was told of."""
    try:
        mail.settings_from(app.config)
    except ValueError as e:
        raise SystemExit(f"Not starting: reminders could not go out by email ({e}).") from None


def die_with_parent() -> None:
    """In a granian worker or the dispatcher that serve started: end with serve's main
    process. Killed with -9 (by hand or the out-of-memory killer), it left them running: the
    workers kept the port and answered with the old code, the dispatcher kept sending."""
    parent = os.environ.get(SERVE_PID)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def worker_app() -> Flask:
    """The app of one of serve's granian workers (gunicorn's: its post_fork hook)."""
    die_with_parent()
    return create_app()


class DispatcherProcess:
    """Exactly one `companion worker` beside the web workers, started again if it dies (a
    crash, the kernel's out-of-memory killer) like a web worker is; claims are atomic anyway,
    so a second one started by mistake still sends each notification once."""

    RESTART_SECONDS = 1.0  # pause before a dead dispatcher is started again (no busy loop)

    def __init__(self, enabled: bool):
        self.enabled, self.proc = enabled, None
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> None:
        if self.enabled and self.proc is None:
            self.proc = self._spawn()
            threading.Thread(target=self._watch, name="dispatcher-watch", daemon=True).start()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "companion.cli", "worker"])

    def _watch(self) -> None:
        """Start the dispatcher again whenever it dies before `stop()` (its leases expire and
        the new one reclaims them). Exit code 0 or a SIGTERM/SIGINT is a stop, not a death:
        systemd and Ctrl+C signal every process of the service, not only this one."""
        while True:
            code = self._wait()
            if code in (0, -signal.SIGTERM, -signal.SIGINT):
                return
            if self.stopping.wait(self.RESTART_SECONDS):
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                logging.getLogger("companion.serve").warning(
                    "The dispatcher exited (code %s); starting it again.", code
                )
                self.proc = self._spawn()

    def _wait(self) -> int | None:
        """The dispatcher's exit code (-N: killed by signal N), or None when another waiter
        took it first: gunicorn's arbiter reaps every child (waitpid(-1)), and Popen.wait()
        would then answer 0, which reads as a stop, and a killed dispatcher stayed dead."""
        try:
            _, status = os.waitpid(self.proc.pid, 0)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status)

    def stop(self) -> str | None:
        """Stop it (it finishes its batch and releases its leases); return a warning if it
        had to be killed."""
        self.stopping.set()
        with self.lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return None
        proc.terminate()
        try:
            proc.wait(timeout=GRACE_SECONDS)
            return None
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return (
                f"The dispatcher did not stop within {GRACE_SECONDS} s and was killed: the"
                " reminders it held stay leased until their lease runs out, then the next"
                " dispatcher sends them (a device may get one twice; the tag replaces it)."
            )


def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    dispatch: bool,
    without_push: bool = False,
    app: Flask | None = None,
    server: str = "granian",
) -> None:
    """Run `workers` worker processes of `server` (each with `threads` request threads) and
    one dispatcher child process.

    Refuse to start (SystemExit) without a usable VAPID contact unless without_push:
    the server would accept subscriptions and plan reminders that never go out; and with
    email set up (SMTP_HOST) but its settings wrong (no MAIL_FROM, an unknown SMTP_SECURITY).
    """
    app = app or create_app()
    refuse_bad_email_settings(app)
    if not without_push:
        refuse_without_contact(app)
    address = listen_address(host)
    refuse_taken_port(address, port)
    dispatcher = DispatcherProcess(dispatch)
    accesslog = os.environ.get("COMPANION_ACCESS_LOG") or None
    if accesslog not in (None, "-"):
        try:
            # Can this user append to it? Made owner-only: it holds the clients' addresses
            # and their record ids (the umask made it readable by every user of the machine).
            os.close(os.open(accesslog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as e:
            raise SystemExit(
                f"Not starting: COMPANION_ACCESS_LOG={accesslog!r} cannot be written"
                f" ({e.strerror})."
            ) from None
    print(start_line(app, address, port, workers, server, dispatch), file=sys.stderr, flush=True)
    os.environ[SERVE_PID] = str(os.getpid())  # inherited by the workers and the dispatcher
    run = run_granian if server == "granian" else run_gunicorn
    run(address, port, workers, threads, dispatcher, accesslog)


def start_line(app: Flask, address: str, port: int, workers: int, server: str, dispatch) -> str:
    """What runs, from which files, and whether reminders can go out: the first line an
    operator reads in the journal (several instances on one host, or after a restore)."""
    cfg = app.config
    db = connect(cfg["DATABASE"])
    try:
        subject, problem = push_health.contact(cfg, db)
    finally:
        db.close()
    email = mail.settings_from(cfg)  # usable: refuse_bad_email_settings passed
    return (
        f"Companion: instance {app.instance_path}, database {cfg['DATABASE']};"
        f" http://{address}:{port}/ by {workers} {server} worker{'s' if workers > 1 else ''}"
        f" and {'one dispatcher' if dispatch else 'no dispatcher (--no-dispatch)'};"
        f" push {'as ' + subject if problem is None else 'OFF (' + problem + ')'};"
        f" email {'via ' + email.host + ':' + str(email.port) if email else 'off'}"
    )


def listen_address(host: str) -> str:
    """The IP address to listen on: granian takes only addresses (`--host localhost` was a
    traceback), so a name is resolved here; a name that does not resolve stops the start."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, UnicodeError):
        raise SystemExit(
            f"Not starting: --host {host!r} is neither an IP address nor a name this machine"
            " resolves (e.g. 127.0.0.1, or 0.0.0.0 for every interface)."
        ) from None


def refuse_taken_port(address: str, port: int) -> None:
    """Stop the start when the port cannot be listened on: granian binds with SO_REUSEPORT,
    so a second `serve` on the port of a running one started too and the kernel shared the
    clients' requests between the two (two installations, or two versions, answering in
    turn); gunicorn retried for 5 s in five error lines. A probe without SO_REUSEPORT is
    refused by any listener already there (SO_REUSEADDR: a closed server's TIME_WAIT is not)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as e:
            raise SystemExit(
                f"Not starting: cannot listen on {address}:{port}: {e.strerror}."
                " Stop the program using that port, or choose another with --port."
                + (
                    f" `ss -ltnp 'sport = :{port}'` names it."
                    if e.errno == errno.EADDRINUSE
                    else ""
                )
            ) from None


# granian's access log, in the shape of gunicorn's default ("combined" without the user), with
# its request time in ms; the invite tokens in path and referrer are redacted by a filter.
ACCESS_FORMAT = (
    '%(addr)s - - [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d'
    ' "%(header{referer})s" "%(header{user-agent})s" %(dt_ms).1fms'
)


def granian_logging(accesslog: str | None) -> dict:
    """granian's logging setup: its own messages on stderr, the access log to `accesslog`
    (`-`: stdout) through the token filter."""
    if accesslog in (None, "-"):
        access = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    else:
        access = {"class": "logging.FileHandler", "filename": accesslog}
    return {
        "filters": {"redact": {"()": "companion.web.RedactTokens"}},
        "formatters": {
            "plain": {"format": "[%(asctime)s] [%(process)d] %(message)s"},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "access": access | {"filters": ["redact"], "formatter": "access"},
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def run_granian(host, port, workers, threads, dispatcher, accesslog) -> None:
    """granian's WSGI workers: `threads` blocking threads each (1: one request at a time, as a
    sync worker; a thread pool costs more than it gains, see benchmarks/README.md)."""
    # Imported here: only the server chosen is loaded, and granian.server alone costs ~0.18 s
    # (python -X importtime) that init-db, doctor and the other commands need not pay.
    from granian.constants import Interfaces
    from granian.server import Server

    server = Server(
        "companion.serve:worker_app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        websockets=False,  # WSGI has none; left on, granian logs "not supported" at each start
        workers=workers,
        blocking_threads=threads,
        factory=True,
        respawn_failed_workers=True,  # a crashed worker is replaced
        workers_kill_timeout=GRACE_SECONDS,
        log_access=accesslog is not None,
        log_access_format=ACCESS_FORMAT,
        log_dictconfig=granian_logging(accesslog),
    )
    server.on_startup(dispatcher.start)

    @server.on_shutdown
    def stop_dispatcher():
        warning = dispatcher.stop()
        if warning:
            logging.getLogger("_granian").warning(warning)

    try:
        server.serve()
    except RuntimeError as e:  # granian's socket: "Address already in use (os error 98)"
        if "os error" not in str(e):
            raise
        dispatcher.stop()
        raise SystemExit(
            f"Not starting: cannot listen on {host}:{port}: {str(e).splitlines()[0]}."
            " Stop the program using that port, or choose another with --port."
        ) from None


def run_gunicorn(host, port, workers, threads, dispatcher, accesslog) -> None:
    """gunicorn's sync workers (gthread when threads > 1)."""
    # Imported here, like granian in run_granian: only the server chosen is loaded.
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    class RedactingLogger(Logger):
        """Gunicorn's logger, with invite tokens taken out of every access-log field."""

        def atoms(self, resp, req, environ, request_time) -> dict:
            found = super().atoms(resp, req, environ, request_time)
            return {k: redact_tokens(v) if isinstance(v, str) else v for k, v in found.items()}

    def on_exit(server):
        warning = dispatcher.stop()
        if warning:
            server.log.warning(warning)

    def when_ready(arbiter):
        # A dispatcher gone while the arbiter stops (systemd and Ctrl+C signal the whole group)
        # is not started again: its exit status may be the arbiter's to reap, not ours to read.
        for name in ("handle_term", "handle_int", "handle_quit"):
            handler = getattr(arbiter, name)
            setattr(arbiter, name, lambda handler=handler: (dispatcher.stopping.set(), handler()))
        dispatcher.start()

    class Server(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread" if threads > 1 else "sync",
                "graceful_timeout": GRACE_SECONDS,
                "timeout": 60,
                "keepalive": 5,
                # Several instances may run on one host; none needs the control socket.
                "control_socket_disable": True,
                # X-Forwarded-* is trusted only through COMPANION_PROXY_FIX_HOPS (ProxyFix in the
                # app); gunicorn's own default would believe X-Forwarded-Proto from any local
                # process and mark cookies Secure, HSTS included, on a plain-HTTP request.
                "forwarded_allow_ips": "",
                "when_ready": when_ready,
                "post_fork": lambda arbiter, worker: die_with_parent(),
                "on_exit": on_exit,
                "accesslog": accesslog,
                "logger_class": RedactingLogger,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()

    Server().run()
