"""What a practitioner does to treatment sessions, shared by the API and the session form.

Each action writes in one transaction (the reminders are planned in it) and records itself
in the audit log once, for the actor given.
"""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.auth import User
from companion.db import write
from companion.treatments import store


def record_session(
    db: sqlite_utils.Database, actor: User, client: dict, values: dict, now: datetime
) -> dict:
    """Record a session from a parsed SessionInput and plan its reminders."""
    with write(db):
        session = store.create_session(db, client, actor.id, values, now)
        audit.record(
            "session_created",
            client_id=client["id"],
            detail=f"session={session['id']}",
            actor=actor,
        )
    return session


def edit_session(
    db: sqlite_utils.Database, actor: User, session: dict, client: dict, values: dict, now: datetime
) -> dict:
    """Change a session; a new time re-plans the reminders not yet sent."""
    with write(db):
        session = store.update_session(db, session, client, values, now)
        audit.record(
            "session_updated",
            client_id=client["id"],
            detail=f"session={session['id']}",
            actor=actor,
        )
    return session


def delete_session(db: sqlite_utils.Database, actor: User, session: dict, now: datetime) -> None:
    """Delete a session and cancel its reminders not yet sent."""
    with write(db):
        store.delete_session(db, session, now)
        audit.record(
            "session_deleted",
            client_id=session["client_id"],
            detail=f"session={session['id']}",
            actor=actor,
        )
