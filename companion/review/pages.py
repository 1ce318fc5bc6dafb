"""Practitioner review pages: the flag queue, flag actions, erasure and the audit log."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion import audit
from companion.accounts import clinics
from companion.accounts.clients import get_client
from companion.auth import practitioner_required
from companion.clinical import RULES, SEVERITIES_DESC
from companion.converters import parse_id
from companion.db import get_db, utcnow
from companion.errors import DomainError, NotFound
from companion.review import actions, audit_words, queue, recoveries, timeline
from companion.security import safe_next
from companion.treatments import store as treatments

bp = Blueprint("review", __name__, url_prefix="/clinic")

RECOVERY_DONE = {
    "acknowledge": "You are on it: the recovery shows your name.",
    "called": "Call recorded.",
    "resolve": "Recovery resolved.",
}
DONE = {
    "acknowledge": "Flag acknowledged.",
    "called": "Call recorded.",
    "resolve": "Flag resolved.",
}


STATUS_CHOICES = {
    "active": "Open and acknowledged",
    "open": "Open",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}


@bp.get("/", endpoint="queue")
@practitioner_required
def queue_page():
    """The practitioner's home: one row per recovery with active flags, urgent first, then by age."""
    db = get_db()
    status = request.args.get("status", "active")
    status = status if status in STATUS_CHOICES else "active"
    severity = request.args.get("severity") or None
    severity = severity if severity in SEVERITIES_DESC else None
    # The API's names work too (`practitioner_id`, `client_id`): the README gives the page and
    # GET /api/queue the same filters, and a link written from one opens the other.
    practitioner = request.args.get("practitioner") or request.args.get("practitioner_id", "")
    client = request.args.get("client_id", "")
    client_id = parse_id(client)
    now = utcnow()
    found = recoveries.recoveries(
        db,
        current_user.clinic_id,
        now,
        statuses=queue.STATUS_FILTERS[status],
        severity=severity,
        practitioner_id=parse_id(practitioner),
        client_id=client_id,
    )
    # Who is flagged, and why, is health data: one entry per read that shows anyone, not per flag.
    if found:
        audit.record("queue_read", detail=f"status={status}")
    clinic = clinics.get_clinic(db, current_user.clinic_id)
    return render_template(
        "practitioner/queue.html",
        recoveries=found,
        now=now,
        zone=ZoneInfo(clinic["timezone"]),
        counts=recoveries.counts(db, current_user.clinic_id),
        version=recoveries.version(db, current_user.clinic_id),
        status=status,
        statuses=STATUS_CHOICES,
        severity=severity,
        practitioner=practitioner,
        client_id=client_id,
        colleagues=queue.colleagues(db, current_user.clinic_id),
        rules=RULES,
        chip_reason=queue.chip_reason,
    )


@bp.post("/recoveries/<any(acknowledge, called, resolve):action>")
@practitioner_required
def recovery_action(action: str):
    """Act on the flags of one queue row that the practitioner saw, then go back to the queue."""
    note = request.form.get("note", "").strip()[:2000] or None
    ids = [i for i in map(parse_id, request.form.getlist("flag_id")) if i]
    try:
        actions.act_on_flags(get_db(), current_user, ids, action, note, utcnow())
        flash(RECOVERY_DONE[action])
    except NotFound:
        abort(404)
    except DomainError as e:
        flash(next(iter(e.fields.values()), e.message), "error")
    return redirect(_back())


def _back() -> str:
    back = safe_next(request.form.get("back")) or ""  # one of our paths, fit for a Location
    return back if back.startswith("/clinic/") else url_for(".queue")


@bp.post("/flags/<int:flag_id>/<any(acknowledge, called, resolve):action>")
@practitioner_required
def flag_action(flag_id: int, action: str):
    """Act on a flag from a client's page, then go back there."""
    note = request.form.get("note", "").strip()[:2000] or None
    try:
        actions.act_on_flag(get_db(), current_user, flag_id, action, note, utcnow())
        flash(DONE[action])
    except NotFound:
        abort(404)
    except DomainError as e:
        flash(next(iter(e.fields.values()), e.message))
    return redirect(_back())


@bp.route("/clients/<int:client_id>/erase", methods=["GET", "POST"])
@practitioner_required
def erase(client_id: int):
    """Erase a client after the practitioner types their name to confirm."""
    db = get_db()
    try:
        client = get_client(db, client_id, current_user.clinic_id)
    except DomainError:
        abort(404)
    error = None
    if request.method == "POST":
        if request.form.get("confirm_name", "").strip() != client["name"]:
            error = "Type the client's name exactly to confirm."
        else:
            actions.erase_client(
                db, current_user, client, current_app.config["PHOTOS_DIR"], utcnow()
            )
            flash("The client and everything about them was erased.")
            return redirect(url_for("practitioner.clients"))
    return render_template("practitioner/erase.html", client=client, error=error), (
        422 if error else 200
    )


@bp.get("/sessions/<int:session_id>/reminders")
@practitioner_required
def session_reminders(session_id: int):
    """One session's reminders and their delivery per device: the client page shows only the
    latest session's and links here for older ones."""
    db = get_db()
    row = treatments.load_session(db, session_id)
    try:
        client = get_client(db, row["client_id"] if row else 0, current_user.clinic_id)
    except NotFound:
        abort(404)
    audit.record("client_read", client_id=client["id"], detail=f"reminders of session {session_id}")
    return render_template(
        "practitioner/session_reminders.html",
        client=client,
        session=treatments.session_dict(row, client["timezone"]),
        schedule=timeline.schedules(db, [session_id]).get(session_id, []),
        device_names={d["id"]: d["label"] for d in timeline.client_devices(db, client["id"])},
        outcome_words=audit_words.OUTCOMES,
    )


@bp.get("/audit")
@practitioner_required
def audit_page():
    """The clinic's audit log, newest first; ?client_id= for one client."""
    db = get_db()
    cid = parse_id(request.args.get("client_id", ""))
    clinic = clinics.get_clinic(db, current_user.clinic_id)
    entries = audit_words.in_words(db, clinic, audit.entries(clinic["id"], cid, limit=500))
    client = None
    if cid is not None:
        try:
            client = get_client(db, cid, clinic["id"])
        except NotFound:
            if not entries:  # neither a client of this clinic nor one it erased
                abort(404)
            client = {"id": cid, "name": f"erased client #{cid}", "erased": True}
    return render_template("practitioner/audit.html", entries=entries, client=client, clinic=clinic)


@bp.get("/exports")
@practitioner_required
def exports_page():
    """The clinic-wide CSV exports (check-ins, flags) over a date range."""
    clinic = clinics.get_clinic(get_db(), current_user.clinic_id)
    today = utcnow().astimezone(ZoneInfo(clinic["timezone"])).date()
    return render_template(
        "practitioner/exports.html",
        clinic=clinic,
        tomorrow=today + timedelta(days=1),
        month_ago=today - timedelta(days=30),
    )


@bp.app_context_processor
def flag_badge():
    """Give practitioner pages the active flag counts for the header badge."""
    if (
        request.path.startswith("/clinic/")  # every practitioner page, whichever blueprint
        and current_user.is_authenticated
        and current_user.is_practitioner
    ):
        return {"flag_counts": recoveries.counts(get_db(), current_user.clinic_id)}
    return {}
