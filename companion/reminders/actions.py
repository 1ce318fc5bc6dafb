"""What practitioners do to the reminders, shared by the API and the pages, audited once."""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.auth import User
from companion.db import write
from companion.reminders import protocol_store


def change_protocol(
    db: sqlite_utils.Database, actor: User, steps: list[dict], now: datetime
) -> dict:
    """Save validated steps as the actor's clinic's new protocol version; sessions keep theirs."""
    with write(db):
        row = protocol_store.save_protocol(db, actor.clinic_id, steps, actor.id, now)
        audit.record("protocol_changed", detail=f"version={row['version']}", actor=actor)
    return row
