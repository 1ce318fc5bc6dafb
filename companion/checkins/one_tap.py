"""One-tap check-in links (sent in check-in reminder emails): what a link grants.

A link opens the check-in of one session of one client, on any browser, with no sign-in:
the page and POST /api/checkin-links/{token} accept it, nothing else does. It expires
with the reminder it came in, and is refused once the client or the session is gone.
"""

from datetime import datetime

import sqlite_utils

from companion.accounts.clients import load_client
from companion.errors import Gone, NotFound
from companion.i18n import language_of
from companion.reminders import links
from companion.treatments import store as treatments

ERASED = "This link no longer works. Please contact your clinic."
EXPIRED = "This check-in link has expired. Open your clinic's app, or wait for your next reminder."


def grant(
    db: sqlite_utils.Database, secret_key: str, token: str, now: datetime
) -> tuple[dict, dict, datetime]:
    """Return (client, session, expires_at) a link opens; 404 if it is not ours, 410 if spent."""
    found = links.read_checkin_token(secret_key, token)
    if found is None:
        raise NotFound("check-in link", "link_not_found")
    client = load_client(db, found["client_id"])
    if client is None:
        raise Gone(ERASED, "link_revoked")
    session = treatments.load_session(db, found["session_id"])
    if session is None or session["client_id"] != client["id"]:
        raise Gone(ERASED, "link_revoked")
    if now >= found["expires_at"]:
        raise Gone(EXPIRED, "link_expired")
    return client, session, found["expires_at"]


def language_of_link(db: sqlite_utils.Database, secret_key: str, token: str) -> str | None:
    """The language of the client a link belongs to, expired or not (None: not our link).
    The link came in their email: its page and its API answer speak their language."""
    found = links.read_checkin_token(secret_key, token)
    return language_of(load_client(db, found["client_id"])) if found is not None else None


def client_of_link(db: sqlite_utils.Database, secret_key: str, token: str) -> dict | None:
    """The client a link was made for, expired or not (None: not our link, or erased): an
    expired link's page still names their clinic and how to reach it."""
    found = links.read_checkin_token(secret_key, token)
    return load_client(db, found["client_id"]) if found is not None else None
