"""Push subscriptions: the devices a client or practitioner receives reminders and alerts on."""

from datetime import datetime

import sqlite_utils

from companion.db import iso, one, rows, write
from companion.errors import NotFound

MAX_LIVE_DEVICES = 10  # per client or practitioner; a person has a phone or two


def subscription_dict(row: dict) -> dict:
    """Shape a stored subscription for its owner (never the keys)."""
    return {
        "id": row["id"],
        "endpoint": row["endpoint"],
        "created_at": row["created_at"],
        "last_success_at": row["last_success_at"],
        "gone": row["gone_at"] is not None,
        "user_agent": row["user_agent"],
    }


def subscribe(
    db: sqlite_utils.Database,
    owner_kind: str,
    owner_id: int,
    subscription: dict,
    user_agent: str,
    now: datetime,
    session_id: str | None = None,
) -> tuple[dict, bool]:
    """Store a device's checked subscription for its owner; return the stored row and whether
    it is new (False: the endpoint was already stored, now with these keys and this owner).
    `session_id`: the client's sign-in it came under (hashed), which signing out forgets it with."""
    values = {
        "session_id": session_id,
        "owner_kind": owner_kind,
        "owner_id": owner_id,
        "endpoint": subscription["endpoint"],
        "p256dh": subscription["p256dh"],
        "auth": subscription["auth"],
        "user_agent": user_agent,
        "created_at": iso(now),
    }
    with write(db):
        known = one(db, "SELECT id FROM push_subscriptions WHERE endpoint = :endpoint", values)
        # The same endpoint re-posted (new keys, or a new owner on a shared device)
        # replaces the old row rather than duplicating it.
        db.conn.execute(
            "INSERT INTO push_subscriptions (owner_kind, owner_id, endpoint, p256dh, auth,"
            " user_agent, created_at, session_id) VALUES (:owner_kind, :owner_id, :endpoint,"
            " :p256dh, :auth, :user_agent, :created_at, :session_id)"
            " ON CONFLICT(endpoint) DO UPDATE SET owner_kind = excluded.owner_kind,"
            " owner_id = excluded.owner_id, p256dh = excluded.p256dh, auth = excluded.auth,"
            " user_agent = excluded.user_agent, session_id = excluded.session_id,"
            " gone_at = NULL",
            values,
        )
        # One owner cannot make every batch wait on hundreds of dead endpoints: past
        # MAX_LIVE_DEVICES the oldest live devices are retired (as if gone).
        db.conn.execute(
            "UPDATE push_subscriptions SET gone_at = :created_at WHERE id IN (SELECT id FROM"
            " push_subscriptions WHERE owner_kind = :owner_kind AND owner_id = :owner_id"
            " AND gone_at IS NULL AND endpoint != :endpoint ORDER BY id DESC"
            " LIMIT -1 OFFSET :keep)",
            {**values, "keep": MAX_LIVE_DEVICES - 1},  # the device just posted stays
        )
        row = one(db, "SELECT * FROM push_subscriptions WHERE endpoint = :endpoint", values)
        return row, known is None


def unsubscribe(db: sqlite_utils.Database, owner_kind: str, owner_id: int, endpoint: str) -> None:
    """Forget one of the owner's subscriptions, or raise NotFound."""
    with write(db):
        deleted = db.conn.execute(
            "DELETE FROM push_subscriptions WHERE endpoint = :endpoint"
            " AND owner_kind = :owner_kind AND owner_id = :owner_id",
            {"endpoint": endpoint, "owner_kind": owner_kind, "owner_id": owner_id},
        ).rowcount
    if deleted == 0:
        raise NotFound("subscription")


def forget_devices(db: sqlite_utils.Database, owner_kind: str, owner_id: int) -> int:
    """Drop every push subscription of an owner (a disabled practitioner); return how many."""
    return db.conn.execute(
        "DELETE FROM push_subscriptions WHERE owner_kind = :owner_kind AND owner_id = :owner_id",
        {"owner_kind": owner_kind, "owner_id": owner_id},
    ).rowcount


def subscriptions(db: sqlite_utils.Database, owner_kind: str, owner_id: int) -> list[dict]:
    """Return the owner's subscriptions, oldest first."""
    return rows(
        db,
        "SELECT * FROM push_subscriptions WHERE owner_kind = :owner_kind"
        " AND owner_id = :owner_id ORDER BY id",
        {"owner_kind": owner_kind, "owner_id": owner_id},
    )
