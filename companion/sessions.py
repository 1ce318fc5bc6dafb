"""Server-side sign-in sessions: the signed-in User, reading a session with its user in one
query, and creating and revoking session rows (each one a device its owner can sign out)."""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask_login import UserMixin, current_user, login_user, logout_user

from companion import audit
from companion.accounts import phones
from companion.db import get_db, iso, one, parse_iso, utcnow


class User(UserMixin):
    """A signed-in practitioner or client, bound to one server-side session row."""

    def __init__(self, kind: str, row: dict, session_id: str, two_factor_required: bool = False):
        self.kind = kind
        self.row = row
        self.id = row["id"]
        self.clinic_id = row["clinic_id"]
        self.name = row["name"]
        self.session_id = session_id
        # The clinic's rule, read with the session: see must_enrol.
        self.two_factor_required = two_factor_required

    def get_id(self) -> str:
        # flask-login stores this in the cookie: the server-side session id, so that
        # revoking the row ends the cookie too.
        return self.session_id

    @property
    def is_practitioner(self) -> bool:
        return self.kind == "practitioner"

    @property
    def is_owner(self) -> bool:
        return self.kind == "practitioner" and self.row.get("role") == "owner"

    @property
    def is_client(self) -> bool:
        return self.kind == "client"

    @property
    def must_enrol(self) -> bool:
        """A practitioner whose clinic requires two-factor sign-in and who has not set it up."""
        return self.is_practitioner and self.two_factor_required and not self.row["totp_secret"]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# One read per request: the session, its user and (for a practitioner) the clinic's two-factor
# rule. Both user tables are joined; the marker columns split the row between them, so columns
# added to either table later come along without naming them here.
LOAD_SESSION = """
SELECT s.*, cl.two_factor_required AS _practitioner, p.*, NULL AS _client, c.*
FROM auth_sessions s
LEFT JOIN practitioners p ON s.user_kind = 'practitioner' AND p.id = s.user_id
LEFT JOIN clinics cl ON cl.id = p.clinic_id
LEFT JOIN clients c ON s.user_kind = 'client' AND c.id = s.user_id
WHERE s.id = :id
"""
# Last seen is written at most this often: no write on every request. A short idle timeout
# writes it more often (a 30th of the timeout), or someone active within the timeout could be
# signed out: with 1 minute, a request 40 s after the last write would not have counted.
TOUCH_EVERY = {"practitioner": timedelta(minutes=1), "client": timedelta(minutes=5)}


def read_session(session_id: str) -> tuple[dict, dict | None, bool] | None:
    """Return (session row, user row or None, clinic requires two-factor), or None."""
    cur = get_db().conn.execute(LOAD_SESSION, {"id": hash_token(session_id)})
    values = cur.fetchone()
    if values is None:
        return None
    names = [d[0] for d in cur.description]
    split_p, split_c = names.index("_practitioner"), names.index("_client")
    row = dict(zip(names[:split_p], values[:split_p], strict=True))
    if row["user_kind"] == "practitioner":
        user = dict(zip(names[split_p + 1 : split_c], values[split_p + 1 : split_c], strict=True))
    else:
        user = dict(zip(names[split_c + 1 :], values[split_c + 1 :], strict=True))
    return row, (user if user["id"] is not None else None), bool(values[split_p])


def live_user(found: tuple[dict, dict | None, bool], session_id: str, now: datetime) -> User | None:
    row, user_row, two_factor_required = found
    if row["revoked_at"] or parse_iso(row["expires_at"]) <= now:
        return None
    if user_row is None or not user_row.get("active", 1):
        return None
    kind = row["user_kind"]
    cfg = current_app.config
    idle = (
        timedelta(minutes=cfg["PRACTITIONER_IDLE_MINUTES"])
        if kind == "practitioner"
        else timedelta(days=cfg["CLIENT_IDLE_DAYS"])
    )
    last_seen = parse_iso(row["last_seen_at"])
    if now - last_seen > idle:
        return None
    if now - last_seen > min(TOUCH_EVERY[kind], idle / 30):
        get_db().conn.execute(
            "UPDATE auth_sessions SET last_seen_at = :now WHERE id = :id",
            {"now": iso(now), "id": row["id"]},
        )
    return User(kind, user_row, session_id, two_factor_required)


def start_session(kind: str, row: dict, event: str, detail: str | None = None) -> User:
    """Create a server-side session for a user, sign them in on this request, and record
    `event` (what signed them in) in the audit log as theirs."""
    now = utcnow()
    if kind == "practitioner":
        lifetime = timedelta(hours=current_app.config["PRACTITIONER_ABSOLUTE_HOURS"])
    else:
        lifetime = timedelta(days=current_app.config["CLIENT_SESSION_DAYS"])
    session_id = secrets.token_urlsafe(32)
    db = get_db()
    db.conn.execute(
        "INSERT INTO auth_sessions (id, user_kind, user_id, created_at, last_seen_at,"
        " expires_at, device, device_id)"
        " VALUES (:id, :kind, :user_id, :now, :now, :expires_at, :device, :device_id)",
        {
            "id": hash_token(session_id),
            "kind": kind,
            "user_id": row["id"],
            "now": iso(now),
            "expires_at": iso(now + lifetime),
            "device": phones.device_label(request.user_agent.string),
            "device_id": str(uuid.uuid4()),
        },
    )
    audit.record(
        event,
        actor_kind=kind,
        actor_id=row["id"],
        clinic_id=row["clinic_id"],
        client_id=row["id"] if kind == "client" else None,
        detail=detail,
    )
    required = kind == "practitioner" and bool(
        one(
            db,
            "SELECT two_factor_required FROM clinics WHERE id = :id",
            {"id": row["clinic_id"]},
        )["two_factor_required"]
    )
    user = User(kind, row, session_id, required)
    session.clear()
    session.permanent = kind == "practitioner"
    # Clients stay signed in on their phone (remember cookie); practitioners do not.
    login_user(user, remember=kind == "client", duration=lifetime)
    return user


def end_session() -> None:
    """Revoke this request's server-side session and clear the cookies."""
    if current_user.is_authenticated:
        get_db().conn.execute(
            "UPDATE auth_sessions SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
            {"now": iso(utcnow()), "id": hash_token(current_user.session_id)},
        )
        if current_user.is_client:  # a practitioner's urgent alerts outlive their sign-in
            phones.forget_push_of_signed_out(get_db(), current_user.id)
    logout_user()
    session.clear()
    # The browser drops what it kept of the app (caches, storage, the service worker).
    g.signed_out = True


def revoke_all(kind: str, user_id: int) -> int:
    """Revoke every live session of a user; return how many were ended."""
    cur = get_db().conn.execute(
        "UPDATE auth_sessions SET revoked_at = :now WHERE user_kind = :kind"
        " AND user_id = :user_id AND revoked_at IS NULL",
        {"now": iso(utcnow()), "kind": kind, "user_id": user_id},
    )
    if kind == "client":
        phones.forget_push_of_signed_out(get_db(), user_id, every_phone=True)
    return cur.rowcount


def revoke_others(kind: str, user_id: int, keep_session_id: str) -> int:
    """Revoke every live session of a user but the one given; return how many were ended."""
    cur = get_db().conn.execute(
        "UPDATE auth_sessions SET revoked_at = :now WHERE user_kind = :kind"
        " AND user_id = :user_id AND revoked_at IS NULL AND id != :keep",
        {
            "now": iso(utcnow()),
            "kind": kind,
            "user_id": user_id,
            "keep": hash_token(keep_session_id),
        },
    )
    return cur.rowcount
