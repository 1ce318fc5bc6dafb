"""The client's home page (today's aftercare, the latest assessment, the recovery chart) and
the check-in form."""

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from companion import clinical
from companion.accounts import clinics
from companion.admin import clinic
from companion.auth import client_required
from companion.checkins import answers, flags, one_tap
from companion.checkins import store as checkins
from companion.converters import parse_id
from companion.db import get_db, parse_iso, utcnow
from companion.humane import babel_locale, human_when
from companion.i18n import language_of
from companion.reminders import inbox as aftercare
from companion.review import charts
from companion.treatments import store as treatments
from companion.web import shell_page

bp = Blueprint("checkins", __name__)
bp.add_app_template_filter(clinical.area_words, "area_words")


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("client.not_signed_in"))
    if current_user.is_practitioner:
        return redirect(url_for("review.queue"))
    return render_template("client/home.html", **home_context())


def home_context() -> dict:
    """Today's aftercare, the next reminder, the latest assessment and the recovery chart."""
    db = get_db()
    client = current_user.row
    session_row = treatments.latest_session(db, client["id"])
    # The page's clinic (header, contact card) from one read: clinic_face() would read it again.
    g.clinic_face = clinic.face(clinics.get_clinic(db, client["clinic_id"]))
    context = dict(
        client=client,
        assessment=None,
        chart=None,
        now=utcnow(),
        **aftercare.overview(db, client, utcnow(), session_row, lists=False),
    )
    if context["session"]:
        found, context["assessment"] = checkins.for_chart(db, context["session"]["id"])
        assessment = context["assessment"]
        if (
            assessment
            and assessment["status"] != "expected"
            and flags.all_resolved_since(db, context["session"]["id"], assessment["received_at"])
        ):
            assessment["status"] = "reviewed"
            assessment["message"] = answers.reviewed_message(
                g.clinic_face["display_name"], assessment["day"] or 0
            )
        elif assessment and assessment["status"] == "review":
            _review_said_now(assessment, client, g.clinic_face)
        if found:
            context["chart"] = charts.chart_for(
                session_row, found, timezone=client["timezone"], audience="client"
            )
            _mark_checked_in(context["today"], found, client["timezone"])
    return context


def _mark_checked_in(today: list[dict], found: list[dict], timezone: str) -> None:
    """Today's check-in steps say they are done once the client has checked in today (their
    day): "Tap to rate redness and swelling" after they did read as a check-in still owed."""
    zone = ZoneInfo(timezone)
    latest = parse_iso(found[-1]["taken_at"]).astimezone(zone).date()
    for step in today:
        if step["kind"] == "checkin" and datetime.fromisoformat(step["due_at"]).date() == latest:
            step["checked_in"] = True


def _review_said_now(assessment: dict, client: dict, face: dict) -> None:
    """A review answer read later: "today" was true the day it came in, not the day after
    (answers.review_day). Its words again, for now, as the check-in page would say them."""
    when = answers.review_day(parse_iso(assessment["received_at"]), utcnow(), client["timezone"])
    rules = [f["rule"] for f in assessment["flags"]]
    day = assessment["day"] if assessment["day"] is not None else 0
    assessment["review_day"] = when
    assessment["message"] = answers.review_message(rules, day, face["phone"], when)


@bp.get("/checkin/link/<token>")
def checkin_by_link(token: str):
    """The check-in of one session, opened from a reminder email's one-tap link."""
    db = get_db()
    # Even an expired link's page is in its client's language, with their clinic's contact.
    linked = one_tap.client_of_link(db, current_app.config["SECRET_KEY"], token[:400])
    if linked is not None:
        g.language = language_of(linked)  # a link from the client's email: their language
        g.clinic_face = clinic.face(clinics.get_clinic(db, linked["clinic_id"]))
    client, session, expires = one_tap.grant(
        db, current_app.config["SECRET_KEY"], token[:400], utcnow()
    )
    resp = make_response(
        checkin_page(
            session_id=session["id"],
            timezone=client["timezone"],
            submit_url=url_for("api_checkins.post_checkin_by_link", token=token),
            link_until=human_when(
                expires,
                client["timezone"],
                utcnow(),
                babel_locale(client.get("language")),
                starts=False,  # "until today 20:00", inside the sentence
            ),
        )
    )
    # The token is the key to this check-in: no cache keeps the page, no referrer leaks it.
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.get("/checkin")
@shell_page
@client_required
def checkin():
    db = get_db()
    found = treatments.list_sessions(db, current_user.id)
    sessions = [row["id"] for row in found]
    # A reminder (push, calendar) of a session the clinic has since deleted, or any id that is
    # not this client's: the form for their latest session, not one whose every send is a 404.
    session_id = parse_id(request.args.get("session", ""))
    # Before any treatment is recorded, or before the first one recorded in advance is done,
    # there is nothing to report on: say so, not a form whose answer the server would refuse
    # (a check-in belongs to a session performed before it).
    now = utcnow()
    waiting = all(parse_iso(row["performed_at"]) > now for row in found)
    return checkin_page(
        session_id=session_id if session_id in sessions else "",
        no_session=waiting,
        upcoming=bool(found),  # a session recorded in advance
        client_id=current_user.id,
        timezone=current_user.row["timezone"],
    )


def checkin_page(**context) -> str:
    """The check-in form (the app's, or a one-tap link's with submit_url and link_until)."""
    return render_template(
        "client/checkin.html",
        scales={
            "redness": list(enumerate(clinical.REDNESS_WORDS)),
            "swelling": list(enumerate(clinical.SWELLING_WORDS)),
        },
        symptoms=list(clinical.SYMPTOM_WORDS.items()),
        warning_signs=list(clinical.WARNING_SIGN_WORDS.items()),
        late_hour=answers.LATE_HOUR,
        **context,
    )
