"""What a practitioner does in review, each audited once: act on a flag, erase a client.

The API routes and the pages both call these, with the acting practitioner (the signed-in
User) given explicitly.
"""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.db import write
from companion.review import erasure, queue


def act_on_flag(
    db: sqlite_utils.Database, actor, flag_id: int, action: str, note: str | None, now: datetime
) -> dict:
    """Acknowledge, record a call on, or resolve a flag of the actor's clinic."""
    flag = queue.get_flag(db, flag_id, actor.clinic_id)
    updated = queue.act(db, flag, action, actor.id, note, now)
    audit.record(
        f"flag_{action}", client_id=flag["client_id"], detail=f"flag={flag_id}", actor=actor
    )
    return updated


def erase_client(
    db: sqlite_utils.Database, actor, client: dict, photos_dir: str, now: datetime
) -> None:
    """Erase a client of the actor's clinic, leaving no byte of them in the instance folder.

    The audit log keeps every entry about the client (by id, with no personal data) and
    gains this one, in the same transaction as the deletes.
    """
    with write(db):
        erasure.forget_client(db, client["id"])
        audit.record("client_erased", client_id=client["id"], actor=actor)
    erasure.remove_photos(photos_dir, client["id"])
    erasure.clear_old_frames(db)
