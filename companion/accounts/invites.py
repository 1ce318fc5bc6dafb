"""One-time invite links that sign a client's phone in."""

import secrets
from datetime import datetime, timedelta

import sqlite_utils

from companion.auth import hash_token
from companion.db import iso, one, parse_iso, write
from companion.errors import Gone, NotFound


def create_invite(
    db: sqlite_utils.Database, client: dict, practitioner_id: int, now: datetime, days: int
) -> tuple[str, datetime]:
    """Issue a one-time invite for a client, valid `days` (INVITE_DAYS), revoking any earlier one."""
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(days=days)
    with write(db):
        db.conn.execute(
            "UPDATE invites SET revoked_at = :now WHERE client_id = :client_id"
            " AND used_at IS NULL AND revoked_at IS NULL",
            {"now": iso(now), "client_id": client["id"]},
        )
        db["invites"].insert(
            {
                "client_id": client["id"],
                "token_hash": hash_token(token),
                "created_by": practitioner_id,
                "created_at": iso(now),
                "expires_at": iso(expires),
            }
        )
    return token, expires


def find_invite(db: sqlite_utils.Database, token: str) -> dict | None:
    """Return the invite a link's token belongs to, used or not (None for an unknown link)."""
    if len(token) > 100:
        return None
    return one(db, "SELECT * FROM invites WHERE token_hash = :hash", {"hash": hash_token(token)})


def redeem_invite(db: sqlite_utils.Database, token: str, now: datetime) -> dict:
    """Use an invite once; return its client or raise why it cannot be used."""
    invite = find_invite(db, token)
    if invite is None:
        raise unknown()
    problem = why_unusable(invite, now)
    if problem:
        raise problem
    # The WHERE makes a double tap race-free: only one redeem can flip used_at.
    cur = db.conn.execute(
        "UPDATE invites SET used_at = :now WHERE id = :id AND used_at IS NULL",
        {"now": iso(now), "id": invite["id"]},
    )
    if cur.rowcount != 1:
        raise _used()
    return one(db, "SELECT * FROM clients WHERE id = :id", {"id": invite["client_id"]})


def why_unusable(invite: dict, now: datetime) -> Gone | None:
    """Return why an invite can no longer sign a phone in, or None while it still can."""
    if invite["revoked_at"]:
        return Gone(
            "This invite was replaced by a newer one. Ask your clinic for a new link.",
            "invite_revoked",
        )
    if invite["used_at"]:
        return _used()
    if parse_iso(invite["expires_at"]) <= now:
        return Gone("This invite has expired. Ask your clinic for a new link.", "invite_expired")
    return None


def unknown() -> NotFound:
    return NotFound(code="invite_unknown", message="This invite link is not valid.")


def _used() -> Gone:
    return Gone("This invite was already used. Ask your clinic for a new link.", "invite_used")


def clinic_of(db: sqlite_utils.Database, token: str) -> dict | None:
    """Return the clinic an invite link comes from (used, expired or not), or None."""
    if len(token) > 100:
        return None
    return one(
        db,
        "SELECT k.* FROM invites i JOIN clients c ON c.id = i.client_id"
        " JOIN clinics k ON k.id = c.clinic_id WHERE i.token_hash = :hash",
        {"hash": hash_token(token)},
    )
