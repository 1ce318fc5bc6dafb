"""The treatment session form: record a new session for a client, or edit one."""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion import audit
from companion.accounts.pages import form_errors, my_client, status_of_form
from companion.auth import practitioner_required
from companion.clinical import AREAS
from companion.contract import parse
from companion.db import get_db, utcnow
from companion.errors import DomainError, NotFound
from companion.treatments import actions
from companion.treatments import store as treatments
from companion.treatments.models import SessionInput

bp = Blueprint("treatments", __name__, url_prefix="/clinic")


def session_form_data(form, tz: str) -> dict:
    """Turn the session form into the API's field values (local time in the client's zone)."""
    data: dict = {}
    raw = form.get("performed_at", "").strip()
    if raw:
        try:
            local = datetime.fromisoformat(raw)
            data["performed_at"] = (
                local if local.tzinfo else local.replace(tzinfo=ZoneInfo(tz))
            ).isoformat()
        except ValueError:
            data["performed_at"] = raw
    data["areas"] = [a for a in form.getlist("areas") if a.strip()] + [
        a.strip() for a in form.get("areas_other", "").split(",") if a.strip()
    ]
    try:
        data["needle_depth_mm"] = float(form.get("needle_depth_mm", ""))
    except ValueError:
        data["needle_depth_mm"] = form.get("needle_depth_mm")
    data["device"] = form.get("device") or None
    data["products"] = [p.strip() for p in form.get("products", "").split(",") if p.strip()]
    data["notes"] = form.get("notes", "")
    return data


@bp.route("/clients/<int:client_id>/sessions/new", methods=["GET", "POST"])
@bp.route("/sessions/<int:session_id>/edit", methods=["GET", "POST"])
@practitioner_required
def session_form(client_id: int | None = None, session_id: int | None = None):
    db = get_db()
    session = None
    if session_id is not None:
        try:
            session = treatments.get_session(db, session_id, current_user.clinic_id)
        except NotFound:
            abort(404)
        client_id = session["client_id"]
    client = my_client(client_id)
    errors: dict = {}
    if request.method == "POST":
        now = utcnow()
        data = session_form_data(request.form, client["timezone"])
        try:
            values = parse(SessionInput, data, now=now)
            if session is None:
                actions.record_session(db, current_user, client, values, now)
            else:
                actions.edit_session(db, current_user, session, client, values, now)
            flash("Session saved; reminders planned.")
            return redirect(url_for("practitioner.client_detail", client_id=client_id))
        except DomainError as e:
            errors = form_errors(e)
            if "areas" in errors and not data["areas"]:  # the API's "Give at least 1."
                errors["areas"] = "Tick at least one treated area, or name it under Other areas."
    if session is not None and request.method == "GET":  # the form shows the session's notes
        audit.record("client_read", client_id=client_id, detail=f"session={session_id}")
    current = treatments.session_dict(session, client["timezone"]) if session else None
    return render_template(
        "practitioner/session_form.html",
        client=client,
        session=current,
        errors=errors,
        form=request.form,
        areas=AREAS,
        # A new session is usually recorded as it ends: now, in the zone the field is read in.
        now_local=utcnow().astimezone(ZoneInfo(client["timezone"])).strftime("%Y-%m-%dT%H:%M"),
    ), status_of_form(errors)
