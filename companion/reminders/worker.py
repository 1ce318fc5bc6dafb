"""APScheduler wiring: the dispatch job runs in exactly one process, never at import or in tests."""

import atexit
import math
import os
import signal
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from companion.checkins import flags
from companion.db import connect, iso, utcnow
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
        self.settings = dispatch.Settings(
            batch=cfg["DISPATCH_BATCH"],
            lease_seconds=max(cfg["DISPATCH_LEASE_SECONDS"], math.ceil(slowest) + 30),
            max_attempts=cfg["PUSH_MAX_ATTEMPTS"],
        )
        self.sender: Sender | None = None
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
            sender = self.get_sender(db)
            if sender is None:
                return {}
            return dispatch.tick(
                db, sender, utcnow, self.owner, self.settings, stopping=self.stopping
            )

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


def add_jobs(sched, dispatcher: Dispatcher) -> None:
    """Every second: a dispatch pass, and (apart from it) a WAL checkpoint."""
    for name, job in (("dispatch", dispatcher.run_once), ("checkpoint", dispatcher.checkpoint)):
        sched.add_job(
            job,
            "interval",
            seconds=1,
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
        )


def _should_run(app: Flask) -> bool:
    # Under the debug reloader only the child process (WERKZEUG_RUN_MAIN) dispatches.
    return not app.debug or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def start(app: Flask) -> BackgroundScheduler | None:
    """Start the dispatch job in this process's background (the embedded default)."""
    if not _should_run(app) or "companion.scheduler" in app.extensions:
        return None
    dispatcher = Dispatcher(app)
    sched = BackgroundScheduler(timezone="UTC")
    add_jobs(sched, dispatcher)
    sched.start()
    app.extensions["companion.scheduler"] = (sched, dispatcher)
    atexit.register(stop, app)
    return sched


def stop(app: Flask) -> None:
    """Stop the job, wait for a running batch, and give back any leases still held."""
    pair = app.extensions.pop("companion.scheduler", None)
    if pair is not None:
        sched, dispatcher = pair
        dispatcher.stopping.set()  # a running pass ends after its current batch
        sched.shutdown(wait=True)
        dispatcher.close()


def run_forever(app: Flask) -> None:
    """Run only the dispatcher, in the foreground, until SIGINT/SIGTERM."""
    dispatcher = Dispatcher(app)
    sched = BlockingScheduler(timezone="UTC")
    add_jobs(sched, dispatcher)

    def shutdown(*_):
        dispatcher.stopping.set()  # a running pass ends after its current batch
        sched.shutdown(wait=True)

    signal.signal(signal.SIGTERM, shutdown)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        dispatcher.close()
