"""What people do to the reminders (the protocol, a calendar feed's address), shared by the
API and the pages, audited once."""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.auth import User
from companion.db import write
from companion.reminders import calendar, protocol_store


def change_protocol(
    db: sqlite_utils.Database, actor: User, steps: list[dict], now: datetime
) -> dict:
    """Save validated steps as the actor's clinic's new protocol version; sessions keep theirs."""
    with write(db):
        row = protocol_store.save_protocol(db, actor.clinic_id, steps, actor.id, now)
        audit.record("protocol_changed", detail=f"version={row['version']}", actor=actor)
    return row


def reset_calendar(db: sqlite_utils.Database, actor: User, client: dict) -> str:
    """Give a client a new calendar feed address (the client or their clinic asks); the old
    one stops working at once. Return the new token."""
    with write(db):
        token = calendar.rotate(db, client["id"])
        audit.record("calendar_link_reset", client_id=client["id"], actor=actor)
    return token
