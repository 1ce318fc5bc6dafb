"""Erasure: delete every row and photo about a client, keeping only an anonymous record of it."""

import shutil
from datetime import datetime

import sqlite_utils

from companion.db import write
from companion.reminders import outbox


def erase_client(db: sqlite_utils.Database, client: dict, photos_dir: str, now: datetime) -> None:
    """Delete every row and photo about a client; keep only an anonymous record of the erasure."""
    ids = {"client_id": client["id"]}
    with write(db):
        outbox.forget_client(db, client["id"])
        db.conn.execute(
            "DELETE FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = :client_id",
            ids,
        )
        db.conn.execute(
            "DELETE FROM auth_sessions WHERE user_kind = 'client' AND user_id = :client_id", ids
        )
        db.conn.execute("DELETE FROM audit_log WHERE client_id = :client_id", ids)
        # Cascades remove invites, sessions, check-ins, photos rows, flags and their events,
        # and practitioner alerts about this client.
        db.conn.execute("DELETE FROM clients WHERE id = :client_id", ids)
    shutil.rmtree(f"{photos_dir}/{client['id']}", ignore_errors=True)
