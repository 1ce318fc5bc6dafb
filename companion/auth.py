"""Who may do what: the user loader, the decorators that let each kind of user through, the
two-factor enrolment gate and Clear-Site-Data. Sign-in sessions themselves: sessions.py;
passwords: credentials.py; codes: twofactor.py."""

from datetime import timedelta
from functools import wraps

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_login.config import COOKIE_NAME

from companion import audit, sessions
from companion.db import utcnow
from companion.errors import N_, ApiError, abort_json_or_html
from companion.security import safe_next

# Callers sign users in and out through these names (kept here since before the split).
from companion.sessions import (  # noqa: F401
    User,
    end_session,
    hash_token,
    revoke_all,
    revoke_others,
    start_session,
)

login_manager = LoginManager()
SIGN_IN_FIRST = N_("Sign in first.")
NOT_YOURS = N_("This is not available to your account.")


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Load the user of a live server-side session; expired, idle or revoked ones give None
    (and a client's phone is then told to clear what it kept: see clear_site_data)."""
    found = sessions.read_session(session_id)
    user = sessions.live_user(found, session_id, utcnow()) if found else None
    if user is None and (found is None or found[0]["user_kind"] == "client"):
        # A revoked, expired or erased client's phone: its copies of pages go too.
        g.dead_sign_in = True
    return user


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


def open_during_enrolment(view):
    """Let a practitioner who must still set up two-factor sign-in reach this view."""
    view.open_during_enrolment = True
    return view


def signed_in() -> None:
    """Refuse an API call from someone not signed in (any kind of user may pass)."""
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", SIGN_IN_FIRST)


def refuse():
    """Answer 403 to a signed-in user asking for what their account may not do (audited)."""
    return _forbidden()


def _forbidden():
    audit.record("access_refused", detail=request.path)
    return abort_json_or_html(403, "forbidden", NOT_YOURS)


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS; its signing
    serializer is built once per secret key, not on every request (Flask's default)."""

    def __init__(self):
        self._serializers = {}

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)

    def get_signing_serializer(self, app: Flask):
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if key not in self._serializers:
            self._serializers = {key: super().get_signing_serializer(app)}
        return self._serializers[key]


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
    login_manager.init_app(app)
    login_manager.session_protection = None  # the server-side session row is the protection
    # Without session protection flask-login still hashes the address and user agent on
    # every request (and keeps the hash in the session), only to ignore it.
    login_manager._session_identifier_generator = lambda: None
    app.config.setdefault(
        "REMEMBER_COOKIE_DURATION", timedelta(days=app.config["CLIENT_SESSION_DAYS"])
    )
    app.permanent_session_lifetime = timedelta(hours=app.config["PRACTITIONER_ABSOLUTE_HOURS"])
    # A practitioner's cookie lasts the absolute lifetime from sign-in and the server-side row
    # ends it (idle or absolute): re-signing and re-sending it on every request (Flask's
    # default) would change nothing but cost each request a serialization and an HMAC.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False

    @app.before_request
    def enrolment_gate():
        """Until a practitioner whose clinic requires two-factor sign-in has set it up, the
        set-up (and signing out) is all they can do."""
        view = app.view_functions.get(request.endpoint)
        if request.blueprint is None or getattr(view, "open_during_enrolment", False):
            return None
        if current_user.is_authenticated and current_user.must_enrol:
            if request.path.startswith("/api/"):
                raise ApiError(
                    403,
                    "two_factor_setup_required",
                    "Your clinic requires two-factor sign-in: set it up first"
                    " (POST /api/auth/two-factor/setup).",
                )
            return redirect(url_for("twofactor.setup"))
        return None

    @app.after_request
    def clear_site_data(response):
        """Tell the browser to drop what it kept of the app (its caches, storage and service
        worker) on sign-out, and when a revoked, expired or erased client's phone calls."""
        dead = g.get("dead_sign_in") and not current_user.is_authenticated
        if g.get("signed_out") or dead:
            response.headers["Clear-Site-Data"] = '"cache", "storage"'
        if dead:
            # Forget the dead sign-in's cookies too, or every request repeats this.
            session.clear()
            response.delete_cookie(app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME))
        return response

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            return abort_json_or_html(401, "unauthorized", SIGN_IN_FIRST)
        return redirect(url_for("practitioner.login", next=safe_next(request.full_path)))
