"""The JSON API of the queue of recoveries: one item per session with active flags, and the
actions that apply to a recovery. GET /api/flags (review/api.py) stays per flag for integrations."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion import audit
from companion.auth import practitioner_required
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.review import actions, queue, recoveries
from companion.review.models import (
    FlagFilter,
    QueueSummary,
    Recovery,
    RecoveryInput,
    RecoveryQueue,
    RecoveryResolveInput,
)
from companion.web import body

bp = Blueprint("api_queue", __name__, url_prefix="/api")


@bp.get("/queue")
@operation(
    "The queue of recoveries: one item per session with open or acknowledged flags,"
    " urgent first then oldest",
    tag="practitioner",
    reply=RecoveryQueue,
    query=FlagFilter,
    errors=(401, 403, 422),
)
@practitioner_required
def list_recoveries():
    """One item per session with active flags (or the status asked for), urgent first then oldest."""
    filters = queue.parse_filters(request.args)
    db = get_db()
    found = recoveries.recoveries(db, current_user.clinic_id, utcnow(), **filters)
    # Who is flagged, and why, is health data: one entry per read that shows anyone.
    if found:
        status = request.args.get("status", "active")
        audit.record("queue_read", client_id=filters["client_id"], detail=f"status={status}")
    return jsonify({"recoveries": found, "counts": recoveries.counts(db, current_user.clinic_id)})


@bp.get("/queue/summary")
@operation(
    "How many recoveries wait, by severity, and a version that changes with the queue"
    " (no personal data: poll it, then fetch the queue when the version moves)",
    tag="practitioner",
    reply=QueueSummary,
    errors=(401, 403),
)
@practitioner_required
def summary():
    """Counts and a change token for live pages; nothing about any client."""
    db = get_db()
    return jsonify(
        {
            "counts": recoveries.counts(db, current_user.clinic_id),
            "version": recoveries.version(db, current_user.clinic_id),
        }
    )


def _act(session_id: int, action: str):
    # Another clinic's session is a 404 whatever the body says.
    recoveries.active_flags(get_db(), current_user.clinic_id, session_id)
    values = parse(RecoveryResolveInput if action == "resolve" else RecoveryInput, body())
    recovery = actions.act_on_recovery(
        get_db(),
        current_user,
        session_id,
        action,
        values.get("note"),
        utcnow(),
        values.get("flag_ids"),
    )
    return jsonify(recovery)


ERRORS = (400, 401, 403, 404, 409, 415, 422)


@bp.post("/queue/<int:session_id>/acknowledge")
@operation(
    "Claim a recovery: acknowledge its open flags (who claimed first stays)",
    tag="practitioner",
    reply=Recovery,
    body=RecoveryInput,
    errors=ERRORS,
)
@practitioner_required
def acknowledge(session_id: int):
    return _act(session_id, "acknowledge")


@bp.post("/queue/<int:session_id>/called")
@operation(
    "Record that you called the client about this recovery",
    tag="practitioner",
    reply=Recovery,
    body=RecoveryInput,
    errors=ERRORS,
)
@practitioner_required
def called(session_id: int):
    return _act(session_id, "called")


@bp.post("/queue/<int:session_id>/resolve")
@operation(
    "Resolve a recovery's active flags (or those in flag_ids) with a required note",
    tag="practitioner",
    reply=Recovery,
    body=RecoveryResolveInput,
    errors=ERRORS,
)
@practitioner_required
def resolve(session_id: int):
    return _act(session_id, "resolve")
