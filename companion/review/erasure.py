"""Erasure: delete every row and photo about a client, leaving no byte of them in any file.

What stays is the audit log (pseudonymous: the client's id, never a name, a phone or a note):
who read, exported or erased the client, and who was refused, outlives the client. Ids are
never reused (AUTOINCREMENT, migration m006), so that history never passes to a new client.
"""

import logging
import shutil
import time

import sqlite_utils

from companion.db import write
from companion.reminders import outbox

log = logging.getLogger(__name__)


def forget_client(db: sqlite_utils.Database, client_id: int) -> None:
    """Delete every row about a client, except the audit log's, in one transaction."""
    ids = {"client_id": client_id}
    with write(db):
        outbox.forget_client(db, client_id)
        db.conn.execute(
            "DELETE FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = :client_id",
            ids,
        )
        db.conn.execute(
            "DELETE FROM auth_sessions WHERE user_kind = 'client' AND user_id = :client_id", ids
        )
        # Cascades remove invites, sessions, check-ins, photos rows, flags and their events,
        # and practitioner alerts about this client.
        db.conn.execute("DELETE FROM clients WHERE id = :client_id", ids)
        # The audit keeps every row; the one personal datum in it is the address the
        # client's own phone acted from. Practitioners' addresses stay, as evidence.
        db.conn.execute(
            "UPDATE audit_log SET address = NULL"
            " WHERE actor_kind = 'client' AND actor_id = :client_id AND address IS NOT NULL",
            ids,
        )


def remove_photos(photos_dir: str, client_id: int) -> None:
    """Delete the client's photo files (their folder)."""
    shutil.rmtree(f"{photos_dir}/{client_id}", ignore_errors=True)


def clear_old_frames(db: sqlite_utils.Database, tries: int = 3) -> bool:
    """Copy the WAL into the database file and truncate it to nothing; True when done.

    Deleted rows are zeroed in the database file (PRAGMA secure_delete, set on every
    connection), but the WAL still holds the pages as they were before, for as long as it
    is not reset: minutes, on a quiet instance. A TRUNCATE checkpoint waits (busy timeout)
    for readers of older snapshots, then empties the file. Called outside any transaction.
    """
    for attempt in range(tries):
        busy, _pages, _copied = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        time.sleep(0.05 * (attempt + 1))
    log.warning("erasure: the WAL could not be emptied (busy); old frames stay until it is")
    return False
