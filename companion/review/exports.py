"""Exports: check-ins and flags as CSV (a client's, or the clinic's over dates), a client as JSON.

The FHIR R4 export is in review/fhir.py.
"""

import csv
import io
from datetime import datetime

import sqlite_utils

from companion.accounts.clients import client_dict
from companion.checkins.store import checkin_dicts
from companion.clinical import SYMPTOMS, WARNING_SIGNS
from companion.db import iso, rows
from companion.review.timeline import timeline

SCORE_COLUMNS = (
    "id",
    "client_id",
    "session_id",
    "taken_at",
    "received_at",
    "day",
    "redness",
    "swelling",
    "pain",
)
CHECKIN_COLUMNS = [
    *SCORE_COLUMNS,
    *(f"symptoms.{k}" for k in SYMPTOMS),
    *(f"warning_signs.{k}" for k in WARNING_SIGNS),
    "note",
    "assessment_status",
    "assessment_flags",
]
FLAG_COLUMNS = [
    "id",
    "client_id",
    "session_id",
    "rule",
    "severity",
    "status",
    "reason",
    "opened_at",
    "acknowledged_at",
    "called_at",
    "resolved_at",
    "note",
]


def _checkin_csv_rows(db: sqlite_utils.Database, where: str, params: dict) -> list[dict]:
    out = []
    for c in checkin_dicts(
        db, rows(db, f"SELECT * FROM checkins WHERE {where} ORDER BY taken_at, id", params)
    ):
        row = {k: c.get(k) for k in (*SCORE_COLUMNS, "note")}
        row.update({f"symptoms.{k}": c["symptoms"].get(k, False) for k in SYMPTOMS})
        row.update({f"warning_signs.{k}": c["warning_signs"].get(k, False) for k in WARNING_SIGNS})
        row["assessment_status"] = c["assessment"]["status"]
        row["assessment_flags"] = " ".join(f["rule"] for f in c["assessment"]["flags"])
        out.append(row)
    return out


def client_checkin_rows(db: sqlite_utils.Database, client: dict) -> list[dict]:
    """Return a client's check-ins as CSV rows (CHECKIN_COLUMNS), oldest first."""
    # By clinic as well as by id, here and in every export: one filter wrong is not enough.
    return _checkin_csv_rows(
        db,
        "client_id = :client_id AND clinic_id = :clinic_id",
        {"client_id": client["id"], "clinic_id": client["clinic_id"]},
    )


def _between(column: str, clinic_id: int, start: str | None, end: str | None) -> tuple[str, dict]:
    where = "clinic_id = :clinic_id"
    if start:
        where += f" AND {column} >= :start"
    if end:
        where += f" AND {column} < :end"
    return where, {"clinic_id": clinic_id, "start": start, "end": end}


def clinic_checkin_rows(
    db: sqlite_utils.Database, clinic_id: int, start: str | None, end: str | None
) -> list[dict]:
    """Return the clinic's check-ins taken in [start, end) as CSV rows (CHECKIN_COLUMNS)."""
    return _checkin_csv_rows(db, *_between("taken_at", clinic_id, start, end))


def clinic_flag_rows(
    db: sqlite_utils.Database, clinic_id: int, start: str | None, end: str | None
) -> list[dict]:
    """Return the clinic's flags opened in [start, end), oldest first (FLAG_COLUMNS)."""
    where, params = _between("opened_at", clinic_id, start, end)
    return rows(db, f"SELECT * FROM flags WHERE {where} ORDER BY opened_at, id", params)


def to_csv(columns: list[str], records: list[dict]) -> str:
    """Write records as CSV with these columns, neutralising spreadsheet formulas."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        # Neutralise spreadsheet formulas in free text (CSV injection); an empty cell stays empty.
        writer.writerow(
            {
                k: ("'" + v if isinstance(v, str) and v and v[0] in "=+-@\t\r" else v)
                for k, v in r.items()
            }
        )
    return buf.getvalue()


def client_bundle(db: sqlite_utils.Database, client: dict) -> dict:
    """Everything stored about a client, as one JSON document."""
    ids = {"client_id": client["id"], "clinic_id": client["clinic_id"]}
    data = timeline(db, client)
    return {
        "exported_at": iso(datetime.now().astimezone()),
        "client": client_dict(client),
        "sessions": [
            dict(s["session"], schedule=s["schedule"], checkins=s["checkins"], flags=s["flags"])
            for s in data["sessions"]
        ],
        "checkins_without_session": checkin_dicts(
            db,
            rows(
                db,
                "SELECT * FROM checkins WHERE client_id = :client_id"
                " AND clinic_id = :clinic_id AND session_id IS NULL",
                ids,
            ),
        ),
        "devices": [
            {k: d[k] for k in ("id", "user_agent", "created_at", "last_success_at", "gone_at")}
            for d in data["devices"]
        ],
        "audit": rows(
            db,
            "SELECT at, actor_kind, actor_id, action, detail FROM audit_log"
            " WHERE client_id = :client_id AND clinic_id = :clinic_id ORDER BY id",
            ids,
        ),
    }
