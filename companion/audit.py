"""The audit log: who read or changed which record, when (UTC). No health content, no tokens."""

from flask import has_request_context, request
from flask_login import current_user

from companion.db import get_db, iso, rows, utcnow


def record(
    action: str,
    *,
    client_id: int | None = None,
    clinic_id: int | None = None,
    detail: str | None = None,
    actor_kind: str | None = None,
    actor_id: int | None = None,
    actor=None,
) -> None:
    """Append one audit entry for the actor given (a signed-in User), else the current user."""
    user = actor or (current_user if has_request_context() else None)
    if actor_kind is None:
        if user is not None and user.is_authenticated:
            actor_kind, actor_id = user.kind, user.id
            clinic_id = clinic_id if clinic_id is not None else user.clinic_id
        else:
            actor_kind = "anonymous"
    address = request.remote_addr if has_request_context() else None
    # Every read of a client's record lands here: a plain INSERT (about 25 us) rather than
    # sqlite-utils' insert(), which inspects the table each time (about 210 us, measured).
    get_db().conn.execute(
        "INSERT INTO audit_log (at, actor_kind, actor_id, clinic_id, client_id, action, detail,"
        " address) VALUES (:at, :actor_kind, :actor_id, :clinic_id, :client_id, :action,"
        " :detail, :address)",
        {
            "at": iso(utcnow()),
            "actor_kind": actor_kind,
            "actor_id": actor_id,
            "clinic_id": clinic_id,
            "client_id": client_id,
            "action": action,
            "detail": detail,
            "address": address,
        },
    )


def entries(
    clinic_id: int, client_id: int | None = None, limit: int = 200, before_id: int | None = None
) -> list[dict]:
    """Return a clinic's audit entries, newest first, optionally for one client."""
    # Conditions are added only when given, so that SQLite can pick the client index.
    sql = "SELECT * FROM audit_log WHERE clinic_id = :clinic_id"
    if client_id is not None:
        sql += " AND client_id = :client_id"
    if before_id is not None:
        sql += " AND id < :before_id"
    sql += " ORDER BY id DESC LIMIT :limit"
    params = {"clinic_id": clinic_id, "client_id": client_id, "before_id": before_id}
    return rows(get_db(), sql, params | {"limit": limit})
