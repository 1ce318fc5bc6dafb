"""Sign-in throttling: failures slow an account and an address down instead of locking them out.

Past its free failures an account (or an address) waits a delay that doubles with each further
failure in the window. An address may wait up to the whole window; an account at most
ACCOUNT_MAX_DELAY, so a stranger's wrong passwords (or codes) slow the real practitioner down by
a minute at worst and never shut a clinic out of its queue.

`Allowance` limits uses rather than failures (a calendar feed's fetches per token): per process,
in memory, since a use writes nothing to the database.
"""

import math
import threading
import time
from collections import deque
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
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                f"Too many failed sign-ins. Try again in {_how_long(seconds)}.",
                seconds,
                "too_many_attempts",
            )


def _how_long(seconds: int) -> str:
    """'5 seconds', '2 minutes': "later" left a practitioner guessing at a 5-second wait."""
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


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


class Allowance:
    """Per process: at most `limit` uses of a key in any `window` seconds; past that, refuse
    with RateLimited and the seconds until the oldest use leaves the window."""

    MAX_KEYS = 10_000  # past this many keys, the ones with no recent use are forgotten

    def __init__(self, window: float = 3600.0) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._uses: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int, message: str, code: str) -> None:
        """Count one use of `key`, or raise RateLimited (429 with Retry-After) past `limit`."""
        now = time.monotonic()
        with self._lock:
            uses = self._uses.setdefault(key, deque())
            while uses and uses[0] <= now - self.window:
                uses.popleft()
            if len(uses) >= limit:  # a limit of 0 (or less) refuses every use
                wait = uses[0] + self.window - now if uses else self.window
                raise RateLimited(message, max(1, math.ceil(wait)), code)
            uses.append(now)
            if len(self._uses) > self.MAX_KEYS:
                self._uses = {
                    k: v for k, v in self._uses.items() if v and v[-1] > now - self.window
                }


def allowance_of(app, name: str) -> Allowance:
    """Return the Flask app's Allowance called `name` (kept in app.extensions), made on first use."""
    key = f"allowance:{name}"
    found = app.extensions.get(key)
    return found if found is not None else app.extensions.setdefault(key, Allowance())
