"""Temporary: the JSON API now lives in each feature's api.py (accounts, treatments, reminders,
checkins, review). These two names stay only until review/api.py imports them from their new
homes (companion.web.body, companion.accounts.api.my_client); then this module goes."""

from companion.accounts.api import my_client  # noqa: F401
from companion.web import body  # noqa: F401
