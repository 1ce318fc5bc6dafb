"""Signed links in emails: a one-tap check-in for one session, and a one-click unsubscribe.

Both are itsdangerous tokens signed with SECRET_KEY (HMAC-SHA256). A check-in link names
its client, session and reminder and carries the reminder's expiry; it grants that one
check-in and nothing else. An unsubscribe link names only its client. Either is refused
once the client is erased (the pages check the client row still exists).
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer

CHECKIN = "companion.checkin-link"
UNSUBSCRIBE = "companion.email-unsubscribe"


def _serializer(secret_key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})


def base_url(cfg: Mapping) -> str:
    """Where links in emails point: PUBLIC_URL, else the address `companion run` listens on."""
    return (cfg.get("PUBLIC_URL") or cfg.get("LOCAL_URL") or "http://localhost:5000").rstrip("/")


def checkin_token(secret_key: str, row: dict) -> str:
    """Sign a link to the check-in of this reminder's session, valid while the reminder is."""
    expires = int(datetime.fromisoformat(row["expires_at"]).timestamp())
    payload = {"c": row["client_id"], "s": row["session_id"], "n": row["id"], "x": expires}
    return _serializer(secret_key, CHECKIN).dumps(payload)


def read_checkin_token(secret_key: str, token: str) -> dict | None:
    """Return {client_id, session_id, notification_id, expires_at} or None if not ours."""
    try:
        data = _serializer(secret_key, CHECKIN).loads(token)
        return {
            "client_id": int(data["c"]),
            "session_id": int(data["s"]),
            "notification_id": int(data["n"]),
            "expires_at": datetime.fromtimestamp(int(data["x"]), UTC),
        }
    except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
        return None


def unsubscribe_token(secret_key: str, client_id: int) -> str:
    return _serializer(secret_key, UNSUBSCRIBE).dumps({"c": client_id})


def read_unsubscribe_token(secret_key: str, token: str) -> int | None:
    """Return the client id an unsubscribe link names, or None if it is not ours."""
    try:
        return int(_serializer(secret_key, UNSUBSCRIBE).loads(token)["c"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
