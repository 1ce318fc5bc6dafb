"""A client's private calendar feed (iCalendar, RFC 5545): their upcoming aftercare steps and
check-ins, each with an alarm at its due time, on their own wall clock (TZID + VTIMEZONE).

The feed's address holds a long random token (a read-only bearer secret: calendar apps fetch
without cookies); rotating the token ends the old address. It is built from the outbox's rows
on each fetch, so it follows re-planning and cancellation; an erased client's token is gone.
"""

import secrets
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import sqlite_utils
from icalendar import Alarm, Calendar, Event, vDuration

from companion.db import iso, one, parse_iso, rows, write
from companion.reminders import words
from companion.reminders.inbox import APPLIES_SQL
from companion.reminders.push import DISCREET_TITLE

TOKEN_BYTES = 32
EVENT_MINUTES = 15
KEEP_PAST = timedelta(days=7)  # recent steps stay visible a week, then leave the calendar
MAX_EVENTS = 200
REFRESH = timedelta(hours=1)  # what the feed asks calendar apps to re-fetch at


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_of(db: sqlite_utils.Database, client: dict) -> str:
    """Return the client's feed token, giving them one if they have none yet."""
    if client.get("calendar_token"):
        return client["calendar_token"]
    with write(db):  # a client made by a bulk import, without one
        token = rotate(db, client["id"])
    client["calendar_token"] = token
    return token


def rotate(db: sqlite_utils.Database, client_id: int) -> str:
    """Give the client a new feed token: the old address stops working at once."""
    token = new_token()
    db.conn.execute(
        "UPDATE clients SET calendar_token = :token WHERE id = :id",
        {"token": token, "id": client_id},
    )
    return token


def client_by_token(db: sqlite_utils.Database, token: str) -> dict | None:
    """Return the client whose feed this token opens, or None (unknown, rotated, erased)."""
    if not 20 <= len(token) <= 100:
        return None
    return one(db, "SELECT * FROM clients WHERE calendar_token = :token", {"token": token})


def client_links(db: sqlite_utils.Database, client: dict, base: str | None) -> dict:
    """The client's feed addresses (all None when the installation's address is unknown)."""
    if base is None:
        return dict.fromkeys(("calendar_url", "webcal_url", "google_calendar_url"))
    return links(base, token_of(db, client))


def links(base: str, token: str) -> dict:
    """The feed's addresses: https (or the installation's scheme), webcal:// for iPhone and
    macOS Calendar, and Google Calendar's "add by URL" link."""
    https = f"{base.rstrip('/')}/calendar/{token}.ics"
    webcal = "webcal://" + https.split("://", 1)[1]
    google = "https://calendar.google.com/calendar/render?cid=" + quote(webcal, safe="")
    return {"calendar_url": https, "webcal_url": webcal, "google_calendar_url": google}


def feed(
    db: sqlite_utils.Database, client: dict, clinic: dict, now: datetime, base: str | None
) -> bytes:
    """Build the client's calendar: planned reminders from a week ago on, alarms at due time."""
    zone = client["timezone"]
    tz = ZoneInfo(zone)
    planned = rows(
        db,
        "SELECT id, kind, title, body, url, due_at FROM notifications"
        " WHERE owner_kind = 'client' AND owner_id = :client_id AND due_at >= :since"
        f" AND {APPLIES_SQL} ORDER BY due_at, id LIMIT :limit",
        {"client_id": client["id"], "since": iso(now - KEEP_PAST), "limit": MAX_EVENTS},
    )
    name = clinic["display_name"]
    discreet = bool(client["discreet"])
    language = client.get("language") or "en"  # the events' words (the steps' were planned in it)
    t = words.words(language)
    hidden = words.discreet_body(language)
    host = urlsplit(base).hostname if base else None
    cal = Calendar()
    cal.add("prodid", "-//Companion//Aftercare calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    # Discreet: the calendar's name says no more than a discreet notification does.
    calname = t.gettext("Aftercare · %(clinic)s") % {"clinic": name}
    cal.add("x-wr-calname", DISCREET_TITLE if discreet else calname)
    cal.add("x-wr-timezone", zone)
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))  # an X- property is text unless typed
    for row in planned:
        start = parse_iso(row["due_at"]).astimezone(tz)
        title = hidden if discreet else row["title"]
        event = Event()
        event.add("uid", f"notification-{row['id']}@{host or 'companion'}")
        event.add("dtstamp", now)
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=EVENT_MINUTES))
        event.add("summary", title)
        text = "" if discreet else row["body"]
        if base and row["url"]:
            link = base.rstrip("/") + row["url"]
            event.add("url", link)
            text = f"{text}\n\n{link}".strip()
        if text:
            event.add("description", text)
        event.add("transp", "TRANSPARENT")  # a reminder, not a busy hour
        category = t.gettext("Check-in") if row["kind"] == "checkin" else t.gettext("Aftercare")
        event.add("categories", [category])
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", title)
        alarm.add("trigger", timedelta(0))  # at the event's start: the reminder's due time
        event.add_component(alarm)
        cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()
