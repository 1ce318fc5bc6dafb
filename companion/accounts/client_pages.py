"""The client's account pages (the PWA, mobile first): start, invite, welcome, settings."""

import flask_babel
from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_login import current_user

from companion import audit, auth
from companion.accounts import actions, clients, invites
from companion.accounts.models import ClientSettingsInput
from companion.admin import clinic
from companion.auth import client_required
from companion.contract import parse, timezones
from companion.db import get_db, utcnow
from companion.errors import DomainError, shown, status_of
from companion.i18n import language_of
from companion.i18n import lazy_gettext as _l
from companion.reminders import channels
from companion.web import shell_page

bp = Blueprint("client", __name__)

# The settings page's choices for `channels` (None: the default, email as the fallback).
CHANNEL_CHOICES = {"default": None, "push": ["push"], "email": ["email"], "both": ["push", "email"]}


# What the invite page says for each reason an invite cannot be used (the API says it in
# English, companion/accounts/invites.py).
INVITE_PROBLEMS = {
    "invite_unknown": _l("This invite link is not valid."),
    "invite_revoked": _l(
        "This invite was replaced by a newer one. Ask your clinic for a new link."
    ),
    "invite_used": _l("This invite was already used. Ask your clinic for a new link."),
    "invite_expired": _l("This invite has expired. Ask your clinic for a new link."),
}


@bp.app_template_global("invite_problem")
def invite_problem(error: DomainError) -> str:
    return INVITE_PROBLEMS.get(error.code, error.message)


@bp.get("/start")
@shell_page
def not_signed_in():
    # A phone that is signed in has its aftercare: never tell it it was signed out.
    if current_user.is_authenticated:
        return redirect(url_for("checkins.home"))
    return render_template("client/start.html")


@bp.route("/i/<token>", methods=["GET", "POST"])
def redeem(token: str):
    """Show the invite; signing in happens on the tap, so link previews cannot use it up."""
    db = get_db()
    invite = invites.find_invite(db, token)
    # The phone that redeemed this invite taps the link again (or an older link of the
    # same client): it is already in, so take it home rather than to a dead end.
    if invite and _signed_in_as(invite["client_id"]):
        return redirect(url_for("checkins.home"))
    row = invites.clinic_of(db, token)
    if row is not None:  # the header and the text name the clinic the link comes from
        g.clinic_face = clinic.face(row)
    if invite is not None:  # the page speaks the language of the client it was made for
        g.language = language_of(clients.load_client(db, invite["client_id"]))
    error = None
    if request.method == "POST":
        try:
            actions.sign_in_with_invite(db, token, utcnow())
            return redirect(url_for(".welcome"))
        except DomainError as e:
            error = e
    elif invite is None:
        error = invites.unknown()
    else:  # say at once what the button would say after the tap
        error = invites.why_unusable(invite, utcnow())
    page = render_template("client/invite.html", error=error)
    return page, status_of(error) if error else 200


def _signed_in_as(client_id: int) -> bool:
    return current_user.is_authenticated and current_user.is_client and current_user.id == client_id


@bp.post("/sign-out")
def sign_out():
    """Sign this phone out; the browser is told to drop what it kept (Clear-Site-Data)."""
    if current_user.is_authenticated:
        audit.record("sign_out")
    auth.end_session()
    return redirect(url_for(".not_signed_in"))


@bp.get("/welcome")
@client_required
def welcome():
    # Not a shell page: it greets the client by name beside their private calendar address,
    # so it goes out no-store (security.py's default) and the service worker never keeps it.
    return render_template("client/welcome.html", client=current_user.row)


@bp.route("/settings", methods=["GET", "POST"])
@client_required
def settings():
    errors: dict = {}
    saved, status = False, 200
    if request.method == "POST":
        f = request.form
        data = {
            "timezone": f.get("timezone", ""),
            "discreet": f.get("discreet") == "on",
            "quiet_hours": {"start": f.get("quiet_start", ""), "end": f.get("quiet_end", "")},
        }
        if f.get("language"):
            data["language"] = f["language"]
        if f.get("channels") in CHANNEL_CHOICES:  # offered when the client has an address
            data["channels"] = CHANNEL_CHOICES[f["channels"]]
        try:
            values = parse(ClientSettingsInput, data, partial=True)
            current_user.row = actions.change_own_settings(get_db(), current_user, values, utcnow())
            flask_babel.refresh()  # this answer is already in the language just chosen
            saved = True
        except DomainError as e:
            errors = {name: shown(text) for name, text in e.fields.items()}
            status = 422  # the form again, saying what is wrong
    return render_template(
        "client/settings.html",
        client=current_user.row,
        errors=errors,
        saved=saved,
        zones=sorted(timezones()),
        channel=next(
            (
                k
                for k, v in CHANNEL_CHOICES.items()
                if v == channels.decode(current_user.row["channels"])
            ),
            None,  # [] (emails stopped, push off): no choice is ticked
        ),
    ), status
