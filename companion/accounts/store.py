"""Temporary: the accounts records now live in clinics.py, clients.py and invites.py, and the
actions shared by the API and the pages (audited, for an explicit actor) in actions.py;
treatment sessions in companion.treatments. These names stay importable from here only until
admin/pages.py, review/, tests/test_dispatch.py and benchmarks/ import them from their new
homes; then this module goes."""

# ruff: noqa: F401
from datetime import datetime

import sqlite_utils
from flask_login import current_user

from companion.accounts import actions
from companion.accounts.clients import (
    client_dict,
    create_client,
    get_client,
    list_clients,
    update_client,
)
from companion.accounts.clinics import (
    clinic_dict,
    create_clinic,
    create_practitioner,
    get_clinic,
    practitioner_dict,
)
from companion.accounts.invites import create_invite, redeem_invite
from companion.treatments.store import (
    DEVICES,
    create_session,
    latest_session,
    list_sessions,
    load_session,
    session_dict,
)


def add_colleague(db: sqlite_utils.Database, clinic_id: int, values: dict, now: datetime) -> int:
    """Old signature of actions.add_colleague(db, actor, values, now)."""
    return actions.add_colleague(db, current_user, values, now)["id"]


def disable_colleague(db: sqlite_utils.Database, practitioner_id: int, by_id: int) -> None:
    """Old signature of actions.disable_colleague(db, actor, practitioner_id)."""
    actions.disable_colleague(db, current_user, practitioner_id)
