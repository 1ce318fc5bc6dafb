"""What a practitioner does in review, each audited once: act on a flag, erase a client.

The API routes and the pages both call these, with the acting practitioner given.
"""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.review import erasure, queue


def act_on_flag(
    db: sqlite_utils.Database,
    practitioner: dict,
    flag_id: int,
    action: str,
    note: str | None,
    now: datetime,
) -> dict:
    """Acknowledge, record a call on, or resolve a flag of the practitioner's clinic."""
    flag = queue.get_flag(db, flag_id, practitioner["clinic_id"])
    updated = queue.act(db, flag, action, practitioner["id"], note, now)
    audit.record(
        f"flag_{action}",
        client_id=flag["client_id"],
        clinic_id=practitioner["clinic_id"],
        detail=f"flag={flag_id}",
        actor_kind="practitioner",
        actor_id=practitioner["id"],
    )
    return updated


def erase_client(
    db: sqlite_utils.Database, practitioner: dict, client: dict, photos_dir: str, now: datetime
) -> None:
    """Erase a client of the practitioner's clinic; the audit keeps only that it happened."""
    erasure.erase_client(db, client, photos_dir, now)
    audit.record(
        "client_erased",
        client_id=client["id"],
        clinic_id=practitioner["clinic_id"],
        actor_kind="practitioner",
        actor_id=practitioner["id"],
    )
