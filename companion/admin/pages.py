"""Clinic administration pages: the team, this practitioner's alerts, the aftercare protocol."""

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion.accounts import actions as accounts
from companion.accounts.models import PractitionerInput
from companion.admin import store
from companion.auth import practitioner_required
from companion.clinical import SEVERITIES_DESC
from companion.contract import parse
from companion.converters import parse_id
from companion.db import get_db, utcnow
from companion.errors import DomainError, NotFound
from companion.reminders import actions, outbox
from companion.reminders.protocol import validate_steps

bp = Blueprint("admin", __name__, url_prefix="/clinic")


@bp.route("/settings", methods=["GET", "POST"])
@practitioner_required
def settings():
    """Alerts for this device, and which severities alert."""
    db = get_db()
    if request.method == "POST":
        chosen = [s for s in SEVERITIES_DESC if request.form.get(s)]
        store.set_alert_severities(db, current_user.id, chosen)
        flash("Alert settings saved.")
        return redirect(url_for(".settings"))
    return render_template(
        "practitioner/settings.html", severities=store.alert_severities(db, current_user.id)
    )


@bp.route("/protocol", methods=["GET", "POST"])
@practitioner_required
def protocol():
    """View and edit the clinic's protocol; saving makes a new version."""
    db = get_db()
    current = outbox.current_protocol(db, current_user.clinic_id)
    errors: dict = {}
    text = json.dumps(current["steps"], indent=2, ensure_ascii=False)
    if request.method == "POST":
        text = request.form.get("steps", "")
        try:
            steps, errors = validate_steps(json.loads(text))
        except ValueError as e:
            steps, errors = [], {"steps": f"Not valid JSON: {e}"}
        if not errors:
            row = actions.change_protocol(db, current_user, steps, utcnow())
            flash(f"Saved as version {row['version']}. New sessions use it.")
            return redirect(url_for(".protocol"))
    return render_template(
        "practitioner/protocol.html",
        protocol=outbox.protocol_dict(current),
        text=text,
        errors=errors,
    )


@bp.route("/team", methods=["GET", "POST"])
@practitioner_required
def team():
    """The clinic's practitioners: add a colleague, disable one (their sessions end at once)."""
    db = get_db()
    errors: dict = {}
    if request.method == "POST":
        disable = parse_id(request.form.get("disable"))
        try:
            if disable is not None:
                accounts.disable_colleague(db, current_user, disable)
                flash("Colleague disabled; their sessions have ended.")
            else:
                values = parse(
                    PractitionerInput,
                    {k: request.form.get(k, "") for k in ("email", "name", "password")},
                )
                accounts.add_colleague(db, current_user, values, utcnow())
                flash(f"{values['name']} can now sign in.")
            return redirect(url_for(".team"))
        except NotFound:
            abort(404)
        except DomainError as e:
            errors = e.fields or {"form": e.message}
    return render_template(
        "practitioner/team.html",
        people=store.team(db, current_user.clinic_id),
        errors=errors,
        form=request.form,
    )
