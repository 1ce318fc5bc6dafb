"""Clinics' aftercare protocol versions: storing a new version and reading one back.

The steps themselves (the default protocol, their validation) are in reminders/protocol.py.
A session keeps the version it was planned from; planning it is the outbox's job.
"""

import json
from datetime import datetime

import sqlite_utils

from companion.db import iso, one
from companion.reminders import protocol


def current_protocol(db: sqlite_utils.Database, clinic_id: int) -> dict:
    """Return the clinic's newest protocol version, steps decoded."""
    row = one(
        db,
        "SELECT * FROM protocols WHERE clinic_id = :clinic_id ORDER BY version DESC LIMIT 1",
        {"clinic_id": clinic_id},
    )
    return _decode(row)


def protocol_by_id(db: sqlite_utils.Database, protocol_id: int) -> dict:
    """Return one protocol version, steps decoded."""
    return _decode(one(db, "SELECT * FROM protocols WHERE id = :id", {"id": protocol_id}))


def _decode(row: dict | None) -> dict | None:
    if row is not None:
        row["steps"] = json.loads(row["steps"])
    return row


def save_protocol(
    db: sqlite_utils.Database,
    clinic_id: int,
    steps: list[dict] | None,
    practitioner_id: int | None,
    now: datetime,
) -> dict:
    """Store a new version of a clinic's protocol (the default when steps is None)."""
    latest = one(
        db,
        "SELECT max(version) AS v FROM protocols WHERE clinic_id = :clinic_id",
        {"clinic_id": clinic_id},
    )
    db["protocols"].insert(
        {
            "clinic_id": clinic_id,
            "version": (latest["v"] or 0) + 1,
            "steps": json.dumps(steps if steps is not None else protocol.DEFAULT_STEPS),
            "created_by": practitioner_id,
            "created_at": iso(now),
        }
    )
    return current_protocol(db, clinic_id)


def protocol_dict(row: dict) -> dict:
    """Shape a protocol version for the API and the protocol page."""
    return {
        "id": row["id"],
        "version": row["version"],
        "created_at": row["created_at"],
        "steps": [dict(s, when=protocol.describe_at(s["at"])) for s in row["steps"]],
    }
