"""What a practitioner does in review, each audited once: act on a flag, erase a client.

The API routes and the pages both call these, with the acting practitioner (the signed-in
User) given explicitly.
"""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.db import write
from companion.errors import Invalid, NotFound
from companion.review import erasure, queue, recoveries


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


def act_on_recovery(
    db: sqlite_utils.Database,
    actor,
    session_id: int,
    action: str,
    note: str | None,
    now: datetime,
    flag_ids: list[int] | None = None,
) -> dict:
    """Act on a recovery (a session of the actor's clinic): its active flags, or those named.

    Returns the recovery with the flags acted on and those still active.
    """
    session_flags = recoveries.active_flags(db, actor.clinic_id, session_id, resolved=True)
    if not session_flags:
        raise NotFound("recovery", message="This session has no flags to act on.")
    if flag_ids is not None:
        known = {f["id"] for f in session_flags}
        stray = [i for i in flag_ids if i not in known]
        if stray:
            raise Invalid(
                {"flag_ids": "Not flags of this recovery: " + ", ".join(map(str, stray)) + "."}
            )
        chosen = [f for f in session_flags if f["id"] in flag_ids]
    else:
        chosen = [f for f in session_flags if f["status"] != "resolved"]
    done = recoveries.act(db, actor, chosen, action, note, now)
    shown = {f["id"] for f in done} | {f["id"] for f in chosen}
    return recoveries.recovery_of(db, actor.clinic_id, session_id, shown, now)


def act_on_flags(
    db: sqlite_utils.Database,
    actor,
    flag_ids: list[int],
    action: str,
    note: str | None,
    now: datetime,
) -> list[dict]:
    """Act on the flags of one recovery row that the practitioner saw (the queue page's forms)."""
    flags = recoveries.flags_by_id(db, actor.clinic_id, flag_ids)
    if not flags:
        raise NotFound("flag")
    return recoveries.act(db, actor, flags, action, note, now)
