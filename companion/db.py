"""One SQLite connection per worker thread, kept across requests: WAL, foreign keys, busy timeout."""

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import sqlite_utils
from flask import Flask, current_app, g


def connect(path: str) -> sqlite_utils.Database:
    """Open the database file with the pragmas every connection needs."""
    if path != ":memory:" and not path.startswith("file:"):
        # Create it owner-only (health data): SQLite gives -wal and -shm the same mode.
        # O_EXCL: never open an existing database here, since closing any descriptor of the
        # file drops the POSIX locks this process's SQLite connections hold on it.
        with suppress(OSError):  # exists, or SQLite says why it cannot open it, as before
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # isolation_level=None: no implicit transactions; writes use write() below.
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted content is overwritten with zeros, not left in free space: erasure must hold
    # whatever SQLite's build default is (erasure.checkpoint clears the WAL's old frames).
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.row_factory = sqlite3.Row
    db = sqlite_utils.Database(conn, execute_plugins=False)
    # Writers take turns on an advisory lock beside the database first (see write()); where
    # it cannot be made, SQLite's busy timeout alone orders them.
    db.write_lock = None
    if path != ":memory:":
        try:
            mode = os.stat(path).st_mode & 0o666  # as SQLite does for -wal and -shm
            # flock needs no write permission: read-only works for every user who can read.
            db.write_lock = os.open(path + "-writelock", os.O_RDONLY | os.O_CREAT, mode)
            weakref.finalize(db, os.close, db.write_lock)
        except OSError:
            pass
    return db


# Web requests checkpoint the WAL only once it holds this many pages (~80 MB): the
# dispatcher process checkpoints every second (scheduler.Dispatcher.checkpoint), so that no
# request's commit pays for copying a thousand pages back into the database file. This is
# the fallback when no dispatcher runs.
WEB_AUTOCHECKPOINT = 20000


def get_db() -> sqlite_utils.Database:
    """Return this thread's database for the app, opening it on first use.

    Opening a connection and setting its pragmas cost more than a typical request's queries,
    so each thread keeps its own (SQLite connections are not shared between threads) for as
    long as the app lives. The process id guards against a connection inherited over fork; a
    changed DATABASE setting opens the new file.
    """
    if "db" not in g:
        local = current_app.extensions["companion.db"]
        key = (os.getpid(), current_app.config["DATABASE"])
        cached_key, db = getattr(local, "db", (None, None))
        if cached_key != key:
            if db is not None and cached_key[0] == key[0]:
                db.close()  # the app now names another file
            db = connect(key[1])
            db.conn.execute(f"PRAGMA wal_autocheckpoint = {WEB_AUTOCHECKPOINT}")
            local.db = (key, db)
        g.db = db
    return g.db


def forget_connection(app: Flask) -> None:
    """Close this thread's connection for the app; the next request opens a new one."""
    local = app.extensions["companion.db"]
    _key, db = getattr(local, "db", (None, None))
    if db is not None:
        del local.db
        db.close()


def close_db(_exc: BaseException | None = None) -> None:
    """End of a request: the connection stays open, but never carries a transaction over."""
    db = g.pop("db", None)
    if db is not None and db.conn.in_transaction:
        db.conn.rollback()


@contextmanager
def write(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run a write transaction that starts with BEGIN IMMEDIATE (nested: a savepoint)."""
    # A plain BEGIN that reads then writes fails at once with "database is locked"
    # under concurrent writers, whatever the busy timeout; IMMEDIATE takes the write
    # lock up front and so waits its turn.
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    lock = getattr(db, "write_lock", None)
    if lock is not None:
        _take(lock)
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        db.conn.execute("COMMIT")
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _take(lock, timeout: float = 10.0) -> None:
    """Wait for the advisory write lock, polling every 0.2 ms, for up to `timeout` seconds.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ms and more between tries: under load, a
    waiting writer sleeps well past the sub-millisecond transaction it waits for, and the CPU
    idles. Past the timeout, BEGIN IMMEDIATE goes ahead and SQLite's busy timeout decides.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.0002)


def one(db: sqlite_utils.Database, sql: str, params=()) -> dict | None:
    """Return the first row of a query as a dict, or None."""
    row = db.conn.execute(sql, params).fetchone()
    return dict(row) if row is not None else None


def rows(db: sqlite_utils.Database, sql: str, params=()) -> list[dict]:
    """Return every row of a query as dicts."""
    return [dict(r) for r in db.conn.execute(sql, params).fetchall()]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """Store a moment as UTC ISO 8601 text (sorts correctly as text)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def init_app(app: Flask) -> None:
    app.extensions["companion.db"] = threading.local()
    app.teardown_appcontext(close_db)
