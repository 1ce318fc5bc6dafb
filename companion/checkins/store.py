"""Symptom check-ins: validation, idempotent storage, replay and rate limit; shaping for the API.

A stored check-in is triaged (checkins/triage.py) and its findings become flags
(checkins/flags.py) in the same transaction.

Past 300 lines on purpose: submit() is one write transaction (allowance, session, the history
triage compares, insert, flags), read top to bottom beside the reads that shape its rows.
"""

import json
import sqlite3
from datetime import datetime, timedelta

import sqlite_utils

from companion.checkins import answers, flags, triage
from companion.clinical import day_number
from companion.db import iso, one, parse_iso, rows, write
from companion.errors import N_, Conflict, Invalid, NotFound, RateLimited
from companion.i18n import in_language

# The stored columns, in the order of the table.
COLUMNS = (
    "id",
    "client_id",
    "clinic_id",
    "session_id",
    "taken_at",
    "received_at",
    "redness",
    "swelling",
    "pain",
    "symptoms",
    "warning_signs",
    "note",
    "assessment",
)
INSERT_CHECKIN = (
    f"INSERT INTO checkins ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
)


def _decode(row: dict) -> dict:
    row = dict(row)
    for key in ("symptoms", "warning_signs", "assessment"):
        if key in row:
            row[key] = json.loads(row[key])
    return row


def as_triage(row: dict) -> dict:
    """Return what triage reads of a stored or new check-in."""
    return {
        "id": row["id"],
        "taken_at": parse_iso(row["taken_at"])
        if isinstance(row["taken_at"], str)
        else row["taken_at"],
        # Two check-ins taken at the same moment: the later arrival is the newer (triage._order).
        "received_at": parse_iso(row["received_at"])
        if isinstance(row.get("received_at"), str)
        else row.get("received_at"),
        "redness": row["redness"],
        "swelling": row["swelling"],
        "pain": row["pain"],
        "symptoms": row["symptoms"],
        "warning_signs": row["warning_signs"],
        "note": row.get("note"),
    }


def session_for_triage(session: dict, timezone: str = "UTC") -> dict:
    """Return what triage reads of a treatment session (timezone: the client's, for "day N")."""
    return {
        "performed_at": parse_iso(session["performed_at"]),
        "needle_depth_mm": session["needle_depth_mm"],
        "timezone": timezone,
    }


def checkin_dict(db: sqlite_utils.Database, row: dict) -> dict:
    """Shape one stored check-in for the API, with its photos."""
    return checkin_dicts(db, [row])[0]


def checkin_dicts(db: sqlite_utils.Database, found: list[dict]) -> list[dict]:
    """Shape check-in rows for the API with their photos: one photo query per 500 check-ins."""
    photos: dict[str, list[dict]] = {}
    days: dict[str, int] = {}
    ids = [r["id"] for r in found]
    for start in range(0, len(ids), 500):
        part = {f"id{i}": checkin_id for i, checkin_id in enumerate(ids[start : start + 500])}
        # "Day N" from the session and the client's zone as they are now (clinical.day_number):
        # an edited session time or a moved client never leaves a stale day behind.
        for d in rows(
            db,
            "SELECT k.id, k.taken_at, s.performed_at, c.timezone FROM checkins k"
            " JOIN treatment_sessions s ON s.id = k.session_id"
            " JOIN clients c ON c.id = k.client_id"
            f" WHERE k.id IN ({', '.join(':' + name for name in part)})",
            part,
        ):
            days[d["id"]] = day_number(
                parse_iso(d["performed_at"]), parse_iso(d["taken_at"]), d["timezone"]
            )
        for p in rows(
            db,
            "SELECT checkin_id, id, width, height, bytes FROM photos WHERE checkin_id"
            f" IN ({', '.join(':' + name for name in part)}) ORDER BY created_at",
            part,
        ):
            photos.setdefault(p.pop("checkin_id"), []).append(dict(p, url=f"/api/photos/{p['id']}"))
    return [_shape(row, photos.get(row["id"], []), days.get(row["id"])) for row in found]


def _shape(row: dict, photos: list[dict], day: int | None = None) -> dict:
    row = _decode(row) if isinstance(row.get("assessment"), str) else row
    return {
        "id": row["id"],
        "client_id": row["client_id"],
        "session_id": row["session_id"],
        "taken_at": row["taken_at"],
        "received_at": row["received_at"],
        "redness": row["redness"],
        "swelling": row["swelling"],
        "pain": row["pain"],
        "symptoms": row["symptoms"],
        "warning_signs": row["warning_signs"],
        "note": row["note"],
        "day": row["assessment"].get("day") if day is None else day,
        "assessment": {k: row["assessment"][k] for k in ("status", "message", "flags")},
        "photos": photos,
    }


def submit(
    db: sqlite_utils.Database,
    client: dict,
    data: dict,
    now: datetime,
    *,
    per_hour: int | None = None,
) -> tuple[dict, bool]:
    """Store a check-in once (a replay returns the stored answer); triage it; raise flags.

    per_hour is the client's hourly allowance (CHECKIN_RATE_PER_HOUR, from the edge); None,
    for the server's own check-ins (the demo), sets no limit.
    """
    existing = _stored(db, data["id"])
    if existing is not None:
        return _replay(db, existing, client)
    # A fast phone clock is accepted (CheckinInput's CLOCK_SKEW), but nothing is taken after
    # it arrived: a time ahead of ours is stored as the arrival, so that the next answer, from
    # a right clock, is not read as an older one (whose score rules triage leaves out).
    data = dict(data, taken_at=min(data["taken_at"], now))
    with write(db):
        # Counted inside the write transaction: writers take turns, so concurrent check-ins
        # each see the ones before them and the limit holds exactly.
        if per_hour is not None:
            _rate_limit(db, client, now, per_hour)
        session, clinic_phone = _session_for(db, client, data)
        # Triage compares the check-in with the one before it and needs to know whether a
        # later one exists (a late arrival); the two stored ones at or before it (by taken_at,
        # then arrival, as triage orders them: one taken at the same moment arrived earlier) and the first after it are all it can need (one
        # statement; triage sorts them).
        columns = (
            "id, taken_at, received_at, redness, swelling, pain, symptoms, warning_signs, note"
        )
        history = [
            as_triage(_decode(r))
            for r in rows(
                db,
                f"SELECT * FROM (SELECT {columns} FROM checkins WHERE session_id = :session_id"
                " AND taken_at <= :taken_at ORDER BY taken_at DESC, received_at DESC, id DESC LIMIT 2)"
                f" UNION ALL SELECT * FROM (SELECT {columns} FROM checkins"
                " WHERE session_id = :session_id AND taken_at > :taken_at"
                " ORDER BY taken_at, received_at, id LIMIT 1)",
                {"session_id": session["id"], "taken_at": iso(data["taken_at"])},
            )
        ]
        new = dict(data, received_at=now)
        with in_language(client.get("language")):  # the answer's words: the client's
            assessment = triage.assess(
                session_for_triage(session, client["timezone"]),
                [*history, as_triage(new)],
                clinic_phone,
                checkin_id=data["id"],
                review_day=answers.review_day(now, now, client["timezone"]),
            )
        row = {
            "id": data["id"],
            "client_id": client["id"],
            "clinic_id": client["clinic_id"],
            "session_id": session["id"],
            "taken_at": iso(data["taken_at"]),
            "received_at": iso(now),
            "redness": data["redness"],
            "swelling": data["swelling"],
            "pain": data["pain"],
            "symptoms": json.dumps(data["symptoms"]),
            "warning_signs": json.dumps(data["warning_signs"]),
            "note": data.get("note") or "",
            "assessment": json.dumps(assessment),
        }
        try:
            db.conn.execute(INSERT_CHECKIN, row)
        except sqlite3.IntegrityError:
            # The same id raced in from a second tab or the service worker.
            existing = _stored(db, data["id"])
            if existing is None:
                raise
            return _replay(db, existing, client)
        flags.apply_findings(
            db,
            client,
            session,
            data["id"],
            assessment["flags"],
            now,
            late=assessment["superseded"],
        )
    return _shape(row, []), True  # as stored: a new check-in has no photos yet


def _stored(db: sqlite_utils.Database, checkin_id: str) -> dict | None:
    return one(db, "SELECT * FROM checkins WHERE id = :id", {"id": checkin_id})


def _replay(db, existing: dict, client: dict) -> tuple[dict, bool]:
    if existing["client_id"] != client["id"]:
        raise Conflict(
            N_("This check-in id is already used; make a new one."),
            "id_conflict",
            {"id": N_("Already used.")},
        )
    return checkin_dict(db, existing), False


def _rate_limit(db, client: dict, now: datetime, limit: int) -> None:
    recent = one(
        db,
        "SELECT count(*) AS n, min(received_at) AS first FROM checkins"
        " WHERE client_id = :client_id AND received_at > :since",
        {"client_id": client["id"], "since": iso(now - timedelta(hours=1))},
    )
    if recent["n"] >= limit:
        wait = parse_iso(recent["first"]) + timedelta(hours=1) - now
        raise RateLimited(
            N_("Too many check-ins in the last hour; try later."),
            max(1, int(wait.total_seconds()) + 1),
            "too_many_checkins",
        )


# The session with the client's clinic's phone number (triage's advice names it), in one read.
SESSION_WITH_PHONE = (
    "SELECT s.*, c.phone AS _clinic_phone FROM treatment_sessions s"
    " JOIN clinics c ON c.id = :clinic_id WHERE s.client_id = :client_id"
)


def _session_for(db, client: dict, data: dict) -> tuple[dict, str | None]:
    """The named session, else the client's latest session before the check-in was taken;
    and its clinic's phone number."""
    ids = {"client_id": client["id"], "clinic_id": client["clinic_id"]}
    if data.get("session_id") is not None:
        session = one(db, SESSION_WITH_PHONE + " AND s.id = :id", ids | {"id": data["session_id"]})
        if session is None:
            raise NotFound("session")
    else:
        session = one(
            db,
            SESSION_WITH_PHONE
            + " AND s.performed_at <= :taken_at ORDER BY s.performed_at DESC LIMIT 1",
            ids | {"taken_at": iso(data["taken_at"])},
        )
        if session is None:
            raise Conflict(
                N_("There is no treatment session before this check-in; ask your clinic."),
                "no_session",
            )
    if parse_iso(session["performed_at"]) > data["taken_at"]:
        raise Invalid({"taken_at": N_("This is before the session it belongs to.")})
    return session, session.pop("_clinic_phone")


def list_for_client(db: sqlite_utils.Database, client_id: int, limit: int = 200) -> list[dict]:
    """Return a client's check-ins, newest first."""
    return checkin_dicts(
        db,
        rows(
            db,
            "SELECT * FROM checkins WHERE client_id = :client_id"
            " ORDER BY taken_at DESC, received_at DESC LIMIT :limit",
            {"client_id": client_id, "limit": limit},
        ),
    )


def for_chart(db: sqlite_utils.Database, session_id: int) -> tuple[list[dict], dict | None]:
    """Return a treatment session's check-ins as its chart reads them (oldest first), and the
    latest one's assessment (status, message, flags, day, received_at), or None without
    check-ins.

    The client's home page reads only these: no photos, no "day N", one assessment decoded.
    """
    found = rows(
        db,
        "SELECT id, taken_at, redness, swelling, pain, symptoms, warning_signs, note, assessment,"
        " received_at FROM checkins WHERE session_id = :session_id ORDER BY taken_at, received_at",
        {"session_id": session_id},
    )
    if not found:
        return [], None
    latest = json.loads(found[-1]["assessment"])
    shown = {k: latest[k] for k in ("status", "message", "flags")}
    return found, dict(shown, day=latest.get("day"), received_at=found[-1]["received_at"])
