"""Signed-in users on revocable server-side sessions: practitioners (password, see credentials.py)
and clients (invite); the user loader and the decorators that let each kind through."""

import hashlib
import secrets
from datetime import timedelta
from functools import wraps

from flask import Flask, current_app, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from companion import audit
from companion.db import get_db, iso, one, parse_iso, utcnow
from companion.errors import ApiError, abort_json_or_html, safe_next

login_manager = LoginManager()


class User(UserMixin):
    """A signed-in practitioner or client, bound to one server-side session row."""

    def __init__(self, kind: str, row: dict, session_id: str):
        self.kind = kind
        self.row = row
        self.id = row["id"]
        self.clinic_id = row["clinic_id"]
        self.name = row["name"]
        self.session_id = session_id

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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Load the user of a live server-side session; expired, idle or revoked ones give None."""
    db = get_db()
    row = one(db, "SELECT * FROM auth_sessions WHERE id = :id", {"id": hash_token(session_id)})
    if row is None or row["revoked_at"]:
        return None
    now = utcnow()
    if parse_iso(row["expires_at"]) <= now:
        return None
    table = "practitioners" if row["user_kind"] == "practitioner" else "clients"
    user_row = one(db, f"SELECT * FROM {table} WHERE id = :id", {"id": row["user_id"]})
    if user_row is None or not user_row.get("active", 1):
        return None
    if row["user_kind"] == "practitioner":
        idle = timedelta(minutes=current_app.config["PRACTITIONER_IDLE_MINUTES"])
        last_seen = parse_iso(row["last_seen_at"])
        if now - last_seen > idle:
            return None
        # Touch at most once a minute: no write on every request.
        if now - last_seen > timedelta(minutes=1):
            db.conn.execute(
                "UPDATE auth_sessions SET last_seen_at = :now WHERE id = :id",
                {"now": iso(now), "id": row["id"]},
            )
    return User(row["user_kind"], user_row, session_id)


def start_session(kind: str, row: dict, event: str) -> User:
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
        "INSERT INTO auth_sessions (id, user_kind, user_id, created_at, last_seen_at, expires_at)"
        " VALUES (:id, :kind, :user_id, :now, :now, :expires_at)",
        {
            "id": hash_token(session_id),
            "kind": kind,
            "user_id": row["id"],
            "now": iso(now),
            "expires_at": iso(now + lifetime),
        },
    )
    audit.record(
        event,
        actor_kind=kind,
        actor_id=row["id"],
        clinic_id=row["clinic_id"],
        client_id=row["id"] if kind == "client" else None,
    )
    user = User(kind, row, session_id)
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
    logout_user()
    session.clear()


def revoke_all(kind: str, user_id: int) -> int:
    """Revoke every live session of a user; return how many were ended."""
    cur = get_db().conn.execute(
        "UPDATE auth_sessions SET revoked_at = :now WHERE user_kind = :kind"
        " AND user_id = :user_id AND revoked_at IS NULL",
        {"now": iso(utcnow()), "kind": kind, "user_id": user_id},
    )
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


def practitioner_required(view):
    """Let only a signed-in practitioner through."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_practitioner:
            return _forbidden()
        return view(*args, **kwargs)

    return wrapped


def owner_required(view):
    """Let only a signed-in owner of their clinic through (practitioners get 403)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_owner:
            return _forbidden()
        return view(*args, **kwargs)

    return wrapped


def client_required(view):
    """Let only a signed-in client through; a signed-out phone goes to the start page."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            if request.path.startswith("/api/"):
                return login_manager.unauthorized()
            return redirect(url_for("client.not_signed_in"))
        if not current_user.is_client:
            return _forbidden()
        return view(*args, **kwargs)

    return wrapped


def signed_in() -> None:
    """Refuse an API call from someone not signed in (any kind of user may pass)."""
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "Sign in first.")


def refuse():
    """Answer 403 to a signed-in user asking for what their account may not do (audited)."""
    return _forbidden()


def _forbidden():
    audit.record("access_refused", detail=request.path)
    return abort_json_or_html(403, "forbidden", "This is not available to your account.")


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session row is the protection
    app.config.setdefault(
        "REMEMBER_COOKIE_DURATION", timedelta(days=app.config["CLIENT_SESSION_DAYS"])
    )
    app.permanent_session_lifetime = timedelta(hours=app.config["PRACTITIONER_ABSOLUTE_HOURS"])
    # A practitioner's cookie lasts the absolute lifetime from sign-in and the server-side row
    # ends it (idle or absolute): re-signing and re-sending it on every request (Flask's
    # default) would change nothing but cost each request a serialization and an HMAC.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            return abort_json_or_html(401, "unauthorized", "Sign in first.")
        return redirect(url_for("practitioner.login", next=safe_next(request.full_path)))
