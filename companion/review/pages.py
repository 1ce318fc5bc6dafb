"""Practitioner review pages: the flag queue, flag actions, erasure, audit, alerts, protocol."""

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion import audit
from companion.accounts import store as clinic
from companion.auth import practitioner_required
from companion.converters import parse_id
from companion.db import get_db, rows, utcnow, write
from companion.errors import ApiError, DomainError, NotFound
from companion.reminders import outbox as schedule
from companion.review import store as review

bp = Blueprint("review", __name__, url_prefix="/clinic")


@bp.get("/")
@practitioner_required
def queue():
    """The practitioner's home: active flags, urgent first, then by age."""
    db = get_db()
    status = request.args.get("status", "active")
    severity = request.args.get("severity") or None
    practitioner = request.args.get("practitioner", "")
    statuses = {
        "active": review.ACTIVE,
        "open": ("open",),
        "acknowledged": ("acknowledged",),
        "resolved": ("resolved",),
    }.get(status, review.ACTIVE)
    flags = review.queue(
        db,
        current_user.clinic_id,
        statuses=statuses,
        severity=severity if severity in ("urgent", "review", "info") else None,
        practitioner_id=parse_id(practitioner),
    )
    colleagues = rows(
        db,
        "SELECT id, name FROM practitioners WHERE clinic_id = ? ORDER BY name",
        (current_user.clinic_id,),
    )
    return render_template(
        "practitioner/queue.html",
        flags=flags,
        now=utcnow(),
        counts=review.counts(db, current_user.clinic_id),
        status=status,
        severity=severity,
        practitioner=practitioner,
        colleagues=colleagues,
    )


@bp.post("/flags/<int:flag_id>/<any(acknowledge, called, resolve):action>")
@practitioner_required
def flag_action(flag_id: int, action: str):
    db = get_db()
    try:
        flag = review.get_flag(db, flag_id, current_user.clinic_id)
        note = request.form.get("note", "").strip()[:2000] or None
        review.act(db, flag, action, current_user.id, note, utcnow())
        audit.record(f"flag_{action}", client_id=flag["client_id"], detail=f"flag={flag_id}")
        flash(
            {
                "acknowledge": "Flag acknowledged.",
                "called": "Call recorded.",
                "resolve": "Flag resolved.",
            }[action]
        )
    except (ApiError, DomainError) as e:
        if isinstance(e, NotFound) or getattr(e, "status", None) == 404:
            abort(404)
        flash(e.message)
    back = request.form.get("back", "")
    return redirect(
        back if back.startswith("/clinic/") and not back.startswith("//") else url_for(".queue")
    )


@bp.route("/clients/<int:client_id>/erase", methods=["GET", "POST"])
@practitioner_required
def erase(client_id: int):
    """Erase a client after the practitioner types their name to confirm."""
    db = get_db()
    try:
        client = clinic.get_client(db, client_id, current_user.clinic_id)
    except (ApiError, DomainError):
        abort(404)
    error = None
    if request.method == "POST":
        if request.form.get("confirm_name", "").strip() != client["name"]:
            error = "Type the client's name exactly to confirm."
        else:
            review.erase_client(db, client, current_app.config["PHOTOS_DIR"], utcnow())
            audit.record("client_erased", client_id=client_id)
            flash("The client and everything about them was erased.")
            return redirect(url_for("practitioner.clients"))
    return render_template("practitioner/erase.html", client=client, error=error)


@bp.get("/audit")
@practitioner_required
def audit_page():
    client_id = request.args.get("client_id", "")
    cid = parse_id(client_id)
    entries = audit.entries(current_user.clinic_id, cid, limit=500)
    names = {
        r["id"]: r["name"]
        for r in rows(
            get_db(),
            "SELECT id, name FROM practitioners WHERE clinic_id = ?",
            (current_user.clinic_id,),
        )
    }
    return render_template("practitioner/audit.html", entries=entries, client_id=cid, names=names)


@bp.route("/settings", methods=["GET", "POST"])
@practitioner_required
def settings():
    """Alerts for this device, and which severities alert."""
    db = get_db()
    if request.method == "POST":
        chosen = [s for s in ("urgent", "review", "info") if request.form.get(s)]
        with write(db):
            db.conn.execute(
                "UPDATE practitioners SET alert_severities = ? WHERE id = ?",
                (",".join(chosen), current_user.id),
            )
        flash("Alert settings saved.")
        return redirect(url_for(".settings"))
    row = db.conn.execute(
        "SELECT alert_severities FROM practitioners WHERE id = ?", (current_user.id,)
    ).fetchone()
    return render_template("practitioner/settings.html", severities=row[0].split(","))


@bp.route("/protocol", methods=["GET", "POST"])
@practitioner_required
def protocol():
    """View and edit the clinic's protocol; saving makes a new version."""
    from companion.reminders.protocol import validate_steps

    db = get_db()
    current = schedule.current_protocol(db, current_user.clinic_id)
    errors: dict = {}
    text = json.dumps(current["steps"], indent=2, ensure_ascii=False)
    if request.method == "POST":
        text = request.form.get("steps", "")
        try:
            steps, errors = validate_steps(json.loads(text))
        except ValueError as e:
            steps, errors = [], {"steps": f"Not valid JSON: {e}"}
        if not errors:
            with write(db):
                row = schedule.save_protocol(
                    db, current_user.clinic_id, steps, current_user.id, utcnow()
                )
                audit.record("protocol_changed", detail=f"version={row['version']}")
            flash(f"Saved as version {row['version']}. New sessions use it.")
            return redirect(url_for(".protocol"))
    return render_template(
        "practitioner/protocol.html",
        protocol=schedule.protocol_dict(current),
        text=text,
        errors=errors,
    )


@bp.app_context_processor
def flag_badge():
    """Give practitioner pages the active flag counts for the header badge."""
    if (
        request.blueprint in ("review", "practitioner")
        and current_user.is_authenticated
        and current_user.is_practitioner
    ):
        return {"flag_counts": review.counts(get_db(), current_user.clinic_id)}
    return {}


@bp.route("/team", methods=["GET", "POST"])
@practitioner_required
def team():
    """The clinic's practitioners: add a colleague, disable one (their sessions end at once)."""

    db = get_db()
    errors: dict = {}
    if request.method == "POST":
        disable = parse_id(request.form.get("disable"))
        try:
            with write(db):
                if disable is not None:
                    row = db.conn.execute(
                        "SELECT id FROM practitioners WHERE id = ? AND clinic_id = ?",
                        (disable, current_user.clinic_id),
                    ).fetchone()
                    if row is None:
                        abort(404)
                    clinic.disable_colleague(db, disable, current_user.id)
                    flash("Colleague disabled; their sessions have ended.")
                else:
                    values = clinic.practitioner_fields(
                        {k: request.form.get(k, "") for k in ("email", "name", "password")}
                    )
                    clinic.add_colleague(db, current_user.clinic_id, values, utcnow())
                    flash(f"{values['name']} can now sign in.")
            return redirect(url_for(".team"))
        except (ApiError, DomainError) as e:
            errors = e.fields or {"form": e.message}
    people = rows(
        db,
        "SELECT id, name, email, active FROM practitioners WHERE clinic_id = ? ORDER BY name",
        (current_user.clinic_id,),
    )
    return render_template(
        "practitioner/team.html", people=people, errors=errors, form=request.form
    )
