"""The practitioner's two-factor pages: the code step of signing in, setting it up (QR code,
secret, recovery codes), turning it off, and the owner's rule for the clinic."""

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from companion import auth, throttle, twofactor
from companion.accounts import actions, clinics
from companion.auth import open_during_enrolment, owner_required, practitioner_required
from companion.db import get_db, parse_iso, utcnow, write
from companion.errors import DomainError, NotFound, RateLimited
from companion.security import safe_next

bp = Blueprint("twofactor", __name__, url_prefix="/clinic")

# How long the password step stays good for while the code is looked up.
CODE_STEP_MINUTES = 5


def _pending_practitioner() -> dict | None:
    """Return the practitioner whose password was right a moment ago, if any."""
    pending = session.get("two_factor")
    if not isinstance(pending, dict):
        return None
    try:
        started = parse_iso(pending["at"])
        row = clinics.get_practitioner(get_db(), int(pending["id"]))
    except (KeyError, TypeError, ValueError, NotFound):
        return None
    if utcnow() - started > timedelta(minutes=CODE_STEP_MINUTES) or not row["active"]:
        return None
    return row if twofactor.enabled(row) else None


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    row = _pending_practitioner()
    if row is None:
        flash("Sign in again: the code step waits 5 minutes at most.")
        return redirect(url_for("practitioner.login"))
    error, status, headers = None, 200, {}
    if request.method == "POST":
        db = get_db()
        try:
            used = twofactor.check_code(
                db, row, request.form.get("code", "")[:40], request.remote_addr, utcnow()
            )
            with write(db):
                auth.start_session("practitioner", row, "sign_in", f"second_factor={used}")
                throttle.forget_failures(db, row["email"])
            if used == "recovery_code":
                left = twofactor.recovery_codes_left(db, row["id"])
                flash(f"You used a recovery code: {left} left. Make new ones if you run low.")
            return redirect(safe_next(request.args.get("next")) or url_for("review.queue"))
        except RateLimited as e:
            error, status, headers = e.message, 429, {"Retry-After": str(e.retry_after)}
        except DomainError as e:
            error, status = e.message, 401
    return render_template("practitioner/login_code.html", error=error), status, headers


@bp.get("/two-factor")
@open_during_enrolment
@practitioner_required
def setup():
    """Two-factor sign-in: set it up (QR code and secret), or see it is on and manage it.
    Reading it writes nothing: the set-up starts on the button (start), and its QR code is
    then the same on every visit and reload until it is confirmed."""
    return _page({})


@bp.post("/two-factor/start")
@open_during_enrolment
@practitioner_required
def start():
    """Start setting up: a secret for the authenticator app (the one being set up already, if
    any: a second tap or a resent form does not invalidate a QR code being scanned)."""
    try:
        actions.start_two_factor(get_db(), current_user, fresh=False)
    except DomainError as e:  # on already (another tab)
        return _page_with_errors(e, 409)
    return redirect(url_for(".setup"), 303)


def _page(errors: dict, status: int = 200):
    db = get_db()
    row = clinics.get_practitioner(db, current_user.id)
    enabled = twofactor.enabled(row)
    page = render_template(
        "practitioner/two_factor.html",
        enabled=enabled,
        setup=None if enabled else twofactor.pending_setup(row),
        codes_left=twofactor.recovery_codes_left(db, current_user.id),
        errors=errors,
    )
    return page, status


def _page_with_errors(e: DomainError, status: int):
    return _page(e.fields or {"form": e.message}, status)


@bp.post("/two-factor/confirm")
@open_during_enrolment
@practitioner_required
def confirm():
    try:
        codes = actions.confirm_two_factor(
            get_db(), current_user, request.form.get("code", "")[:40], utcnow()
        )
    except DomainError as e:
        return _page_with_errors(e, 422)
    return render_template("practitioner/recovery_codes.html", codes=codes, first=True)


@bp.post("/two-factor/recovery-codes")
@practitioner_required
def recovery_codes():
    try:
        codes = actions.renew_recovery_codes(
            get_db(),
            current_user,
            request.form.get("password", "")[:200],
            request.remote_addr,
            utcnow(),
        )
    except RateLimited as e:
        return _page_with_errors(e, 429)
    except DomainError as e:
        return _page_with_errors(e, 422)
    return render_template("practitioner/recovery_codes.html", codes=codes, first=False)


@bp.post("/two-factor/disable")
@practitioner_required
def disable():
    try:
        actions.disable_two_factor(
            get_db(), current_user, request.form.get("password", "")[:200], request.remote_addr
        )
    except RateLimited as e:
        return _page_with_errors(e, 429)
    except DomainError as e:
        return _page_with_errors(e, 422)
    flash("Two-factor sign-in is off.")
    return redirect(url_for(".setup"))


@bp.post("/two-factor/require")
@owner_required
def require():
    try:
        required = actions.require_two_factor(
            get_db(), current_user, request.form.get("required") == "on"
        )
    except DomainError as e:
        return _page_with_errors(e, 409)
    flash(
        "Everyone in your clinic now signs in with a code."
        if required
        else "Two-factor sign-in is now each practitioner's choice."
    )
    return redirect(url_for(".setup"))
