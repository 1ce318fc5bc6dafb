"""The dispatch loop: it runs in exactly one process, never at import or in tests.

Each job (a dispatch pass, a WAL checkpoint) runs on a thread of its own, once a second, one run
at a time: a batch that takes longer than a second is normal (a slow push service, a backlog),
so the next pass simply starts when it ends. (APScheduler's interval job, used before, tried to
start the next run on top of the running one and logged "maximum number of running instances
reached" every second of a long batch.)"""

import atexit
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable

from flask import Flask

from companion.checkins import flags
from companion.db import connect, iso, utcnow
from companion.reminders import by_email, links, mail
from companion.reminders import dispatcher as dispatch
from companion.reminders import health as push_health
from companion.reminders.sender import Sender

# Push requests in flight at once, and pooled connections to match (the Sender runs
# them on one asyncio thread; the name predates that). Push services answer in
# 20-100 ms, so concurrency decides throughput: 256 in flight allow ~2,500 messages/s
# from a 100 ms service, where 64 capped a 50 ms one near 1,280/s; see
# benchmarks/dispatch.py and the dispatch section of benchmarks/README.md.
SENDER_THREADS = 256


class Dispatcher:
    """One process's sender: a pooled push Sender, a lease owner id, and its own connection."""

    def __init__(self, app: Flask):
        cfg = app.config
        self.app = app
        self.owner = dispatch.lease_owner()
        # A lease must outlast the slowest batch (every send timing out, after a probe),
        # or another dispatcher could claim rows that are still being sent.
        slowest = (math.ceil(cfg["DISPATCH_BATCH"] / SENDER_THREADS) + 1) * cfg["PUSH_TIMEOUT"]
        slowest += 2 * cfg["SMTP_TIMEOUT"]  # an SMTP server that does not answer, tried twice
        self.settings = dispatch.Settings(
            batch=cfg["DISPATCH_BATCH"],
            lease_seconds=max(cfg["DISPATCH_LEASE_SECONDS"], math.ceil(slowest) + 30),
            max_attempts=cfg["PUSH_MAX_ATTEMPTS"],
        )
        self.sender: Sender | None = None
        self.push_problem: str | None = None  # why push cannot be used (no Sender)
        self.email: by_email.Email | None = None
        self._email_checked = False
        self._local = threading.local()
        self._last_beat = None
        self._warned = False
        self.stopping = threading.Event()

    def db(self):
        # SQLite connections are never shared across threads.
        if getattr(self._local, "db", None) is None:
            self._local.db = connect(self.app.config["DATABASE"])
        return self._local.db

    def run_once(self) -> dict:
        db = self.db()
        now = utcnow()
        if self._last_beat is None or (now - self._last_beat).total_seconds() >= 10:
            db.conn.execute(
                "INSERT INTO heartbeats (name, pid, at) VALUES ('dispatcher', :pid, :at)"
                " ON CONFLICT(name) DO UPDATE SET pid = excluded.pid, at = excluded.at",
                {"pid": os.getpid(), "at": iso(now)},
            )
            self._last_beat = now
        with self.app.app_context():
            flags.check_missed(db, now)
            sender, email = self.get_sender(db), self.get_email()
            if sender is None and email is None:
                return {}  # nothing can go out: rows wait in the queue for push
            result = dispatch.tick(
                db,
                sender,
                utcnow,
                self.owner,
                self.settings,
                stopping=self.stopping,
                email=email,
                push_off=self.push_problem if sender is None else None,
            )
        self.report(db, result)
        return result

    def report(self, db, result: dict) -> None:
        """One log line for a pass where reminders failed or must be retried (a push service
        or the SMTP server down, a refusal), with the latest reason: the log said nothing,
        and the operator learnt it from clients who got no reminder."""
        failed, retry = result.get("failed", 0), result.get("retry", 0)
        if not (failed or retry):
            return
        last = db.conn.execute(
            "SELECT reason FROM deliveries WHERE outcome != 'delivered' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        self.app.logger.warning(
            "Reminders: %s sent, %s to retry, %s failed for good in this pass (latest reason:"
            " %s); every attempt is on the client's page, and companion doctor counts them",
            result.get("sent", 0),
            retry,
            failed,
            last[0] if last and last[0] else "none recorded",
        )

    def get_email(self) -> by_email.Email | None:
        """Make the Mailer once, from the SMTP settings (None: email is off or misconfigured)."""
        if not self._email_checked:
            self._email_checked = True
            cfg = self.app.config
            try:
                settings = mail.settings_from(cfg)
            except ValueError as e:
                self.app.logger.error("Not sending email: %s", e)
                settings = None
            if settings is not None:
                self.email = by_email.Email(
                    mail.Mailer(settings), links.base_url(cfg), cfg["SECRET_KEY"]
                )
        return self.email

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file, off the web workers' write path.

        Web workers leave checkpoints to this job (see db.WEB_AUTOCHECKPOINT). PASSIVE blocks
        no reader or writer; it copies what no reader still needs.
        """
        self.db().conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def get_sender(self, db) -> Sender | None:
        """Make the Sender once a usable VAPID contact is known (see push_health.contact)."""
        if self.sender is None:
            cfg = self.app.config
            subject, problem = push_health.contact(cfg, db)
            if subject is None:
                self.push_problem = problem
                if not self._warned:
                    self.app.logger.error("Not sending push: %s", problem)
                    self._warned = True
                return None
            try:
                self.sender = Sender(
                    cfg["VAPID_PRIVATE_KEY"],
                    subject,
                    timeout=cfg["PUSH_TIMEOUT"],
                    pool_size=SENDER_THREADS,
                    max_workers=SENDER_THREADS,
                    allow_private=cfg["PUSH_ALLOW_PRIVATE_ENDPOINTS"],
                )
            except ValueError as e:  # an unusable VAPID key
                self.push_problem = f"unusable VAPID key: {e}"
                if not self._warned:
                    self.app.logger.error("Not sending push: %s", e)
                    self._warned = True
                return None
        return self.sender

    def close(self) -> None:
        """Give back this dispatcher's leases and stop its sender."""
        db = connect(self.app.config["DATABASE"])
        try:
            dispatch.release(db, self.owner)
        finally:
            db.close()
        if self.sender is not None:
            self.sender.close()


log = logging.getLogger(__name__)


class Every:
    """Run `job` every `seconds` on its own thread, never two runs at once: a run longer than
    the interval is followed at once by the next. Ends when `stopping` is set (a running job
    is left to finish: the dispatcher's pass stops after its current batch)."""

    def __init__(self, name: str, job: Callable[[], object], seconds: float, stopping):
        self.name, self.job, self.seconds, self.stopping = name, job, seconds, stopping
        self.woken = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"companion-{name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.job()
            except Exception:  # logged; the next run tries again
                log.exception("The %s job failed", self.name)
            rest = self.seconds - (time.monotonic() - started)
            if rest > 0 and self.woken.wait(rest):
                self.woken.clear()

    def wake(self) -> None:
        """Start the next run now (or as soon as the running one ends)."""
        self.woken.set()

    def join(self, timeout: float | None = None) -> None:
        self.wake()
        self.thread.join(timeout)


class Loops:
    """The dispatcher's jobs, each on its own loop: a dispatch pass and (apart from it) a WAL
    checkpoint, every second."""

    def __init__(self, dispatcher: Dispatcher, seconds: float = 1.0):
        self.dispatcher = dispatcher
        self.loops = [
            Every("dispatch", dispatcher.run_once, seconds, dispatcher.stopping),
            Every("checkpoint", dispatcher.checkpoint, seconds, dispatcher.stopping),
        ]

    def stop(self) -> None:
        """Let a running pass end after its current batch, wait for it, give back leases."""
        self.dispatcher.stopping.set()
        for loop in self.loops:
            loop.join()
        self.dispatcher.close()


def _should_run(app: Flask) -> bool:
    # Under the debug reloader only the child process (WERKZEUG_RUN_MAIN) dispatches.
    return not app.debug or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def start(app: Flask) -> Loops | None:
    """Start the dispatch loop in this process's background (the embedded default)."""
    if not _should_run(app) or "companion.scheduler" in app.extensions:
        return None
    loops = Loops(Dispatcher(app))
    app.extensions["companion.scheduler"] = loops
    atexit.register(stop, app)
    return loops


def stop(app: Flask) -> None:
    """Stop the loop, wait for a running batch, and give back any leases still held."""
    loops = app.extensions.pop("companion.scheduler", None)
    if loops is not None:
        loops.stop()


def run_forever(app: Flask) -> None:
    """Run only the dispatcher, in the foreground, until SIGINT/SIGTERM."""
    loops = Loops(Dispatcher(app))
    stopping = loops.dispatcher.stopping
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stopping.wait()  # a signal handler runs in this thread and sets it
    except KeyboardInterrupt:
        pass
    finally:
        loops.stop()
