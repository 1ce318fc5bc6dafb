"""The audit log: who read or changed which record, when (UTC). No health content, no tokens."""

from flask import has_request_context, request
from flask_login import current_user

from companion.db import get_db, iso, utcnow


def record(
    action: str,
    *,
    client_id: int | None = None,
    clinic_id: int | None = None,
    detail: str | None = None,
    actor_kind: str | None = None,
    actor_id: int | None = None,
) -> None:
    """Append one audit entry for the current user (or the actor given)."""
    user = current_user if has_request_context() else None
    if actor_kind is None:
        if user is not None and user.is_authenticated:
            actor_kind, actor_id = user.kind, user.id
            clinic_id = clinic_id if clinic_id is not None else user.clinic_id
        else:
            actor_kind = "anonymous"
    address = request.remote_addr if has_request_context() else None
    get_db().conn.execute(
        "INSERT INTO audit_log (at, actor_kind, actor_id, clinic_id, client_id, action, detail,"
        " address) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (iso(utcnow()), actor_kind, actor_id, clinic_id, client_id, action, detail, address),
    )


def entries(
    clinic_id: int, client_id: int | None = None, limit: int = 200, before_id: int | None = None
) -> list[dict]:
    """Return a clinic's audit entries, newest first, optionally for one client."""
    sql = "SELECT * FROM audit_log WHERE clinic_id = ?"
    params: list = [clinic_id]
    if client_id is not None:
        sql += " AND client_id = ?"
        params.append(client_id)
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [dict(r) for r in get_db().conn.execute(sql, params)]
