"""One-time invite links that sign a client's phone in."""

import secrets
from datetime import datetime, timedelta

import sqlite_utils
from flask import current_app

from companion.auth import hash_token
from companion.db import iso, one, parse_iso, write
from companion.errors import ApiError


def create_invite(
    db: sqlite_utils.Database, client: dict, practitioner_id: int, now: datetime
) -> tuple[str, datetime]:
    """Issue a one-time invite for a client, revoking any earlier one."""
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(days=current_app.config["INVITE_DAYS"])
    with write(db):
        db.conn.execute(
            "UPDATE invites SET revoked_at = ? WHERE client_id = ? AND used_at IS NULL"
            " AND revoked_at IS NULL",
            (iso(now), client["id"]),
        )
        db.conn.execute(
            "INSERT INTO invites (client_id, token_hash, created_by, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (client["id"], hash_token(token), practitioner_id, iso(now), iso(expires)),
        )
    return token, expires


def redeem_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Use an invite once; return its client or raise why it cannot be used."""
    invite = one(db, "SELECT * FROM invites WHERE token_hash = ?", (hash_token(token),))
    if invite is None:
        raise ApiError(404, "invite_unknown", "This invite link is not valid.")
    if invite["revoked_at"]:
        raise ApiError(
            410,
            "invite_revoked",
            "This invite was replaced by a newer one. Ask your clinic for a new link.",
        )
    if invite["used_at"]:
        raise ApiError(
            410, "invite_used", "This invite was already used. Ask your clinic for a new link."
        )
    if parse_iso(invite["expires_at"]) <= now:
        raise ApiError(
            410, "invite_expired", "This invite has expired. Ask your clinic for a new link."
        )
    # The WHERE makes a double tap race-free: only one redeem can flip used_at.
    cur = db.conn.execute(
        "UPDATE invites SET used_at = ? WHERE id = ? AND used_at IS NULL", (iso(now), invite["id"])
    )
    if cur.rowcount != 1:
        raise ApiError(
            410, "invite_used", "This invite was already used. Ask your clinic for a new link."
        )
    return one(db, "SELECT * FROM clients WHERE id = ?", (invite["client_id"],))
