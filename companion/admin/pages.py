"""Clinic administration pages: the team, this practitioner's alerts, the aftercare protocol."""

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion.accounts import actions as accounts
from companion.accounts import clinics
from companion.accounts.models import ColleagueInput, RoleInput
from companion.admin import actions as clinic_settings
from companion.admin import protocol_editor, store
from companion.auth import practitioner_required, refuse
from companion.clinical import SEVERITIES_DESC
from companion.contract import parse, timezones
from companion.converters import parse_id
from companion.db import get_db, utcnow
from companion.errors import DomainError, NotFound
from companion.reminders import actions, protocol_store
from companion.reminders.protocol import DEFAULT_VALID_HOURS, KINDS, validate_steps
from companion.web import strict_loads

bp = Blueprint("admin", __name__, url_prefix="/clinic")


@bp.route("/settings", methods=["GET", "POST"])
@practitioner_required
def settings():
    """Alerts for this device, and which severities alert."""
    db = get_db()
    if request.method == "POST" and request.form.get("action") == "email_alerts":
        if not current_user.is_owner:
            return refuse()
        on = bool(request.form.get("email_alerts"))
        clinic_settings.change_clinic(db, current_user, {"email_alerts": on})
        flash("Urgent alerts are now emailed to the owners." if on else "Alert emails are off.")
        return redirect(url_for(".settings"))
    if request.method == "POST":
        chosen = [s for s in SEVERITIES_DESC if request.form.get(s)]
        store.set_alert_severities(db, current_user.id, chosen)
        flash("Alert settings saved.")
        return redirect(url_for(".settings"))
    return render_template(
        "practitioner/settings.html",
        severities=store.alert_severities(db, current_user.id),
        email_alerts=bool(clinics.get_clinic(db, current_user.clinic_id)["email_alerts"]),
        email_configured=bool(current_app.config.get("SMTP_HOST")),
        is_owner=current_user.is_owner,
    )


@bp.route("/protocol", methods=["GET", "POST"])
@practitioner_required
def protocol():
    """The protocol editor: steps in the order they fire, a live preview; owners save versions."""
    db = get_db()
    current = protocol_store.current_protocol(db, current_user.clinic_id)
    clinic = clinics.get_clinic(db, current_user.clinic_id)
    steps, errors, text = current["steps"], {}, None
    if request.method == "POST":
        if not current_user.is_owner:
            return refuse()
        if "steps" in request.form:  # JSON import, for power users
            text = request.form.get("steps", "")
            try:
                raw = strict_loads(text)
                if isinstance(raw, dict) and "steps" in raw:  # the downloaded file, as is
                    raw = raw["steps"]
            except ValueError as e:
                raw, errors = [], {"steps": f"Not valid JSON: {e}"}
        else:
            kept = {s["key"]: s for s in current["steps"]}
            raw = protocol_editor.steps_from_form(request.form, kept)
        if not errors:
            clean, errors = validate_steps(raw)
            if not errors:
                row = actions.change_protocol(db, current_user, clean, utcnow())
                flash(f"Saved as version {row['version']}. Sessions recorded from now on use it.")
                return redirect(url_for(".protocol"))
        if isinstance(raw, list) and all(isinstance(s, dict) for s in raw) and text is None:
            steps = raw  # show what was typed, with the errors beside it
    else:
        steps = protocol_editor.fire_order(steps, clinic["timezone"], utcnow())
    sample = protocol_editor.sample_start(clinic["timezone"], utcnow())
    return render_template(
        "practitioner/protocol.html",
        protocol=protocol_store.protocol_dict(current),
        steps=[
            protocol_editor.for_form(s, protocol_editor.timing_words(s["at"]))
            for s in steps
            if "at" in s
        ],
        errors=errors,
        error_lines=protocol_editor.error_lines(errors),
        text=text or json.dumps(current["steps"], indent=2, ensure_ascii=False),
        clinic=clinic,
        kinds=KINDS,
        default_valid=DEFAULT_VALID_HOURS,
        zones=sorted(timezones()),
        sample=sample,
        preview=protocol_editor.preview(current["steps"], clinic["timezone"], sample),
    ), (422 if errors else 200)


@bp.route("/team", methods=["GET", "POST"])
@practitioner_required
def team():
    """The clinic's practitioners; an owner adds, disables, re-enables and promotes them."""
    db = get_db()
    errors: dict = {}
    if request.method == "POST":
        if not current_user.is_owner:
            return refuse()
        try:
            flash(_change_team(db, request.form))
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
    ), (422 if errors else 200)


def _change_team(db, form) -> str:
    """Apply one change of the team form; return what to tell the owner."""
    disable, enable = parse_id(form.get("disable")), parse_id(form.get("enable"))
    role_of = parse_id(form.get("role_of"))
    if disable is not None:
        accounts.disable_colleague(db, current_user, disable)
        return "Colleague disabled; their sessions, devices and queued alerts have ended."
    if enable is not None:
        row = accounts.enable_colleague(db, current_user, enable)
        return f"{row['name']} can sign in again."
    if role_of is not None:
        values = parse(RoleInput, {"role": form.get("role", "")})
        row = accounts.change_role(db, current_user, role_of, values["role"])
        return f"{row['name']} is now {'an owner' if row['role'] == 'owner' else 'a practitioner'}."
    fields = ("email", "name", "password", "role")
    values = parse(ColleagueInput, {k: form.get(k, "") for k in fields if k in form or k != "role"})
    accounts.add_colleague(db, current_user, values, utcnow())
    return f"{values['name']} can now sign in."
