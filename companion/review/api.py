"""The JSON API for practitioners' review work: flags, exports, erasure, audit."""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user

from companion import audit
from companion.accounts import clinics
from companion.accounts.api import my_client
from companion.auth import practitioner_required
from companion.contract import operation, parse, parse_query
from companion.db import get_db, utcnow
from companion.errors import Invalid
from companion.review import actions, exports, fhir, queue
from companion.review.models import (
    AuditFilter,
    AuditLog,
    DayRange,
    ExportFormat,
    FlagFilter,
    FlagQueue,
    FlagWithEvents,
    NoteInput,
    ResolveInput,
    stored_moment,
)
from companion.web import body

bp = Blueprint("api_review", __name__, url_prefix="/api")


@bp.get("/flags")
@operation(
    "The review queue: active flags, urgent first then oldest",
    tag="practitioner",
    reply=FlagQueue,
    query=FlagFilter,
    errors=(401, 403, 422),
)
@practitioner_required
def list_flags():
    """The review queue: active flags, urgent first then oldest; filter by status and severity."""
    filters = queue.parse_filters(request.args)
    db = get_db()
    flags = queue.queue(db, current_user.clinic_id, **filters)
    # Who is flagged, and why, is health data: one entry per read that shows anyone, not per flag.
    if flags:
        status = request.args.get("status", "active")
        audit.record("queue_read", client_id=filters["client_id"], detail=f"status={status}")
    return jsonify({"flags": flags, "counts": queue.counts(db, current_user.clinic_id)})


@bp.get("/flags/<int:flag_id>")
@operation(
    "A flag with its history", tag="practitioner", reply=FlagWithEvents, errors=(401, 403, 404)
)
@practitioner_required
def get_flag(flag_id: int):
    db = get_db()
    flag = queue.get_flag(db, flag_id, current_user.clinic_id)
    audit.record("client_read", client_id=flag["client_id"], detail=f"flag={flag_id}")
    return jsonify(dict(queue.flag_dict(flag), events=queue.flag_events(db, flag_id)))


def _act(flag_id: int, action: str):
    db = get_db()
    queue.get_flag(db, flag_id, current_user.clinic_id)  # another clinic's flag: 404 before 422
    values = parse(ResolveInput if action == "resolve" else NoteInput, body())
    updated = actions.act_on_flag(db, current_user, flag_id, action, values.get("note"), utcnow())
    return jsonify(dict(queue.flag_dict(updated), events=queue.flag_events(db, flag_id)))


@bp.post("/flags/<int:flag_id>/acknowledge")
@operation(
    "Acknowledge a flag",
    tag="practitioner",
    reply=FlagWithEvents,
    body=NoteInput,
    errors=(400, 401, 403, 404, 409, 415, 422),
)
@practitioner_required
def acknowledge(flag_id: int):
    return _act(flag_id, "acknowledge")


@bp.post("/flags/<int:flag_id>/called")
@operation(
    "Record that you called the client",
    tag="practitioner",
    reply=FlagWithEvents,
    body=NoteInput,
    errors=(400, 401, 403, 404, 409, 415, 422),
)
@practitioner_required
def called(flag_id: int):
    """Record that you called the client about this flag."""
    return _act(flag_id, "called")


@bp.post("/flags/<int:flag_id>/resolve")
@operation(
    "Resolve a flag, with a note saying how (required)",
    tag="practitioner",
    reply=FlagWithEvents,
    body=ResolveInput,
    errors=(400, 401, 403, 404, 409, 415, 422),
)
@practitioner_required
def resolve(flag_id: int):
    return _act(flag_id, "resolve")


@bp.get("/clients/<int:client_id>/export")
@operation(
    "Everything about a client (JSON); ?format=csv: check-ins; ?format=fhir: FHIR R4 Bundle",
    tag="practitioner",
    query=ExportFormat,
    errors=(401, 403, 404, 422),
    extra={
        "replies": {
            "application/json": {"type": "object"},
            "application/fhir+json": {"type": "object"},
            "text/csv": {"type": "string"},
        }
    },
)
@practitioner_required
def export_client(client_id: int):
    """Everything about a client as JSON; ?format=csv: check-ins as CSV; ?format=fhir: FHIR R4 Bundle."""
    client = my_client(client_id)
    fmt = parse_query(ExportFormat, request.args)["format"]
    db = get_db()
    if fmt == "csv":
        text = exports.to_csv(exports.CHECKIN_COLUMNS, exports.client_checkin_rows(db, client))
        resp = Response(text, mimetype="text/csv")
        resp.headers["Content-Disposition"] = (
            f'attachment; filename="client-{client_id}-checkins.csv"'
        )
    elif fmt == "json":
        resp = jsonify(exports.client_bundle(db, client))
        resp.headers["Content-Disposition"] = f'attachment; filename="client-{client_id}.json"'
    else:
        resp = jsonify(fhir.bundle(db, client))
        resp.headers["Content-Type"] = "application/fhir+json"
        resp.headers["Content-Disposition"] = f'attachment; filename="client-{client_id}-fhir.json"'
    audit.record("client_exported", client_id=client_id, detail=f"format={fmt}")
    return resp


@bp.delete("/clients/<int:client_id>")
@operation("Erase everything about a client", tag="practitioner", ok=204, errors=(401, 403, 404))
@practitioner_required
def erase_client(client_id: int):
    """Erase everything about a client; the audit log keeps its entries about them, by id only."""
    client = my_client(client_id)
    actions.erase_client(get_db(), current_user, client, current_app.config["PHOTOS_DIR"], utcnow())
    return "", 204


@bp.get("/exports/checkins.csv")
@operation(
    "The clinic's checkins in [from, to) as CSV",
    tag="practitioner",
    reply={"type": "string"},
    reply_type="text/csv",
    query=DayRange,
    errors=(401, 403, 422),
)
@practitioner_required
def export_clinic_checkins():
    """The clinic's check-ins taken in [from, to) as CSV."""
    start, end, words = _dates()
    found = exports.clinic_checkin_rows(get_db(), current_user.clinic_id, start, end)
    text = exports.to_csv(exports.CHECKIN_COLUMNS, found)
    audit.record("clinic_exported", detail="checkins.csv")
    return Response(text, mimetype="text/csv", headers=_attachment("checkins", words))


@bp.get("/exports/flags.csv")
@operation(
    "The clinic's flags in [from, to) as CSV",
    tag="practitioner",
    reply={"type": "string"},
    reply_type="text/csv",
    query=DayRange,
    errors=(401, 403, 422),
)
@practitioner_required
def export_clinic_flags():
    """The clinic's flags opened in [from, to) as CSV."""
    start, end, words = _dates()
    found = exports.clinic_flag_rows(get_db(), current_user.clinic_id, start, end)
    audit.record("clinic_exported", detail="flags.csv")
    return Response(
        exports.to_csv(exports.FLAG_COLUMNS, found),
        mimetype="text/csv",
        headers=_attachment("flags", words),
    )


def _dates() -> tuple[str | None, str | None, str]:
    """Read the export's [from, to) bounds: a date is that day's midnight in the clinic's time
    zone (a clinic owner counts the clinic's days, not UTC's). Returns them as stored text and
    the file name's words for the range."""
    query = parse_query(DayRange, request.args)
    zone = ZoneInfo(clinics.get_clinic(get_db(), current_user.clinic_id)["timezone"])
    bounds = []
    for name, value in (("from", query["from_"]), ("to", query["to"])):
        if value is not None:
            if not isinstance(value, datetime):
                value = datetime.combine(value, time())
            if value.tzinfo is None:
                value = value.replace(tzinfo=zone)
            try:
                value = stored_moment(value)
            except OverflowError:  # 0001-01-01 east of UTC
                raise Invalid({name: "Not a date."}, DayRange.invalid_message) from None
        bounds.append(value)
    start, end = bounds
    if start and end and start >= end:
        # An empty file for a range given backwards would look like "nothing happened".
        raise Invalid(
            {"to": "Must be after from (the range is from, up to but not including, to)."}
        )
    return start, end, _range_words(query["from_"], query["to"])


def _range_words(start, end) -> str:
    """The range in a file name, by the days asked for, so two downloads do not look alike:
    "", "-from-2026-11-01", "-until-2026-12-01", "-2026-11-01-to-2026-12-01" (a date-time is
    named by its date as written)."""
    start, end = (str(b)[:10] if b else None for b in (start, end))
    words = ""
    if start:
        words += f"-{start}" if end else f"-from-{start}"
    if end:
        words += f"-to-{end}" if start else f"-until-{end}"
    return words


def _attachment(kind: str, words: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{kind}{words}.csv"'}


@bp.get("/audit")
@operation(
    "Your clinic's audit log, newest first",
    tag="practitioner",
    reply=AuditLog,
    query=AuditFilter,
    errors=(401, 403, 422),
)
@practitioner_required
def audit_log():
    """Your clinic's audit log, newest first; ?client_id= for one client, ?before= to page."""
    query = parse_query(AuditFilter, request.args)
    return jsonify(
        {
            "entries": audit.entries(
                current_user.clinic_id, query["client_id"], before_id=query["before"]
            )
        }
    )
