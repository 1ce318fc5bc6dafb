"""The client's pages (the PWA, mobile first): invite, welcome, home, check-in, reminders, settings."""

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user

from companion.accounts import store as clinic
from companion.auth import client_required
from companion.converters import parse_id
from companion.db import get_db, utcnow
from companion.errors import ApiError, DomainError

bp = Blueprint("client", __name__)

# Pages without health data that the service worker may keep for offline use.
SHELL_PAGES = {"client.offline", "client.checkin", "client.welcome", "client.not_signed_in"}


@bp.after_app_request
def shell_cache(resp):
    if request.endpoint in SHELL_PAGES and resp.status_code == 200:
        resp.headers["Cache-Control"] = "no-cache, private"
    return resp


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for(".not_signed_in"))
    if current_user.is_practitioner:
        return redirect(url_for("review.queue"))
    return render_template("client/home.html", **home_context())


def home_context() -> dict:
    """Today's aftercare, the next reminder, the latest assessment and the recovery chart."""
    from companion.checkins import store as checkins
    from companion.db import rows
    from companion.reminders import inbox as aftercare
    from companion.review import charts

    db = get_db()
    client = current_user.row
    context = dict(
        client=client,
        clinic=clinic.get_clinic(db, client["clinic_id"]),
        assessment=None,
        chart=None,
        **aftercare.overview(db, client, utcnow()),
    )
    if context["session"]:
        found = checkins.checkin_dicts(
            db,
            rows(
                db,
                "SELECT * FROM checkins WHERE session_id = ? ORDER BY taken_at",
                (context["session"]["id"],),
            ),
        )
        if found:
            context["assessment"] = found[-1]["assessment"]
            session_row = clinic.load_session(db, context["session"]["id"])
            context["chart"] = charts.chart_for(session_row, found)
    return context


@bp.get("/start")
def not_signed_in():
    return render_template("client/start.html")


@bp.route("/i/<token>", methods=["GET", "POST"])
def redeem(token: str):
    """Show the invite; signing in happens on the tap, so link previews cannot use it up."""
    error = None
    if request.method == "POST":
        try:
            clinic.sign_in_with_invite(get_db(), token[:100], utcnow())
            return redirect(url_for(".welcome"))
        except (ApiError, DomainError) as e:
            error = e.message
    return render_template("client/invite.html", error=error), 410 if error else 200


@bp.get("/welcome")
@client_required
def welcome():
    return render_template("client/welcome.html", client=current_user.row)


@bp.get("/checkin")
@client_required
def checkin():
    session_id = request.args.get("session", "")
    return render_template("client/checkin.html", session_id=parse_id(session_id) or "")


@bp.get("/reminders")
@client_required
def reminders():
    from companion.reminders import inbox as aftercare

    return render_template(
        "client/reminders.html", reminders=aftercare.inbox(get_db(), current_user.row, utcnow())
    )


@bp.route("/settings", methods=["GET", "POST"])
@client_required
def settings():
    errors: dict = {}
    saved = False
    if request.method == "POST":
        f = request.form
        data = {
            "timezone": f.get("timezone", ""),
            "discreet": f.get("discreet") == "on",
            "quiet_hours": {"start": f.get("quiet_start", ""), "end": f.get("quiet_end", "")},
        }
        try:
            values = clinic.client_fields(data, partial=True)
            current_user.row = clinic.update_client(get_db(), current_user.row, values, utcnow())
            saved = True
        except (ApiError, DomainError) as e:
            errors = e.fields
    from zoneinfo import available_timezones

    from companion.validation import valid_timezone  # noqa: F401  (zones list for the select)

    return render_template(
        "client/settings.html",
        client=current_user.row,
        errors=errors,
        saved=saved,
        zones=sorted(available_timezones()),
    )


@bp.get("/offline")
def offline():
    return render_template("client/offline.html")
