"""Practitioners' passwords: hashing, and checking one at sign-in (throttled)."""

import functools
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from companion import throttle
from companion.contract import encodable
from companion.db import get_db, one, utcnow

# werkzeug's scrypt at its own cost (n=2**15, r=8, p=1: ~0.1 s of CPU a hash). The test suite
# lowers the cost (tests/conftest.py), as Django's docs advise for tests: a stored hash names
# its parameters, so checking one made at either cost works the same way.
METHOD = "scrypt"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=METHOD)


def password_matches(row: dict, password: str) -> bool:
    """Tell whether a practitioner row's password is this one."""
    return encodable(password) and check_password_hash(row["password_hash"], password)


@functools.cache
def _dummy_hash(method: str) -> str:
    """A hash of nothing anyone knows, at the cost real ones have."""
    return generate_password_hash(secrets.token_hex(8), method=method)


def authenticate(email: str, password: str, address: str | None) -> dict | None:
    """Check a practitioner's password, throttled per account and per address (the
    caller's IP); return their row, None when wrong, or raise RateLimited."""
    db = get_db()
    now = utcnow()
    address = address or "unknown"
    # Text no account can have (NUL, broken Unicode) is just a failed attempt.
    storable = encodable(email) and encodable(password)
    email = email.strip().lower() if storable else email.encode("utf-8", "replace").decode()
    throttle.check_throttle(db, email, address, now)
    row = (
        one(db, "SELECT * FROM practitioners WHERE email = :email", {"email": email})
        if storable
        else None
    )
    # Hash even for an unknown email so timing does not tell which emails exist.
    stored = row["password_hash"] if row else _dummy_hash(METHOD)
    ok = storable and check_password_hash(stored, password) and row is not None and row["active"]
    if not ok:
        throttle.record_failure(db, email, address, row["clinic_id"] if row else None, now)
        return None
    # Failures are forgotten once the sign-in is complete (after any second step).
    return row
