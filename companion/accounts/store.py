"""Temporary: the accounts records now live in clinics.py, clients.py and invites.py, and the
actions shared by the API and the pages in actions.py; treatment sessions in
companion.treatments.store. These names stay importable from here only until
reminders/inbox.py, review/, tests/test_dispatch.py, tests/test_faults_process.py and
benchmarks/ import them from their new homes; then this module goes."""

# ruff: noqa: F401
from companion.accounts.actions import add_colleague, disable_colleague, set_up, sign_in_with_invite
from companion.accounts.clients import (
    CLIENT_FIELDS,
    client_dict,
    client_fields,
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
    practitioner_fields,
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
