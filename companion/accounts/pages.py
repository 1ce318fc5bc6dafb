"""The practitioner's pages: sign-in, first-run setup, clients, sessions."""

from datetime import datetime
from zoneinfo import ZoneInfo

import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from companion import audit, auth
from companion.accounts import store as clinic
from companion.api import invite_url
from companion.auth import practitioner_required
from companion.db import get_db, one, utcnow, write
from companion.errors import ApiError, DomainError, safe_next

bp = Blueprint("practitioner", __name__, url_prefix="/clinic")


def form_errors(e: ApiError) -> dict:
    return e.fields or {"form": e.message}


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the clinic and its first practitioner, once."""
    db = get_db()
    if one(db, "SELECT id FROM clinics LIMIT 1"):
        return redirect(url_for(".login"))
    errors: dict = {}
    if request.method == "POST":
        form = request.form
        try:
            from companion.validation import Fields

            f = Fields(
                dict(form),
                {
                    "clinic_name",
                    "clinic_phone",
                    "timezone",
                    "email",
                    "name",
                    "password",
                    "csrf_token",
                },
            )
            f.text("clinic_name", max_len=100)
            f.phone("clinic_phone")
            f.timezone("timezone", required=True)
            values = f.done()
            person = clinic.practitioner_fields(
                {k: form.get(k, "") for k in ("email", "name", "password")}
            )
            clinic.set_up(db, values, person, utcnow())
            return redirect(url_for(".clients"))
        except (ApiError, DomainError) as e:
            errors = form_errors(e)
    return render_template("practitioner/setup.html", errors=errors, form=request.form)


@bp.route("/login", methods=["GET", "POST"])
def login():
    db = get_db()
    if not one(db, "SELECT id FROM clinics LIMIT 1"):
        return redirect(url_for(".setup"))
    error, status = None, 200
    if request.method == "POST":
        try:
            row = auth.authenticate(
                request.form.get("email", "")[:254], request.form.get("password", "")[:200]
            )
        except auth.TooManyAttempts as e:
            return (
                render_template(
                    "practitioner/login.html", error="Too many failed sign-ins. Try again later."
                ),
                429,
                {"Retry-After": str(e.retry_after)},
            )
        if row is None:
            error, status = "Email or password is incorrect.", 401
        else:
            with write(db):
                auth.start_session("practitioner", row, "sign_in")
            return redirect(safe_next(request.args.get("next")) or url_for("review.queue"))
    return render_template("practitioner/login.html", error=error), status


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        audit.record("sign_out")
        if request.form.get("everywhere"):
            auth.revoke_all(current_user.kind, current_user.id)
    auth.end_session()
    return redirect(url_for(".login"))


@bp.get("/clients")
@practitioner_required
def clients():
    q = request.args.get("q", "")[:100]
    found = clinic.list_clients(get_db(), current_user.clinic_id, q or None, limit=500)
    return render_template("practitioner/clients.html", clients=found, q=q)


@bp.route("/clients/new", methods=["GET", "POST"])
@practitioner_required
def new_client():
    db = get_db()
    the_clinic = clinic.get_clinic(db, current_user.clinic_id)
    errors: dict = {}
    if request.method == "POST":
        data = {
            k: request.form.get(k, "").strip() or None
            for k in ("name", "email", "phone", "timezone")
        }
        data["name"] = data["name"] or ""
        try:
            values = clinic.client_fields(data)
            with write(db):
                row = clinic.create_client(db, the_clinic, values, utcnow())
                audit.record("client_created", client_id=row["id"])
            return redirect(url_for(".client_detail", client_id=row["id"]))
        except (ApiError, DomainError) as e:
            errors = form_errors(e)
    return render_template(
        "practitioner/client_new.html", errors=errors, form=request.form, clinic=the_clinic
    )


def my_client(client_id: int) -> dict:
    try:
        return clinic.get_client(get_db(), client_id, current_user.clinic_id)
    except (ApiError, DomainError):
        abort(404)


@bp.get("/clients/<int:client_id>")
@practitioner_required
def client_detail(client_id: int):
    from companion.review import charts
    from companion.review import store as review

    db = get_db()
    client = my_client(client_id)
    record = review.timeline(db, client)
    for s in record["sessions"]:
        flagged = {f["checkin_id"] for f in s["flags"] if f["checkin_id"]}
        s["chart"] = charts.chart_for(s["raw"], s["checkins"], flagged) if s["checkins"] else None
    audit.record("client_read", client_id=client_id)
    return render_template("practitioner/client.html", client=client, **record)


@bp.post("/clients/<int:client_id>/invite")
@practitioner_required
def invite(client_id: int):
    client = my_client(client_id)
    token, expires = clinic.create_invite(get_db(), client, current_user.id, utcnow())
    audit.record("invite_issued", client_id=client_id)
    url = invite_url(token)
    qr = segno.make(url, error="m").svg_inline(scale=6, title="Invite QR code")
    return render_template(
        "practitioner/invite.html", client=client, url=url, qr=qr, expires=expires
    )


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
            session = clinic.get_session(db, session_id, current_user.clinic_id)
        except (ApiError, DomainError):
            abort(404)
        client_id = session["client_id"]
    client = my_client(client_id)
    errors: dict = {}
    if request.method == "POST":
        now = utcnow()
        try:
            values = clinic.session_fields(session_form_data(request.form, client["timezone"]), now)
            with write(db):
                if session is None:
                    saved = clinic.create_session(db, client, current_user.id, values, now)
                    audit.record(
                        "session_created", client_id=client_id, detail=f"session={saved['id']}"
                    )
                else:
                    saved = clinic.update_session(db, session, client, values, now)
                    audit.record(
                        "session_updated", client_id=client_id, detail=f"session={saved['id']}"
                    )
            flash("Session saved; reminders planned.")
            return redirect(url_for(".client_detail", client_id=client_id))
        except (ApiError, DomainError) as e:
            errors = form_errors(e)
    current = clinic.session_dict(session, client["timezone"]) if session else None
    return render_template(
        "practitioner/session_form.html",
        client=client,
        session=current,
        errors=errors,
        form=request.form,
        areas=AREAS,
    )


AREAS = (
    "face",
    "forehead",
    "cheeks",
    "under eyes",
    "neck",
    "décolletage",
    "scalp",
    "scars",
    "body",
)
