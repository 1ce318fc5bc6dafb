"""The audit log: who read or changed which record, when (UTC). No health content, no tokens."""

import logging
import sqlite3

from flask import Flask, has_request_context, request
from flask_login import current_user

from companion.db import get_db, iso, one, rows, utcnow, write

log = logging.getLogger(__name__)


def record(
    action: str,
    *,
    client_id: int | None = None,
    clinic_id: int | None = None,
    detail: str | None = None,
    actor_kind: str | None = None,
    actor_id: int | None = None,
    actor=None,
    with_address: bool = True,
) -> None:
    """Append one audit entry for the actor given (a signed-in User), else the current user;
    with the request's address unless `with_address` is False."""
    user = actor or (current_user if has_request_context() else None)
    if actor_kind is None:
        if user is not None and user.is_authenticated:
            actor_kind, actor_id = user.kind, user.id
            clinic_id = clinic_id if clinic_id is not None else user.clinic_id
        else:
            actor_kind = "anonymous"
    address = request.remote_addr if has_request_context() and with_address else None
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


def record_refused_lookup(response):
    """Record a signed-in user's 404 on a record id (a client, session, flag, check-in or photo
    of another clinic or client, or one that is gone): probing ids is a security event.

    The answer stays the same 404 and so does the prober's own clinic's log (one
    `access_refused` entry whether or not the id exists elsewhere), so neither tells whether
    it does. When the id is a client of another clinic, that clinic's log also gets an
    `access_refused_elsewhere` entry against its client, which only it can read (without the
    prober's address: that stays in the prober's clinic's entry, for the operator).
    """
    if response.status_code != 404:
        return response
    ids = {k: v for k, v in (request.view_args or {}).items() if k.endswith("_id")}
    asked = request.args.get("client_id", "")
    if not ids and not asked:
        return response
    if not current_user.is_authenticated:
        return response
    wanted = ids.get("client_id")
    if wanted is None and asked.isascii() and asked.isdigit() and len(asked) <= 18:
        wanted = int(asked)
    db = get_db()
    try:
        with write(db):
            record("access_refused", detail=request.path[:200])
            found = None
            if wanted is not None:
                found = one(db, "SELECT clinic_id FROM clients WHERE id = :id", {"id": wanted})
            if found is not None and found["clinic_id"] != current_user.clinic_id:
                record(
                    "access_refused_elsewhere",
                    clinic_id=found["clinic_id"],
                    client_id=wanted,
                    detail=request.path[:200],
                    with_address=False,
                )
    except sqlite3.Error:  # a full or read-only disk: the 404 stands, the operator is told
        log.exception("Could not record a refused lookup of %s", request.path[:200])
    return response


def init_app(app: Flask) -> None:
    app.after_request(record_refused_lookup)
