"""Temporary: review's functions now live in queue.py, timeline.py, exports.py, erasure.py and
actions.py. These names stay importable from here only until accounts/pages.py and
benchmarks/scale.py import them from their new homes; then this module goes."""

# ruff: noqa: F401
from companion.review.exports import (
    CHECKIN_COLUMNS,
    FLAG_COLUMNS,
    _checkin_csv_rows,
    client_bundle,
    to_csv,
)
from companion.review.queue import counts, flag_dict, flag_events, get_flag, queue
from companion.review.timeline import timeline


def checkin_csv_rows(db, where: str, params) -> list[dict]:
    """The old call of benchmarks/scale.py; use exports.client_checkin_rows."""
    return _checkin_csv_rows(db, where, params)
