"""One sqlite-utils Database per app context: WAL, foreign keys, busy timeout."""

import sqlite3
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
    """Return this app context's database, opening it on first use."""
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


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
    app.teardown_appcontext(close_db)
