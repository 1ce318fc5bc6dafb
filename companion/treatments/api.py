"""The treatment sessions API: record, read, edit and delete a client's sessions."""

from flask import Blueprint, jsonify
from flask_login import current_user

from companion import audit
from companion.accounts.api import my_client
from companion.auth import practitioner_required
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.reminders import outbox as schedule
from companion.treatments import actions
from companion.treatments import store as treatments
from companion.treatments.models import Session, SessionInput, SessionList
from companion.web import body, created

bp = Blueprint("api_treatments", __name__, url_prefix="/api")


@bp.get("/clients/<int:client_id>/sessions")
@operation("A client's sessions", tag="practitioner", reply=SessionList, errors=(401, 403, 404))
@practitioner_required
def list_sessions(client_id: int):
    row = my_client(client_id)
    audit.record("client_read", client_id=client_id, detail="sessions")
    return jsonify(
        {
            "sessions": [
                treatments.session_dict(s, row["timezone"])
                for s in treatments.list_sessions(get_db(), client_id)
            ]
        }
    )


@bp.post("/clients/<int:client_id>/sessions")
@operation(
    "Record a session and plan its reminders",
    tag="practitioner",
    ok=201,
    reply=Session,
    body=SessionInput,
    errors=(400, 401, 403, 404, 415, 422),
)
@practitioner_required
def create_session(client_id: int):
    row = my_client(client_id)
    now = utcnow()
    values = parse(SessionInput, body(), now=now)
    session = actions.record_session(get_db(), current_user, row, values, now)
    return created(session_payload(session, row))


def session_payload(session: dict, client: dict) -> dict:
    return treatments.session_dict(
        session, client["timezone"], schedule.session_schedule(get_db(), session["id"])
    )


def my_session(session_id: int) -> tuple[dict, dict]:
    db = get_db()
    session = treatments.get_session(db, session_id, current_user.clinic_id)
    return treatments.load_session(db, session["id"]), my_client(session["client_id"])


@bp.get("/sessions/<int:session_id>")
@operation(
    "A session and its schedule with delivery status",
    tag="practitioner",
    reply=Session,
    errors=(401, 403, 404),
)
@practitioner_required
def get_session(session_id: int):
    session, client = my_session(session_id)
    audit.record("client_read", client_id=client["id"], detail=f"session={session_id}")
    return jsonify(session_payload(session, client))


@bp.patch("/sessions/<int:session_id>")
@operation(
    "Edit a session (a new time re-plans unsent reminders)",
    tag="practitioner",
    reply=Session,
    body=SessionInput,
    partial=True,
    errors=(400, 401, 403, 404, 415, 422),
)
@practitioner_required
def update_session(session_id: int):
    session, client = my_session(session_id)
    now = utcnow()
    values = parse(SessionInput, body(), partial=True, now=now)
    session = actions.edit_session(get_db(), current_user, session, client, values, now)
    return jsonify(session_payload(session, client))


@bp.delete("/sessions/<int:session_id>")
@operation(
    "Delete a session and cancel its unsent reminders",
    tag="practitioner",
    ok=204,
    errors=(401, 403, 404),
)
@practitioner_required
def delete_session(session_id: int):
    session, _client = my_session(session_id)
    actions.delete_session(get_db(), current_user, session, utcnow())
    return "", 204
