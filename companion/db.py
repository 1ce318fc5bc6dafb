"""One SQLite connection per worker thread, kept across requests: WAL, foreign keys, busy timeout."""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import sqlite_utils
from flask import Flask, current_app, g


def connect(path: str) -> sqlite_utils.Database:
    """Open the database file with the pragmas every connection needs."""
    # isolation_level=None: no implicit transactions; writes use write() below.
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.row_factory = sqlite3.Row
    return sqlite_utils.Database(conn, execute_plugins=False)


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
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    db.conn.execute("COMMIT")


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
