"""The practitioner's pages: sign-in, first-run setup, clients, invites."""

from zoneinfo import ZoneInfo

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from companion import audit, auth, credentials, throttle, twofactor
from companion.accounts import actions, clinics
from companion.accounts import clients as client_store
from companion.accounts import phones as phone_store
from companion.accounts.models import ClientInput, SetupInput
from companion.auth import open_during_enrolment, practitioner_required
from companion.clinical import RULES
from companion.contract import parse
from companion.db import get_db, iso, utcnow, write
from companion.errors import DomainError, NotFound, RateLimited
from companion.reminders import channels as channel_rules
from companion.reminders.devices import MAX_LIVE_DEVICES
from companion.review import audit_words, charts, queue, recoveries, timeline
from companion.security import safe_next
from companion.web import public_url

bp = Blueprint("practitioner", __name__, url_prefix="/clinic")


def form_errors(e: DomainError) -> dict:
    return e.fields or {"form": e.message}


def status_of_form(errors: dict) -> int:
    """A form shown again with what is wrong answers 422 (bad input is a 4xx, pages too)."""
    return 422 if errors else 200


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the clinic and its first practitioner, once."""
    db = get_db()
    if clinics.is_set_up(db):
        return redirect(url_for(".login"))
    errors: dict = {}
    if request.method == "POST":
        form = request.form
        try:
            values = parse(SetupInput, {k: v for k, v in form.items() if k != "csrf_token"})
            actions.set_up(db, values, values, utcnow())
            return redirect(url_for(".clients"))
        except DomainError as e:
            errors = form_errors(e)
    return render_template("practitioner/setup.html", errors=errors, form=request.form), (
        status_of_form(errors)
    )


@bp.route("/login", methods=["GET", "POST"])
def login():
    db = get_db()
    if not clinics.is_set_up(db):
        return redirect(url_for(".setup"))
    error, status = None, 200
    if request.method == "POST":
        try:
            row = credentials.authenticate(
                request.form.get("email", "")[:254],
                request.form.get("password", "")[:200],
                request.remote_addr,
            )
        except RateLimited as e:
            return (
                render_template("practitioner/login.html", error=e.message),
                429,
                {"Retry-After": str(e.retry_after)},
            )
        if row is None:
            error, status = "Email or password is incorrect.", 401
        elif twofactor.enabled(row):
            # The password was right; the code comes on the next page (twofactor_pages).
            session.clear()
            session["two_factor"] = {"id": row["id"], "at": iso(utcnow())}
            return redirect(url_for("twofactor.code", next=safe_next(request.args.get("next"))))
        else:
            with write(db):
                auth.start_session("practitioner", row, "sign_in")
                throttle.forget_failures(db, row["email"])
            return redirect(safe_next(request.args.get("next")) or url_for("review.queue"))
    return render_template("practitioner/login.html", error=error), status


@bp.post("/logout")
@open_during_enrolment
def logout():
    if current_user.is_authenticated:
        audit.record("sign_out")
        if request.form.get("everywhere"):
            auth.revoke_all(current_user.kind, current_user.id)
    auth.end_session()
    return redirect(url_for(".login"))


@bp.route("/password", methods=["GET", "POST"])
@practitioner_required
def password():
    """Change your own password; your other sessions end."""
    errors: dict = {}
    status = 200
    if request.method == "POST":
        try:
            actions.change_password(
                get_db(),
                current_user,
                request.form.get("current_password", "")[:200],
                request.form.get("password", ""),
                request.remote_addr,
            )
            flash("Password changed. You were signed out everywhere else.")
            return redirect(url_for(".password"))
        except RateLimited as e:
            errors, status = {"form": e.message}, 429
        except DomainError as e:
            errors, status = form_errors(e), 422
    return render_template("practitioner/password.html", errors=errors), status


@bp.get("/clients")
@practitioner_required
def clients():
    q = request.args.get("q", "")[:100]
    db = get_db()
    found = client_store.list_clients(db, current_user.clinic_id, q or None, limit=500)
    # One entry per read that shows anyone; never the search text (a name or a phone).
    if found:
        audit.record("clients_listed", detail="search" if q else None)
    # A client who phones in is looked up here: say who is in the queue, and how urgently.
    flagged: dict[int, str] = {}
    for r in recoveries.recoveries(db, current_user.clinic_id, utcnow(), limit=10_000):
        flagged.setdefault(r["client_id"], r["severity"])  # urgent first
    return render_template("practitioner/clients.html", clients=found, q=q, flagged=flagged)


@bp.route("/clients/new", methods=["GET", "POST"])
@practitioner_required
def new_client():
    db = get_db()
    the_clinic = clinics.get_clinic(db, current_user.clinic_id)
    errors: dict = {}
    if request.method == "POST":
        data = {
            k: request.form.get(k, "").strip() or None
            for k in ("name", "email", "phone", "timezone", "language")
        }
        data["name"] = data["name"] or ""
        try:
            values = parse(ClientInput, data)
            row = actions.create_client(db, current_user, values, utcnow())
            return redirect(url_for(".client_detail", client_id=row["id"]))
        except DomainError as e:
            errors = form_errors(e)
    return render_template(
        "practitioner/client_new.html", errors=errors, form=request.form, clinic=the_clinic
    ), status_of_form(errors)


def my_client(client_id: int) -> dict:
    """Return a client of the signed-in practitioner's clinic, or the plain 404 page."""
    try:
        return client_store.get_client(get_db(), client_id, current_user.clinic_id)
    except NotFound:
        abort(404)


@bp.get("/clients/<int:client_id>")
@practitioner_required
def client_detail(client_id: int):
    db = get_db()
    client = my_client(client_id)
    # The latest session's reminders inline; older sessions' on demand (/clinic/sessions/N/reminders).
    record = timeline.timeline(db, client, recent=1)
    for s in record["sessions"]:
        flagged: dict[str, list[str]] = {}
        for f in s["flags"]:
            if f["checkin_id"]:
                flagged.setdefault(f["checkin_id"], []).append(f"{f['rule']}: {f['reason']}")
        s["chart"] = (
            charts.chart_for(s["raw"], s["checkins"], flagged, client["timezone"])
            if s["checkins"]
            else None
        )
    audit_words.name_events(db, client["clinic_id"], record["sessions"])
    audit.record("client_read", client_id=client_id)
    clinic_tz = clinics.get_clinic(db, client["clinic_id"])["timezone"]
    return render_template(
        "practitioner/client.html",
        client=client,
        clinic_tz=clinic_tz,
        open_recoveries=recoveries.recoveries(
            db, client["clinic_id"], utcnow(), client_id=client_id
        ),
        rules=RULES,
        chip_reason=queue.chip_reason,
        zone=ZoneInfo(clinic_tz),
        device_names={d["id"]: d["label"] for d in record["devices"]},
        outcome_words=audit_words.OUTCOMES,
        phones=live_phones(client_id),
        max_devices=MAX_LIVE_DEVICES,
        channels=channel_rules.decode(client["channels"]),
        **record,
    )


def live_phones(client_id: int) -> list[dict]:
    return phone_store.live_devices(
        get_db(), client_id, utcnow(), current_app.config["CLIENT_IDLE_DAYS"]
    )


@bp.post("/clients/<int:client_id>/invite")
@practitioner_required
def invite(client_id: int):
    client = my_client(client_id)
    url = public_url("/i/")  # first: without a usable address nothing is written
    token, expires = actions.invite_client(
        get_db(),
        current_user,
        client,
        utcnow(),
        current_app.config["INVITE_DAYS"],
        request.form.get("sign_out_devices") == "on",
    )
    url += token
    # No fixed size, a viewBox: the page scales the code to the screen.
    qr = segno.make(url, error="m").svg_inline(scale=6, omitsize=True, title="Invite QR code")
    return render_template(
        "practitioner/invite.html",
        client=client,
        url=url,
        qr=qr,
        expires=expires,
        phones=live_phones(client_id),
    )


@bp.post("/clients/<int:client_id>/phones/sign-out")
@bp.post("/clients/<int:client_id>/phones/<device_id>/sign-out")
@practitioner_required
def sign_out_phones(client_id: int, device_id: str | None = None):
    """Sign one of a client's phones out, or all of them."""
    client = my_client(client_id)
    try:
        ended = actions.sign_out_phones(get_db(), current_user, client, device_id, utcnow())
    except NotFound:
        abort(404)
    if device_id:
        flash("That phone is signed out: it needs a new invite to sign in again.")
    else:
        flash(f"Signed out {ended} phone{'' if ended == 1 else 's'} of {client['name']}.")
    return redirect(url_for(".client_detail", client_id=client_id) + "#phones")
