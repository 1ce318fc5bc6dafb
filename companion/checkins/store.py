"""Symptom check-ins: validation, idempotent insert, triage, flags and practitioner alerts."""

import json
import sqlite3
import uuid
from datetime import datetime, timedelta

import sqlite_utils
from flask import current_app

from companion.checkins import triage
from companion.db import iso, one, parse_iso, rows, write
from companion.errors import ApiError, Invalid, not_found
from companion.validation import Fields

SYMPTOMS = ("bruising", "peeling", "itching", "oozing", "bumps", "patches")
WARNINGS = ("spreading_redness", "fever", "pus", "eye_or_breathing", "blisters")
FIELDS = {
    "id",
    "session_id",
    "taken_at",
    "redness",
    "swelling",
    "pain",
    "symptoms",
    "warning_signs",
    "note",
}
# A phone's clock may run a little fast; more than this ahead of ours is a wrong clock.
CLOCK_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=90)


def checkin_fields(data: object, now: datetime) -> dict:
    f = Fields(data, FIELDS)
    f.text("id", max_len=36)
    if "id" in f.clean:
        try:
            f.clean["id"] = str(uuid.UUID(f.clean["id"]))
        except ValueError:
            f.errors["id"] = "Must be a UUID made on the phone, e.g. crypto.randomUUID()."
    f.number("session_id", lo=1, hi=2**62, integer=True, required=False)
    f.moment("taken_at")
    f.number("redness", lo=0, hi=4, integer=True)
    f.number("swelling", lo=0, hi=4, integer=True)
    f.number("pain", lo=0, hi=10, integer=True)
    f.flags("symptoms", SYMPTOMS)
    f.flags("warning_signs", WARNINGS)
    f.text("note", required=False, max_len=2000)
    taken = f.clean.get("taken_at")
    if taken is not None:
        if taken > now + CLOCK_SKEW:
            f.errors["taken_at"] = "This is in the future; check the phone's clock."
        elif taken < now - MAX_AGE:
            f.errors["taken_at"] = "This is more than 90 days ago."
    return f.done()


def _decode(row: dict) -> dict:
    row = dict(row)
    for key in ("symptoms", "warning_signs", "assessment"):
        if key in row:
            row[key] = json.loads(row[key])
    return row


def as_triage(row: dict) -> dict:
    return {
        "id": row["id"],
        "taken_at": parse_iso(row["taken_at"])
        if isinstance(row["taken_at"], str)
        else row["taken_at"],
        "redness": row["redness"],
        "swelling": row["swelling"],
        "pain": row["pain"],
        "symptoms": row["symptoms"],
        "warning_signs": row["warning_signs"],
        "note": row.get("note"),
    }


def session_for_triage(session: dict) -> dict:
    return {
        "performed_at": parse_iso(session["performed_at"]),
        "needle_depth_mm": session["needle_depth_mm"],
    }


def checkin_dict(db: sqlite_utils.Database, row: dict) -> dict:
    return checkin_dicts(db, [row])[0]


def checkin_dicts(db: sqlite_utils.Database, found: list[dict]) -> list[dict]:
    """Shape check-in rows for the API with their photos: one photo query per 500 check-ins."""
    photos: dict[str, list[dict]] = {}
    ids = [r["id"] for r in found]
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for p in rows(
            db,
            f"SELECT checkin_id, id, width, height, bytes FROM photos WHERE checkin_id"
            f" IN ({','.join('?' * len(part))}) ORDER BY created_at",
            part,
        ):
            photos.setdefault(p.pop("checkin_id"), []).append(dict(p, url=f"/api/photos/{p['id']}"))
    return [_shape(row, photos.get(row["id"], [])) for row in found]


def _shape(row: dict, photos: list[dict]) -> dict:
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
        "day": row["assessment"].get("day"),
        "assessment": {k: row["assessment"][k] for k in ("status", "message", "flags")},
        "photos": photos,
    }


def submit(db: sqlite_utils.Database, client: dict, data: dict, now: datetime) -> tuple[dict, bool]:
    """Store a check-in once (a replay returns the stored answer); triage it; raise flags."""
    existing = one(db, "SELECT * FROM checkins WHERE id = ?", (data["id"],))
    if existing is not None:
        return _replay(db, existing, client)
    _rate_limit(db, client, now)
    with write(db):
        session = _session_for(db, client, data)
        # Triage compares the latest check-in with the one before it, so the two latest
        # stored ones (by taken_at, then id, as triage orders them) are all it can need.
        history = [
            as_triage(_decode(r))
            for r in rows(
                db,
                "SELECT id, taken_at, redness, swelling, pain, symptoms, warning_signs, note"
                " FROM checkins WHERE session_id = ? AND taken_at <= ?"
                " ORDER BY taken_at DESC, id DESC LIMIT 2",
                (session["id"], iso(data["taken_at"])),
            )
        ]
        clinic_row = one(db, "SELECT phone FROM clinics WHERE id = ?", (client["clinic_id"],))
        new = dict(data, symptoms=data["symptoms"], warning_signs=data["warning_signs"])
        assessment = triage.assess(
            session_for_triage(session), [*history, as_triage(new)], clinic_row["phone"]
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
            db.conn.execute(
                f"INSERT INTO checkins ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        except sqlite3.IntegrityError:
            # The same id raced in from a second tab or the service worker.
            existing = one(db, "SELECT * FROM checkins WHERE id = ?", (data["id"],))
            if existing is None:
                raise
            return _replay(db, existing, client)
        apply_findings(db, client, session, data["id"], assessment["flags"], now)
    return _shape(row, []), True  # as stored: a new check-in has no photos yet


def _replay(db, existing: dict, client: dict) -> tuple[dict, bool]:
    if existing["client_id"] != client["id"]:
        raise ApiError(
            409,
            "id_conflict",
            "This check-in id is already used; make a new one.",
            {"id": "Already used."},
        )
    return checkin_dict(db, existing), False


def _rate_limit(db, client: dict, now: datetime) -> None:
    limit = current_app.config["CHECKIN_RATE_PER_HOUR"]
    recent = one(
        db,
        "SELECT count(*) AS n, min(received_at) AS first FROM checkins"
        " WHERE client_id = ? AND received_at > ?",
        (client["id"], iso(now - timedelta(hours=1))),
    )
    if recent["n"] >= limit:
        wait = parse_iso(recent["first"]) + timedelta(hours=1) - now
        raise ApiError(
            429,
            "too_many_checkins",
            "Too many check-ins in the last hour; try later.",
            headers={"Retry-After": str(max(1, int(wait.total_seconds()) + 1))},
        )


def _session_for(db, client: dict, data: dict) -> dict:
    """The named session, else the client's latest session before the check-in was taken."""
    if data.get("session_id") is not None:
        session = one(
            db,
            "SELECT * FROM treatment_sessions WHERE id = ? AND client_id = ?",
            (data["session_id"], client["id"]),
        )
        if session is None:
            raise not_found("session")
    else:
        session = one(
            db,
            "SELECT * FROM treatment_sessions WHERE client_id = ? AND performed_at <= ?"
            " ORDER BY performed_at DESC LIMIT 1",
            (client["id"], iso(data["taken_at"])),
        )
        if session is None:
            raise ApiError(
                409,
                "no_session",
                "There is no treatment session before this check-in; ask your clinic.",
            )
    if parse_iso(session["performed_at"]) > data["taken_at"]:
        raise Invalid({"taken_at": "This is before the session it belongs to."})
    return session


def apply_findings(
    db, client: dict, session: dict, checkin_id: str | None, findings: list[dict], now: datetime
) -> list[dict]:
    """Open, escalate or update flags (one open per session and rule); alert on new urgency."""
    open_flags = rows(
        db, "SELECT * FROM flags WHERE session_id = ? AND status != 'resolved'", (session["id"],)
    )
    alerts = []
    for action in triage.reconcile(open_flags, findings):
        if action["action"] == "open":
            flag_id = db.conn.execute(
                "INSERT INTO flags (clinic_id, client_id, session_id, checkin_id, rule, severity,"
                " reason, opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client["clinic_id"],
                    client["id"],
                    session["id"],
                    checkin_id,
                    action["rule"],
                    action["severity"],
                    action["reason"],
                    iso(now),
                    iso(now),
                ),
            ).lastrowid
        else:
            flag_id = action["id"]
            db.conn.execute(
                "UPDATE flags SET severity = ?, reason = ?, updated_at = ?,"
                " checkin_id = coalesce(?, checkin_id) WHERE id = ?",
                (action["severity"], action["reason"], iso(now), checkin_id, flag_id),
            )
        db.conn.execute(
            "INSERT INTO flag_events (flag_id, at, actor_kind, action, severity, reason)"
            " VALUES (?, ?, 'triage', ?, ?, ?)",
            (flag_id, iso(now), action["action"], action["severity"], action["reason"]),
        )
        alerts.append(dict(action, id=flag_id))
    for a in alerts:
        if a["action"] in ("open", "escalate"):
            alert_practitioners(db, client, session, a, now)
    return alerts


def alert_practitioners(db, client: dict, session: dict, flag: dict, now: datetime) -> int:
    """Queue a push to each practitioner of the clinic who wants alerts of this severity."""
    urgent = flag["severity"] == "urgent"
    title = ("Urgent: " if urgent else "Review: ") + f"{client['name']} ({flag['rule']})"
    count = 0
    for p in rows(
        db,
        "SELECT id, alert_severities FROM practitioners WHERE clinic_id = ? AND active = 1",
        (client["clinic_id"],),
    ):
        if flag["severity"] not in p["alert_severities"].split(","):
            continue
        db.conn.execute(
            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, session_id,"
            " flag_id, kind, title, body, url, urgency, due_at, expires_at, status,"
            " next_attempt_at, created_at) VALUES ('practitioner', ?, ?, ?, ?, ?, 'alert', ?, ?, ?,"
            " ?, ?, ?, 'pending', ?, ?)",
            (
                p["id"],
                client["clinic_id"],
                client["id"],
                session["id"],
                flag["id"],
                title[:60],
                flag["reason"][:200],
                f"/clinic/clients/{client['id']}",
                "high" if urgent else "normal",
                iso(now),
                iso(now + timedelta(hours=24)),
                iso(now),
                iso(now),
            ),
        )
        count += 1
    return count


def list_for_client(db, client_id: int, limit: int = 200) -> list[dict]:
    return checkin_dicts(
        db,
        rows(
            db,
            "SELECT * FROM checkins WHERE client_id = ? ORDER BY taken_at DESC LIMIT ?",
            (client_id, limit),
        ),
    )


def check_missed(db, now: datetime, window: timedelta = timedelta(hours=12)) -> int:
    """N3: flag sessions whose last two scheduled check-ins passed their window unanswered."""
    last = one(db, "SELECT at FROM heartbeats WHERE name = 'n3'")
    start = parse_iso(last["at"]) if last else now - timedelta(days=2)
    if now - start < timedelta(minutes=1):
        return 0
    # Only sessions with a check-in step whose answer window closed since the last run.
    sessions = rows(
        db,
        "SELECT DISTINCT session_id FROM notifications WHERE kind = 'checkin'"
        " AND due_at > ? AND due_at <= ? AND session_id IS NOT NULL",
        (iso(start - window), iso(now - window)),
    )
    opened = 0
    with write(db):
        for s in sessions:
            session = one(db, "SELECT * FROM treatment_sessions WHERE id = ?", (s["session_id"],))
            if session is None:
                continue
            due = [
                parse_iso(r["due_at"])
                for r in rows(
                    db,
                    "SELECT due_at FROM notifications WHERE session_id = ? AND kind = 'checkin'"
                    " AND status NOT IN ('cancelled', 'skipped') ORDER BY due_at",
                    (session["id"],),
                )
            ]
            taken = [
                parse_iso(r["taken_at"])
                for r in rows(
                    db, "SELECT taken_at FROM checkins WHERE session_id = ?", (session["id"],)
                )
            ]
            finding = triage.missed_checkins(due, taken, now, window)
            if finding:
                client = one(db, "SELECT * FROM clients WHERE id = ?", (session["client_id"],))
                opened += len(apply_findings(db, client, session, None, [finding], now))
        db.conn.execute(
            "INSERT INTO heartbeats (name, pid, at) VALUES ('n3', NULL, ?)"
            " ON CONFLICT(name) DO UPDATE SET at = excluded.at",
            (iso(now),),
        )
    return opened
