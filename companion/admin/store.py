"""What the administration pages read and change of a clinic's practitioners."""

import sqlite_utils

from companion.db import one, rows, write


def team(db: sqlite_utils.Database, clinic_id: int) -> list[dict]:
    """Return the clinic's practitioners by name, active or not."""
    return rows(
        db,
        "SELECT id, name, email, role, active FROM practitioners WHERE clinic_id = :clinic_id"
        " ORDER BY name",
        {"clinic_id": clinic_id},
    )


def alert_severities(db: sqlite_utils.Database, practitioner_id: int) -> list[str]:
    """Return the severities a practitioner is alerted about."""
    row = one(
        db, "SELECT alert_severities FROM practitioners WHERE id = :id", {"id": practitioner_id}
    )
    return row["alert_severities"].split(",")


def set_alert_severities(
    db: sqlite_utils.Database, practitioner_id: int, severities: list[str]
) -> None:
    """Choose which severities alert a practitioner (none is allowed)."""
    with write(db):
        db.conn.execute(
            "UPDATE practitioners SET alert_severities = :severities WHERE id = :id",
            {"severities": ",".join(severities), "id": practitioner_id},
        )
