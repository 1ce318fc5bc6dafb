"""The review queue: flags urgent first then oldest, their counts, and acting on a flag."""

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from companion.checkins.triage import SIGN_WORDS
from companion.clinical import ACTIVE_STATUSES, FLAG_STATUSES, RULES, SEVERITIES_DESC
from companion.contract import parse_query
from companion.db import iso, one, parse_iso, rows, utcnow, write
from companion.errors import Conflict, Invalid, NotFound
from companion.review.models import FlagFilter

# Most urgent first: urgent 0, review 1, info 2.
SEVERITY_ORDER = (
    "CASE f.severity "
    + " ".join(f"WHEN '{s}' THEN {rank}" for rank, s in enumerate(SEVERITIES_DESC))
    + " END"
)
# The statuses each filter of the queue shows, by the name the API and the page use.
STATUS_FILTERS = {
    "active": ACTIVE_STATUSES,
    **{status: (status,) for status in FLAG_STATUSES},
    "all": FLAG_STATUSES,
}
FLAG_FIELDS = (
    "id",
    "rule",
    "severity",
    "status",
    "client_id",
    "session_id",
    "reason",
    "opened_at",
    "updated_at",
    "acknowledged_at",
    "called_at",
    "resolved_at",
    "note",
    "checkin_id",
)


# A moment as triage writes it into a reason (N3: "... (2026-11-27 09:00 UTC to ...)").
UTC_IN_REASON = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC")


def chip_reason(rule: str, reason: str | None, zone: ZoneInfo) -> str:
    """What a queue chip says under its rule's title: only what the title does not say.

    U1-U4 reasons repeat the sign ("Pus, yellow crusts or discharge reported on day 0"); the
    chip keeps "Reported on day 0". Times written in UTC (N3) are shown in `zone`, the
    clinic's, like every other time in the queue. Stored reasons stay whole (timeline, exports).
    """
    text = reason or ""
    for words in (SIGN_WORDS.get(rule), RULES.get(rule, {}).get("title")):
        if words and text.lower().startswith(words.lower() + " "):
            rest = text[len(words) + 1 :]
            text = rest[:1].upper() + rest[1:]
            break

    def local(found: re.Match) -> str:
        moment = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        return f"{moment.astimezone(zone):%-d %b, %H:%M}"

    return UTC_IN_REASON.sub(local, text)


def parse_filters(args) -> dict:
    """Read the queue's filters from a query string (the API's) with FlagFilter; raise Invalid."""
    query = parse_query(FlagFilter, args)
    status = query.pop("status")
    return query | {"statuses": STATUS_FILTERS[status]}


def queue(db: sqlite_utils.Database, clinic_id: int, **filters) -> list[dict]:
    """Return flags for the queue: urgent first, then oldest first, with what a row shows."""
    return [flag_dict(r) for r in queue_rows(db, clinic_id, **filters)]


def queue_rows(
    db: sqlite_utils.Database,
    clinic_id: int,
    *,
    statuses: tuple[str, ...] = ACTIVE_STATUSES,
    severity: str | None = None,
    practitioner_id: int | None = None,
    client_id: int | None = None,
    limit: int = 200,
) -> list[dict]:
    """Return the queue's flag rows as stored, with the client, session and latest check-in."""
    params = {f"status{i}": status for i, status in enumerate(statuses)}
    sql = f"""
        SELECT f.*, c.name AS client_name, c.timezone, s.performed_at, s.practitioner_id,
          (SELECT json_object('redness', ch.redness, 'swelling', ch.swelling, 'taken_at', ch.taken_at)
             FROM checkins ch WHERE ch.session_id = f.session_id
             ORDER BY ch.taken_at DESC LIMIT 1) AS latest,
          (SELECT p.id FROM checkins ch JOIN photos p ON p.checkin_id = ch.id
             WHERE ch.session_id = f.session_id ORDER BY ch.taken_at DESC, p.created_at DESC
             LIMIT 1) AS photo_id
        FROM flags f JOIN clients c ON c.id = f.client_id
        LEFT JOIN treatment_sessions s ON s.id = f.session_id
        WHERE f.clinic_id = :clinic_id AND f.status IN ({", ".join(":" + p for p in params)})"""
    if severity:
        sql += " AND f.severity = :severity"
    if practitioner_id:
        sql += " AND s.practitioner_id = :practitioner_id"
    if client_id:
        sql += " AND f.client_id = :client_id"
    sql += f" ORDER BY {SEVERITY_ORDER}, f.opened_at, f.id LIMIT :limit"
    params |= {
        "clinic_id": clinic_id,
        "severity": severity,
        "practitioner_id": practitioner_id,
        "client_id": client_id,
        "limit": limit,
    }
    return rows(db, sql, params)


def counts(db: sqlite_utils.Database, clinic_id: int) -> dict[str, int]:
    """Count active flags per severity (for the header, the title and the badge)."""
    params = {f"status{i}": status for i, status in enumerate(ACTIVE_STATUSES)}
    found = {
        r["severity"]: r["n"]
        for r in rows(
            db,
            "SELECT severity, count(*) AS n FROM flags WHERE clinic_id = :clinic_id"
            f" AND status IN ({', '.join(':' + p for p in params)}) GROUP BY severity",
            params | {"clinic_id": clinic_id},
        )
    }
    return {s: found.get(s, 0) for s in SEVERITIES_DESC}


def flag_dict(row: dict) -> dict:
    """Shape a flag row for the API and the pages (with its queue extras when present)."""
    out = {k: row.get(k) for k in FLAG_FIELDS}
    if "client_name" in row:
        out["client_name"] = row["client_name"]
    if row.get("performed_at"):
        since = utcnow() - parse_iso(row["performed_at"])
        out["hours_since_session"] = round(since.total_seconds() / 3600, 1)
        out["performed_at"] = row["performed_at"]
    if "latest" in row:
        out["latest"] = json.loads(row["latest"]) if row["latest"] else None
        out["photo_url"] = f"/api/photos/{row['photo_id']}" if row.get("photo_id") else None
    return out


FLAG_WITH_CLIENT = (
    "SELECT f.*, c.name AS client_name FROM flags f JOIN clients c ON c.id = f.client_id"
    " WHERE f.id = :id"
)


def get_flag(db: sqlite_utils.Database, flag_id: int, clinic_id: int) -> dict:
    """Return a flag of this clinic with its client's name, or raise NotFound."""
    row = one(
        db,
        FLAG_WITH_CLIENT + " AND f.clinic_id = :clinic_id",
        {"id": flag_id, "clinic_id": clinic_id},
    )
    if row is None:
        raise NotFound("flag")
    return row


def flag_events(db: sqlite_utils.Database, flag_id: int) -> list[dict]:
    """Return a flag's history: what triage and practitioners did, oldest first."""
    return rows(
        db,
        "SELECT at, actor_kind, actor_id, action, severity, reason, note FROM flag_events"
        " WHERE flag_id = :flag_id ORDER BY id",
        {"flag_id": flag_id},
    )


# Acknowledging again keeps who claimed it first: "Sam is on it" must not silently change hands.
ACTIONS = {
    "acknowledge": "UPDATE flags SET status = 'acknowledged',"
    " acknowledged_at = coalesce(acknowledged_at, :now),"
    " acknowledged_by = coalesce(acknowledged_by, :by), updated_at = :now WHERE id = :id",
    "called": "UPDATE flags SET called_at = :now, updated_at = :now, status = 'acknowledged',"
    " acknowledged_at = coalesce(acknowledged_at, :now),"
    " acknowledged_by = coalesce(acknowledged_by, :by) WHERE id = :id",
    "resolve": "UPDATE flags SET status = 'resolved', resolved_at = :now, resolved_by = :by,"
    " note = :note, updated_at = :now WHERE id = :id",
}


def act(
    db: sqlite_utils.Database,
    flag: dict,
    action: str,
    practitioner_id: int,
    note: str | None,
    now: datetime,
) -> dict:
    """Acknowledge, resolve, or record a call on a flag; every action is a flag event."""
    if flag["status"] == "resolved":
        raise Conflict("This flag is already resolved.", "already_resolved")
    if action == "resolve" and not (note or "").strip():
        # A resolution without a word is lost clinical reasoning: the next person sees nothing.
        raise Invalid({"note": "Say how it was resolved (for example what you told the client)."})
    values = {
        "id": flag["id"],
        "by": practitioner_id,
        "note": note,
        "now": iso(now),
        "action": action,
    }
    with write(db):
        # The status is checked again inside the write: `flag` was read before it, and a
        # colleague's resolution in between (two tablets, a stale page) must stand, not be
        # overwritten or, by a late "called", turned back into an active flag.
        if not db.conn.execute(ACTIONS[action] + " AND status != 'resolved'", values).rowcount:
            raise Conflict("This flag is already resolved.", "already_resolved")
        db.conn.execute(
            "INSERT INTO flag_events (flag_id, at, actor_kind, actor_id, action, note)"
            " VALUES (:id, :now, 'practitioner', :by, :action, :note)",
            values,
        )
    return one(db, FLAG_WITH_CLIENT, {"id": flag["id"]})


def colleagues(db: sqlite_utils.Database, clinic_id: int) -> list[dict]:
    """Return the clinic's practitioners (id, name) by name, for filters and audit entries."""
    return rows(
        db,
        "SELECT id, name FROM practitioners WHERE clinic_id = :clinic_id ORDER BY name",
        {"clinic_id": clinic_id},
    )
