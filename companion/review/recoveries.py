"""The queue as a person works it: one row per recovery (a client's session), not per rule.

Flags stay one per session and rule in the data and the audit (docs/clinical.md: one open
flag per session and rule); this module groups them, because a practitioner reviews a
person, not a rule. Alert fatigue is the failure the reference warns about (AFT-39: 38% of
alerts could have been suppressed): four rules broken by one check-in are one recovery to
look at, with four reasons.
"""

from datetime import datetime

import sqlite_utils

from companion import audit
from companion.clinical import (
    ACTIVE_STATUSES,
    FLAG_STATUSES,
    SEVERITIES,
    SEVERITIES_DESC,
    day_number,
    severity_rank,
)
from companion.db import one, parse_iso, rows, write
from companion.errors import Conflict, NotFound
from companion.review import queue

# Enough flag rows for every recovery a page shows: a session holds at most one active flag
# per rule, so 13 rules x 200 recoveries. A resolved view past this many flags is cut short.
FLAG_ROWS = 5000


def recoveries(
    db: sqlite_utils.Database,
    clinic_id: int,
    now: datetime,
    *,
    statuses: tuple[str, ...] = ACTIVE_STATUSES,
    severity: str | None = None,
    practitioner_id: int | None = None,
    client_id: int | None = None,
    limit: int = 200,
) -> list[dict]:
    """Return the clinic's recoveries with flags in these statuses: urgent first, then oldest."""
    found = queue.queue_rows(
        db,
        clinic_id,
        statuses=statuses,
        practitioner_id=practitioner_id,
        client_id=client_id,
        limit=FLAG_ROWS,
    )
    groups: dict[tuple, list[dict]] = {}
    for row in found:
        # A deleted session leaves its flags with no session: they stay one recovery per client.
        groups.setdefault((row["session_id"], row["client_id"]), []).append(row)
    names = {p["id"]: p["name"] for p in queue.colleagues(db, clinic_id)}
    items = [_recovery(group, names, now) for group in groups.values()]
    if severity:
        items = [item for item in items if item["severity"] == severity]
    items.sort(
        key=lambda r: (-severity_rank(r["severity"]), r["waiting_since"], r["session_id"] or 0)
    )
    if set(statuses) == {"resolved"}:
        # Looking back: the latest resolutions first.
        items.sort(key=lambda r: r["resolution"]["at"], reverse=True)
    return items[:limit]


def _person(practitioner_id: int | None, names: dict) -> dict | None:
    if practitioner_id is None:
        return None
    return {"id": practitioner_id, "name": names.get(practitioner_id, "a former colleague")}


def _recovery(group: list[dict], names: dict, now: datetime) -> dict:
    group.sort(key=lambda f: (-severity_rank(f["severity"]), f["rule"]))
    first = group[0]
    claimed = sorted((f for f in group if f["acknowledged_by"]), key=lambda f: f["acknowledged_at"])
    called = max((f["called_at"] for f in group if f["called_at"]), default=None)
    resolved = max(
        (f for f in group if f["status"] == "resolved"),
        key=lambda f: f["resolved_at"],
        default=None,
    )
    statuses = {f["status"] for f in group}
    performed = first.get("performed_at")
    flags = [queue.flag_dict(f) for f in group]
    return {
        "session_id": first["session_id"],
        "client_id": first["client_id"],
        "client_name": first["client_name"],
        "severity": first["severity"],
        "status": next(s for s in ("open", "acknowledged", "resolved") if s in statuses),
        "flags": flags,
        "waiting_since": min(f["opened_at"] for f in group),
        "handled_by": _person(claimed[0]["acknowledged_by"], names) if claimed else None,
        "handled_since": claimed[0]["acknowledged_at"] if claimed else None,
        "called_at": called,
        "performed_at": performed,
        # "Day N" as everywhere else: the client's local calendar day since the session.
        "days_since_session": (
            day_number(parse_iso(performed), now, first["timezone"]) if performed else None
        ),
        "latest": flags[0].get("latest"),
        "photo_url": flags[0].get("photo_url"),
        "resolution": (
            {
                "note": resolved["note"],
                "by": _person(resolved["resolved_by"], names),
                "at": resolved["resolved_at"],
            }
            if resolved
            else None
        ),
    }


def recovery_of(
    db: sqlite_utils.Database, clinic_id: int, session_id: int, flag_ids: set[int], now: datetime
) -> dict:
    """Return one session's recovery made of these flags and its still active ones."""
    found = [
        row
        for row in queue.queue_rows(
            db,
            clinic_id,
            statuses=FLAG_STATUSES,
            client_id=_client_of(db, session_id),
            limit=FLAG_ROWS,
        )
        if row["session_id"] == session_id
        and (row["id"] in flag_ids or row["status"] != "resolved")
    ]
    names = {p["id"]: p["name"] for p in queue.colleagues(db, clinic_id)}
    return _recovery(found, names, now)


def _client_of(db: sqlite_utils.Database, session_id: int) -> int:
    return one(db, "SELECT client_id FROM treatment_sessions WHERE id = :id", {"id": session_id})[
        "client_id"
    ]


def active_flags(
    db: sqlite_utils.Database, clinic_id: int, session_id: int, *, resolved: bool = False
) -> list[dict]:
    """Return a session's active flags (with resolved=True all of them); NotFound elsewhere."""
    session = one(
        db,
        "SELECT s.id FROM treatment_sessions s JOIN clients c ON c.id = s.client_id"
        " WHERE s.id = :id AND c.clinic_id = :clinic_id",
        {"id": session_id, "clinic_id": clinic_id},
    )
    if session is None:
        raise NotFound("session")
    return rows(
        db,
        queue.FLAG_WITH_CLIENT.replace("f.id = :id", "f.session_id = :id")
        + ("" if resolved else " AND f.status != 'resolved'")
        + " ORDER BY f.id",
        {"id": session_id},
    )


def flags_by_id(db: sqlite_utils.Database, clinic_id: int, flag_ids: list[int]) -> list[dict]:
    """Return these flags of the clinic (unknown or foreign ids are left out)."""
    return [
        f
        for f in (
            one(
                db,
                queue.FLAG_WITH_CLIENT + " AND f.clinic_id = :clinic_id",
                {"id": i, "clinic_id": clinic_id},
            )
            for i in dict.fromkeys(flag_ids)
        )
        if f is not None
    ]


def act(
    db: sqlite_utils.Database,
    actor,
    flags: list[dict],
    action: str,
    note: str | None,
    now: datetime,
) -> list[dict]:
    """Apply one action to a recovery's flags, in one transaction; each flag keeps its own event.

    Acknowledging claims what is still open (a flag someone already claimed keeps its
    claimant); a call and a resolution apply to every active flag.
    """
    active = [f for f in flags if f["status"] != "resolved"]
    if not active:
        raise Conflict("Every flag of this recovery is already resolved.", "already_resolved")
    targets = [f for f in active if f["status"] == "open"] if action == "acknowledge" else active
    done = []
    with write(db):
        for flag in targets:
            try:
                done.append(queue.act(db, flag, action, actor.id, note, now))
            except Conflict:
                continue  # a colleague resolved it since it was read: theirs stands
            audit.record(
                f"flag_{action}",
                client_id=flag["client_id"],
                detail=f"flag={flag['id']}",
                actor=actor,
            )
        if targets and not done:
            raise Conflict("Every flag of this recovery is already resolved.", "already_resolved")
    return done


def counts(db: sqlite_utils.Database, clinic_id: int) -> dict[str, int]:
    """Count active recoveries by their highest severity (for the title and the badge)."""
    ranks = " ".join(f"WHEN '{s}' THEN {severity_rank(s)}" for s in SEVERITIES)
    found = {
        r["top"]: r["n"]
        for r in rows(
            db,
            f"SELECT top, count(*) AS n FROM (SELECT max(CASE severity {ranks} END) AS top"
            " FROM flags WHERE clinic_id = :clinic_id AND status IN ('open', 'acknowledged')"
            " GROUP BY session_id, client_id) GROUP BY top",
            {"clinic_id": clinic_id},
        )
    }
    return {s: found.get(severity_rank(s), 0) for s in SEVERITIES_DESC}


def version(db: sqlite_utils.Database, clinic_id: int) -> str:
    """Return a token that changes whenever what the queue shows may have changed."""
    ids = {"clinic_id": clinic_id}
    flags = one(
        db,
        "SELECT count(*) AS n, max(updated_at) AS at FROM flags WHERE clinic_id = :clinic_id",
        ids,
    )
    checkins = one(db, "SELECT count(*) AS n FROM checkins WHERE clinic_id = :clinic_id", ids)
    return f"{flags['n']}.{flags['at'] or '-'}.{checkins['n']}"
