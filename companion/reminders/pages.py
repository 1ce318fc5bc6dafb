"""The client's reminders inbox page, the offline page the service worker falls back to, the
email unsubscribe page, and the private calendar feed with the buttons that add it to the
phone's calendar."""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
)
from flask_login import current_user

from companion import throttle
from companion.accounts import actions, clients, clinics
from companion.admin import clinic
from companion.auth import client_required, practitioner_required
from companion.db import get_db, utcnow
from companion.errors import Gone, NotFound
from companion.i18n import current_language, in_language, language_of
from companion.i18n import gettext as _
from companion.reminders import actions as reminder_actions
from companion.reminders import calendar, links
from companion.reminders import channels as reminder_channels
from companion.reminders import inbox as aftercare
from companion.web import csrf, installation_url, shell_page

bp = Blueprint("reminders", __name__)


@bp.get("/reminders")
@client_required
def reminders():
    return render_template(
        "client/reminders.html",
        client=current_user.row,
        reminders=aftercare.inbox(get_db(), current_user.row, utcnow()),
    )


@bp.get("/offline")
@shell_page
def offline():
    # The service worker keeps this page in the language the client's pages came in
    # (their Content-Language): ?lang= asks for that one.
    with in_language(request.args.get("lang") or current_language()):
        return render_template("client/offline.html")


@bp.route("/email/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: the mail app posts List-Unsubscribe=One-Click, with no cookie
def unsubscribe(token: str):
    """Stop reminder emails for the client a List-Unsubscribe link names.

    GET asks first (link scanners open links); POST, from the page or the mail app's
    one-click button, switches email off at once.
    """
    db = get_db()
    client_id = links.read_unsubscribe_token(current_app.config["SECRET_KEY"], token[:400])
    if client_id is None:
        raise NotFound("unsubscribe link", "link_not_found")
    client = clients.load_client(db, client_id)
    if client is None:
        raise Gone("There is nothing to unsubscribe: this record has been erased.", "link_revoked")
    g.language = language_of(client)  # nobody is signed in: the email's reader is the client
    done = request.method == "POST"
    if done:
        client = actions.stop_email(db, client, utcnow())
    g.clinic_face = face = clinic.face(clinics.get_clinic(db, client["clinic_id"]))
    resp = make_response(
        render_template("client/unsubscribe.html", done=done, clinic_name=face["display_name"])
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.get("/calendar/<token>.ics")
def calendar_feed(token: str):
    """A client's calendar, for calendar apps: no cookie, the token is the key."""
    db = get_db()
    client = calendar.client_by_token(db, token)
    if client is None:  # unknown, replaced by a new address, or the client was erased
        abort(404)
    # A leaked address fetched in a loop costs a feed built each time: limited per token.
    throttle.allowance_of(current_app, "calendar").take(
        token,
        current_app.config["CALENDAR_RATE_PER_HOUR"],
        "This calendar was fetched too often; your calendar app will try again later.",
        "too_many_calendar_fetches",
    )
    face = clinic.face(clinics.get_clinic(db, client["clinic_id"]))
    body = calendar.feed(db, client, face, utcnow(), installation_url())
    resp = make_response(body)
    resp.mimetype = "text/calendar"
    resp.headers["Content-Disposition"] = 'inline; filename="aftercare.ics"'
    # Private to whoever holds the address; a calendar app re-fetches it on its own schedule.
    resp.headers["Cache-Control"] = "private, max-age=300"
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


@bp.app_template_global("calendar_offer")
def calendar_offer() -> dict | None:
    """The signed-in client's feed links and which of them suits this phone (by its browser)."""
    if not (current_user.is_authenticated and current_user.is_client):
        return None
    found = calendar.client_links(get_db(), current_user.row, installation_url())
    if found["calendar_url"] is None:
        return None
    agent = request.user_agent.string
    platform = "ios" if any(k in agent for k in ("iPhone", "iPad", "iPod")) else None
    platform = platform or ("android" if "Android" in agent else "other")
    return found | {"platform": platform}


@bp.app_template_global("channels_off")
def channels_off() -> str | None:
    """For the set-up steps: None while the signed-in client's reminders may come as
    notifications; else how they come instead ("email", or "app": the inbox only), so
    "Turn on reminders" does not promise notifications their channels would never send."""
    if not (current_user.is_authenticated and current_user.is_client):
        return None
    chosen = reminder_channels.decode(current_user.row["channels"])
    if reminder_channels.allows(chosen, "push"):
        return None
    return "email" if "email" in chosen else "app"


@bp.post("/calendar/reset")
@client_required
def reset_my_calendar():
    reminder_actions.reset_calendar(get_db(), current_user, current_user.row)
    flash(_("Your calendar has a new address: add it to your calendar again."))
    return redirect("/settings#step-calendar")


@bp.post("/clinic/clients/<int:client_id>/calendar/reset")
@practitioner_required
def reset_client_calendar(client_id: int):
    db = get_db()
    client = clients.get_client(db, client_id, current_user.clinic_id)
    reminder_actions.reset_calendar(db, current_user, client)
    flash(f"{client['name']}'s calendar address was replaced; the old one no longer works.")
    return redirect(f"/clinic/clients/{client_id}")
