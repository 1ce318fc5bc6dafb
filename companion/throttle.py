"""Sign-in throttling: failures slow an account and an address down instead of locking them out.

Past its free failures an account (or an address) waits a delay that doubles with each further
failure in the window. An address may wait up to the whole window; an account at most
ACCOUNT_MAX_DELAY, so a stranger's wrong passwords (or codes) slow the real practitioner down by
a minute at worst and never shut a clinic out of its queue.
"""

import math
from datetime import datetime, timedelta

import sqlite_utils
from flask import current_app

from companion import audit
from companion.db import iso, one, parse_iso, write
from companion.errors import RateLimited

FIRST_DELAY = 5.0
ACCOUNT_MAX_DELAY = 60.0


def throttle_delay(failures: int, free: int, cap: float) -> float:
    """Return how long to wait after the last of `failures` recent failures (0 while free)."""
    if failures < free:
        return 0.0
    return min(FIRST_DELAY * 2 ** min(failures - free, 32), cap)


def check_throttle(db: sqlite_utils.Database, email: str, address: str, now: datetime) -> None:
    """Raise RateLimited while the account or the address must still wait after failures."""
    cfg = current_app.config
    window = timedelta(minutes=cfg["LOGIN_WINDOW_MINUTES"])
    since = iso(now - window)
    free = cfg["LOGIN_MAX_FAILURES"]
    # An address gets more room than an account: a clinic shares one address.
    for column, value, room, cap in (
        ("email", email, free, ACCOUNT_MAX_DELAY),
        ("address", address, free * 4, window.total_seconds()),
    ):
        seen = one(
            db,
            f"SELECT count(*) AS n, max(at) AS last FROM login_failures"
            f" WHERE {column} = :value AND at > :since",
            {"value": value, "since": since},
        )
        delay = throttle_delay(seen["n"], room, cap)
        if not delay:
            continue
        wait = (parse_iso(seen["last"]) + timedelta(seconds=delay) - now).total_seconds()
        if wait > 0:
            raise RateLimited(
                "Too many failed sign-ins. Try again later.",
                max(1, math.ceil(wait)),
                "too_many_attempts",
            )


def record_failure(
    db: sqlite_utils.Database,
    email: str,
    address: str,
    clinic_id: int | None,
    now: datetime,
    event: str = "sign_in_failed",
) -> None:
    """Count a wrong password (or code) against the account and the address, and audit it."""
    with write(db):
        db["login_failures"].insert({"email": email, "address": address, "at": iso(now)})
        audit.record(
            event,
            actor_kind="anonymous",
            clinic_id=clinic_id,
            detail=f"email={email}" if clinic_id else "unknown email",
        )


def forget_failures(db: sqlite_utils.Database, email: str) -> None:
    """Clear an account's failures after it signed in."""
    db.conn.execute("DELETE FROM login_failures WHERE email = :email", {"email": email})
