"""The client's reminders inbox page and the offline page the service worker falls back to."""

from flask import Blueprint, render_template
from flask_login import current_user

from companion.auth import client_required
from companion.db import get_db, utcnow
from companion.reminders import inbox as aftercare
from companion.web import shell_page

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
