"""Two-factor sign-in for practitioners: TOTP codes (pyotp) and single-use recovery codes.

A code is checked after the password, under the same throttle (companion/throttle.py), and a
TOTP code is accepted once: the time step it belongs to is recorded, and a code of that step or
an earlier one is refused, so a code seen over a shoulder cannot be replayed in its window.

The TOTP secrets (`totp_secret`, `totp_pending`) are stored encrypted (Fernet: AES-128-CBC with
HMAC-SHA256) with the instance's TOTP_KEY, kept in secrets.json (0600) beside the database: a
copy of the database alone (a backup, a stolen file) cannot make codes.
"""

import hmac
import logging
import re
import secrets
from datetime import datetime

import pyotp
import segno
import sqlite_utils
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from companion import throttle
from companion.contract import encodable
from companion.db import iso, one, rows
from companion.errors import Unauthenticated

RECOVERY_CODES = 10
# 10 characters of a 32-letter alphabet: 50 bits each, so a fast salted hash is enough.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_HASH = "pbkdf2:sha256:20000"
ISSUER = "Companion"
BAD_CODE = "This code is not right, or was used already. Check your authenticator app."


def enabled(row: dict) -> bool:
    """Tell whether a practitioner signs in with a second factor."""
    return bool(row.get("totp_secret"))


def new_secret() -> str:
    return pyotp.random_base32()


def seal(secret: str) -> str:
    """Encrypt a TOTP secret for the database with the app's TOTP_KEY."""
    return Fernet(current_app.config["TOTP_KEY"]).encrypt(secret.encode()).decode()


def unseal(stored: str) -> str | None:
    """Decrypt a stored TOTP secret; None (logged) when this instance's key cannot, e.g. the
    database was moved without its secrets.json: `companion reset-two-factor` is the way back."""
    try:
        return Fernet(current_app.config["TOTP_KEY"]).decrypt(stored.encode()).decode()
    except InvalidToken:
        logging.getLogger(__name__).error(
            "A two-factor secret cannot be decrypted with this instance's TOTP_KEY"
            " (secrets.json from another instance?); `companion reset-two-factor` turns it off."
        )
        return None


def provisioning(secret: str, email: str, issuer: str = ISSUER) -> dict:
    """Return what an authenticator app needs: the otpauth:// link, its QR code, the secret."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)
    return {
        "secret": secret,
        "otpauth_url": uri,
        # No fixed size, a viewBox: the page scales it to the screen.
        "qr_svg": segno.make(uri, error="m").svg_inline(
            scale=4, omitsize=True, title="Two-factor QR code"
        ),
    }


def pending_setup(row: dict) -> dict | None:
    """Return the set-up in progress (what provisioning() returns) for a practitioner's row,
    or None when none was started (or this instance cannot decrypt it: start again)."""
    secret = unseal(row["totp_pending"]) if row["totp_pending"] else None
    return provisioning(secret, row["email"]) if secret else None


def _digits(code: str) -> str:
    return re.sub(r"[\s-]", "", code)


def totp_step(secret: str, code: str, after_step: int, now: datetime) -> int | None:
    """Return the time step a 6-digit code belongs to (now, or one step either side for clock
    drift), if it is later than `after_step`; else None."""
    code = _digits(code)
    if not re.fullmatch(r"[0-9]{6}", code):  # ASCII digits only (\d takes any script)
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if step > after_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def use_totp(db: sqlite_utils.Database, row: dict, code: str, now: datetime) -> bool:
    """Accept a TOTP code once: record its step atomically, so a replay (even a concurrent
    one) is refused."""
    secret = unseal(row["totp_secret"])
    step = None if secret is None else totp_step(secret, code, row["totp_last_step"], now)
    if step is None:
        return False
    cur = db.conn.execute(
        "UPDATE practitioners SET totp_last_step = :step WHERE id = :id AND totp_last_step < :step",
        {"step": step, "id": row["id"]},
    )
    return cur.rowcount == 1


def _normal_recovery(code: str) -> str:
    return _digits(code).lower()


def new_recovery_codes(db: sqlite_utils.Database, practitioner_id: int, now: datetime) -> list[str]:
    """Replace a practitioner's recovery codes with new ones; return them (shown once)."""
    codes = [
        "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)
    ]
    db.conn.execute(
        "DELETE FROM recovery_codes WHERE practitioner_id = :id", {"id": practitioner_id}
    )
    db.conn.executemany(
        "INSERT INTO recovery_codes (practitioner_id, code_hash, created_at)"
        " VALUES (:id, :hash, :at)",
        [
            {
                "id": practitioner_id,
                "hash": generate_password_hash(c, method=RECOVERY_HASH),
                "at": iso(now),
            }
            for c in codes
        ],
    )
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def use_recovery_code(
    db: sqlite_utils.Database, practitioner_id: int, code: str, now: datetime
) -> bool:
    """Spend one unused recovery code that matches; False when none does."""
    code = _normal_recovery(code)
    if not re.fullmatch(f"[{RECOVERY_ALPHABET}]{{10}}", code):
        return False
    unused = rows(
        db,
        "SELECT id, code_hash FROM recovery_codes WHERE practitioner_id = :id AND used_at IS NULL",
        {"id": practitioner_id},
    )
    for found in unused:
        if check_password_hash(found["code_hash"], code):
            cur = db.conn.execute(
                "UPDATE recovery_codes SET used_at = :now WHERE id = :id AND used_at IS NULL",
                {"now": iso(now), "id": found["id"]},
            )
            return cur.rowcount == 1
    return False


def turn_off(db: sqlite_utils.Database, practitioner_id: int) -> None:
    """Forget a practitioner's two-factor secret and recovery codes."""
    db.conn.execute(
        "UPDATE practitioners SET totp_secret = NULL, totp_pending = NULL WHERE id = :id",
        {"id": practitioner_id},
    )
    db.conn.execute(
        "DELETE FROM recovery_codes WHERE practitioner_id = :id", {"id": practitioner_id}
    )


def recovery_codes_left(db: sqlite_utils.Database, practitioner_id: int) -> int:
    return one(
        db,
        "SELECT count(*) AS n FROM recovery_codes WHERE practitioner_id = :id AND used_at IS NULL",
        {"id": practitioner_id},
    )["n"]


def check_code(
    db: sqlite_utils.Database, row: dict, code: str, address: str | None, now: datetime
) -> str:
    """Check a sign-in's second step, throttled like passwords; return "totp" or
    "recovery_code", or raise RateLimited or a 401 `bad_code` (a counted failure)."""
    address = address or "unknown"
    throttle.check_throttle(db, row["email"], address, now)
    if encodable(code) and len(code) <= 40:
        if use_totp(db, row, code, now):
            return "totp"
        if use_recovery_code(db, row["id"], code, now):
            return "recovery_code"
    throttle.record_failure(db, row["email"], address, row["clinic_id"], now, "two_factor_failed")
    raise Unauthenticated(BAD_CODE, "bad_code", {"code": BAD_CODE})
