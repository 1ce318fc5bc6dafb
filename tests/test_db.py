"""The database layer: per-thread connections, the write lock, checkpoints, SQL forms of filters."""

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from companion import db as db_module
from companion.cli import migrate
from companion.db import connect, get_db, write
from companion.reminders.inbox import APPLIES_SQL, PLANNING_SKIPS, applies


def test_a_thread_keeps_its_connection_and_no_transaction_survives_a_request(app):
    migrate(app)
    with app.test_request_context():
        first = get_db()
        first.conn.execute("BEGIN IMMEDIATE")  # a request that fails mid-write
        first.conn.execute("INSERT INTO heartbeats (name, pid, at) VALUES ('x', 1, 'now')")
    with app.test_request_context():
        again = get_db()
        assert again is first
        assert not again.conn.in_transaction
        assert again.conn.execute("SELECT count(*) FROM heartbeats").fetchone()[0] == 0
    other = []

    def elsewhere():
        with app.test_request_context():
            other.append(get_db())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert other and other[0] is not first  # SQLite connections stay in their thread


def test_a_changed_database_setting_opens_the_new_file(app, tmp_path):
    migrate(app)
    with app.test_request_context():
        first = get_db()
    app.config["DATABASE"] = str(tmp_path / "other.sqlite3")
    with app.test_request_context():
        second = get_db()
        assert second is not first
        assert second.conn.execute("PRAGMA database_list").fetchone()[2].endswith("other.sqlite3")


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(["pending", "leased", "sent", "failed", "skipped", "cancelled"]),
    reason=st.one_of(
        st.none(),
        st.sampled_from([*PLANNING_SKIPS, "less than 5 minutes before it", "no device", ""]),
        st.text(max_size=20),
    ),
)
def test_the_sql_form_of_applies_agrees_with_applies(status, reason):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE notifications (status TEXT, status_reason TEXT)")
    conn.execute("INSERT INTO notifications VALUES (?, ?)", (status, reason))
    in_sql = conn.execute(f"SELECT count(*) FROM notifications WHERE {APPLIES_SQL}").fetchone()[0]
    assert bool(in_sql) == applies({"status": status, "status_reason": reason})


def test_web_commits_leave_the_checkpoint_to_the_dispatcher(app):
    from companion.reminders.worker import Dispatcher

    migrate(app)
    path = Path(app.config["DATABASE"])
    with app.test_request_context():
        db = get_db()
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = path.read_bytes()
        for i in range(50):  # ~1,250 pages: past SQLite's default autocheckpoint of 1,000
            with write(db):
                db.conn.execute(
                    "INSERT INTO heartbeats (name, pid, at) VALUES (?, 1, ?)",
                    (f"h{i}", "x" * 10**5),
                )
    assert path.read_bytes() == before  # every commit stayed in the WAL
    Dispatcher(app).checkpoint()
    assert path.read_bytes() != before
    main = sqlite3.connect(path)
    try:
        busy, frames, copied = main.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and copied == frames  # nothing was left to copy
    finally:
        main.close()


def test_writers_take_turns_on_the_lock_beside_the_database(app, monkeypatch):
    migrate(app)
    held = os.open(app.config["DATABASE"] + "-writelock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process is writing
    entered = []
    refused = []

    def flock(fd: int, operation: int) -> None:
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            refused.append(time.monotonic())
            raise

    # Watch the writer's attempts on the lock (companion.db's own view of fcntl only).
    monkeypatch.setattr(
        db_module,
        "fcntl",
        SimpleNamespace(
            flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN
        ),
    )

    def writer():
        db = connect(app.config["DATABASE"])
        with write(db):
            entered.append(time.monotonic())
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    # Refused many times over, not merely not yet started.
    deadline = time.monotonic() + 60
    while len(refused) < 50 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(refused) >= 50
    assert not entered  # still waiting its turn
    released = time.monotonic()
    fcntl.flock(held, fcntl.LOCK_UN)
    thread.join(5)
    os.close(held)
    assert entered and entered[0] - released < 0.05  # in within a few polls, not SQLite's sleeps
