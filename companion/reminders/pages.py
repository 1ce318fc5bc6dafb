"""The client's reminders inbox page and the offline page the service worker falls back to."""

from flask import Blueprint, current_app, g, make_response, render_template, request
from flask_login import current_user

from companion.accounts import actions, clients, clinics
from companion.admin import clinic
from companion.auth import client_required
from companion.db import get_db, utcnow
from companion.errors import Gone, NotFound
from companion.reminders import inbox as aftercare
from companion.reminders import links
from companion.web import csrf, shell_page

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
