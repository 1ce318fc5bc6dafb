"""A client's whole record for the practitioner: sessions with reminders, check-ins, flags; devices."""

import json

import sqlite_utils

from companion.checkins.store import checkin_dicts
from companion.db import rows
from companion.reminders import outbox
from companion.review.queue import flag_dict
from companion.treatments import store as treatments

# A client's sessions as a subquery: the timeline reads each table once for all of them.
CLIENT_SESSIONS = "SELECT id FROM treatment_sessions WHERE client_id = :client_id"


def _by_session(found) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in found:
        out.setdefault(r["session_id"], []).append(r)
    return out


def schedules(db: sqlite_utils.Database, session_ids: list[int]) -> dict[int, list[dict]]:
    """The planned reminders of these sessions, by session, each with every delivery attempt
    per device: delivered, retried (429/5xx), gone (404/410) or failed."""
    ids = {"ids": json.dumps(session_ids)}
    sessions = "IN (SELECT value FROM json_each(:ids))"
    plans: dict[int, list[dict]] = {}
    for n in rows(db, outbox.SCHEDULE.format(sessions=sessions), ids):
        n["emailed"] = bool(n["emailed"])
        plans.setdefault(n.pop("session_id"), []).append(n)
    attempts: dict[int, list[dict]] = {}
    for d in rows(
        db,
        "SELECT notification_id, subscription_id, channel, address, attempt, at, outcome,"
        " status_code, reason"
        " FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE"
        f" session_id {sessions} AND step_key IS NOT NULL) ORDER BY id",
        ids,
    ):
        attempts.setdefault(d["notification_id"], []).append(d)
    for plan in plans.values():
        for n in plan:
            n["attempts"] = attempts.get(n["id"], [])
            n["problems"] = [d for d in n["attempts"] if d["outcome"] != "delivered"]
    return plans


def timeline(db: sqlite_utils.Database, client: dict, recent: int | None = None) -> dict:
    """Gather a client's whole record: sessions with reminders, check-ins, flags; devices.

    `recent`: read the reminders of only that many latest sessions; each older one has
    `schedule` None and its `reminder_count` (the page loads them on demand: a year of
    sessions is 180 reminder rows, most of the page's cost).
    """
    # A fixed handful of queries, however many sessions and check-ins the client has.
    ids = {"client_id": client["id"]}
    listed = treatments.list_sessions(db, client["id"])  # newest first
    plans = schedules(db, [s["id"] for s in listed[:recent]])
    counts = {}
    if recent is not None and len(listed) > recent:
        counts = {
            r["session_id"]: r["n"]
            for r in rows(
                db,
                "SELECT session_id, count(*) AS n FROM notifications WHERE session_id IN"
                f" ({CLIENT_SESSIONS}) AND step_key IS NOT NULL GROUP BY session_id",
                ids,
            )
        }
    found = _by_session(
        checkin_dicts(
            db,
            rows(
                db,
                f"SELECT * FROM checkins WHERE session_id IN ({CLIENT_SESSIONS}) ORDER BY taken_at",
                ids,
            ),
        )
    )
    events: dict[int, list[dict]] = {}
    for e in rows(
        db,
        "SELECT flag_id, at, actor_kind, actor_id, action, severity, reason, note"
        " FROM flag_events WHERE flag_id IN (SELECT id FROM flags WHERE session_id IN"
        f" ({CLIENT_SESSIONS})) ORDER BY id",
        ids,
    ):
        events.setdefault(e.pop("flag_id"), []).append(e)
    flags = _by_session(
        dict(flag_dict(f), events=events.get(f["id"], []))
        for f in rows(
            db,
            f"SELECT * FROM flags WHERE session_id IN ({CLIENT_SESSIONS}) ORDER BY opened_at",
            ids,
        )
    )
    sessions = []
    for i, s in enumerate(listed):
        later = recent is not None and i >= recent
        sessions.append(
            {
                "session": treatments.session_dict(s, client["timezone"]),
                "raw": s,
                "schedule": None if later else plans.get(s["id"], []),
                "reminder_count": counts.get(s["id"], 0) if later else len(plans.get(s["id"], [])),
                "checkins": found.get(s["id"], []),
                "flags": flags.get(s["id"], []),
            }
        )
    return {"sessions": sessions, "devices": client_devices(db, client["id"])}


def client_devices(db: sqlite_utils.Database, client_id: int) -> list[dict]:
    """The client's push subscriptions, each with a label named from its browser.

    A gone device was either refused by its push service (a 404/410 answer is on record) or
    retired because its owner turned on more than devices.MAX_LIVE_DEVICES (`retired`).
    """
    devices = rows(
        db,
        "SELECT id, endpoint, user_agent, created_at, last_success_at, gone_at,"
        " gone_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries"
        " WHERE subscription_id = p.id AND outcome = 'gone') AS retired"
        " FROM push_subscriptions AS p WHERE owner_kind = 'client' AND owner_id = :client_id"
        " ORDER BY id",
        {"client_id": client_id},
    )
    for d in devices:
        d["label"] = device_label(d["id"], d["user_agent"])
    return devices


_BROWSERS = (
    ("Edg/", "Edge"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox", "Firefox"),
    ("CriOS", "Chrome"),
    ("Chrome", "Chrome"),
    ("Safari", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "Mac"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(device_id: int, user_agent: str | None) -> str:
    """Name a subscribed device as a person would: "Device 2: Chrome on Android"."""
    ua = user_agent or ""
    browser = next((name for key, name in _BROWSERS if key in ua), None)
    system = next((name for key, name in _SYSTEMS if key in ua), None)
    what = " on ".join(x for x in (browser, system) if x) or "unknown browser"
    return f"Device {device_id}: {what}"
