"""Temporary: the accounts records live in clinics.py, clients.py and invites.py, the audited
actions in actions.py. Only benchmarks/dispatch.py still imports create_clinic from here;
once it imports companion.accounts.clinics, this module goes."""

from companion.accounts.clinics import create_clinic  # noqa: F401
