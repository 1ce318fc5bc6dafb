"""The per-thread connection: kept across requests, never carrying a transaction over."""

import threading

from companion.cli import migrate
from companion.db import get_db


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
