"""Clients' signed-in phones: each invite redeemed is one, seen and signed out by the clinic."""

import re
from datetime import datetime, timedelta

import sqlite_utils

from companion.db import iso, rows

# (pattern, name) in order: the first that matches the User-Agent names the browser, then the
# platform. Browsers' own strings hide the phone's model nowadays, so this is all there is.
BROWSERS = (
    (r"EdgA?/|EdgiOS/", "Edge"),
    (r"SamsungBrowser/", "Samsung Internet"),
    (r"OPR/|OPiOS/", "Opera"),
    (r"Firefox/|FxiOS/", "Firefox"),
    (r"Chrome/|CriOS/|Chromium/", "Chrome"),
    (r"Safari/", "Safari"),
)
PLATFORMS = (
    (r"iPhone", "iPhone"),
    (r"iPad", "iPad"),
    (r"Android.*Mobile", "Android phone"),
    (r"Android", "Android tablet"),
    (r"CrOS", "Chromebook"),
    (r"Windows", "Windows"),
    (r"Macintosh|Mac OS X", "Mac"),
    (r"Linux", "Linux"),
)


def device_label(user_agent: str | None) -> str:
    """Name a device the way a person would: "Safari on iPhone"."""
    ua = (user_agent or "")[:512]
    browser = next((name for pattern, name in BROWSERS if re.search(pattern, ua)), None)
    platform = next((name for pattern, name in PLATFORMS if re.search(pattern, ua)), None)
    if browser and platform:
        return f"{browser} on {platform}"
    return browser or platform or "Unknown device"


def live_devices(
    db: sqlite_utils.Database, client_id: int, now: datetime, idle_days: int
) -> list[dict]:
    """Return a client's phones that are still signed in, most recently seen first."""
    return rows(
        db,
        "SELECT device_id AS id, device AS label, created_at AS first_seen_at,"
        " last_seen_at, expires_at FROM auth_sessions"
        " WHERE user_kind = 'client' AND user_id = :client_id AND revoked_at IS NULL"
        " AND expires_at > :now AND last_seen_at > :idle_since"
        " ORDER BY last_seen_at DESC",
        {
            "client_id": client_id,
            "now": iso(now),
            "idle_since": iso(now - timedelta(days=idle_days)),
        },
    )


def sign_out(
    db: sqlite_utils.Database, client_id: int, now: datetime, device_id: str | None = None
) -> int:
    """Sign one of a client's phones out (all of them without a device id); return how many."""
    cur = db.conn.execute(
        "UPDATE auth_sessions SET revoked_at = :now WHERE user_kind = 'client'"
        " AND user_id = :client_id AND revoked_at IS NULL"
        " AND (:device_id IS NULL OR device_id = :device_id)",
        {"now": iso(now), "client_id": client_id, "device_id": device_id},
    )
    forget_push_of_signed_out(db, client_id, every_phone=device_id is None)
    return cur.rowcount


def forget_push_of_signed_out(
    db: sqlite_utils.Database, client_id: int, every_phone: bool = False
) -> int:
    """Drop the push subscriptions a client's phones made under sign-ins that have ended, so a
    lost or signed-out phone stops getting reminders (and an undeliverable reminder goes by
    email instead); `every_phone` also drops those stored before m020, which name no sign-in.
    Return how many."""
    return db.conn.execute(
        "DELETE FROM push_subscriptions WHERE owner_kind = 'client' AND owner_id = :client_id"
        " AND (session_id IN (SELECT id FROM auth_sessions WHERE user_kind = 'client'"
        " AND user_id = :client_id AND revoked_at IS NOT NULL)"
        " OR (:every AND session_id IS NULL))",
        {"client_id": client_id, "every": every_phone},
    ).rowcount


def device_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "label": row["label"] or "Unknown device",
        "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
    }
