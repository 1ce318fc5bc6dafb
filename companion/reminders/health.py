"""Whether reminders can go out: the VAPID contact the dispatcher signs with, judged once
for the dispatcher, `companion doctor`, `companion serve`, /healthz and the banner."""

from collections.abc import Mapping

import sqlite_utils
from flask_login import current_user

from companion.db import get_db, one
from companion.reminders import push

NO_CONTACT = (
    "no VAPID contact: set COMPANION_VAPID_SUBJECT to mailto:you@yourclinic or"
    " https://yourclinic (or add a practitioner, whose address is used until then)"
)


def contact(cfg: Mapping, db: sqlite_utils.Database) -> tuple[str | None, str | None]:
    """Return (VAPID subject, None), or (None, why there is no usable one).

    COMPANION_VAPID_SUBJECT when set, else mailto: the first practitioner (a fresh
    demo sends that way); a placeholder is refused either way, as push services may.
    """
    subject = (cfg.get("VAPID_SUBJECT") or "").strip()  # a stray space from an env file
    if not subject:
        first = one(db, "SELECT email FROM practitioners ORDER BY id LIMIT 1")
        if first is None:
            return None, NO_CONTACT
        subject = f"mailto:{first['email']}"
    try:
        push.check_subject(subject)
    except ValueError as e:
        return None, f"{e}. Set COMPANION_VAPID_SUBJECT to mailto:you@yourclinic"
    return subject, None


def configured_contact(cfg: Mapping) -> str | None:
    """Return why the configured contact is unusable, or None (for serve, before a database)."""
    subject = (cfg.get("VAPID_SUBJECT") or "").strip()
    if not subject:
        return "COMPANION_VAPID_SUBJECT is not set"
    try:
        push.check_subject(subject)
    except ValueError as e:
        return str(e)
    return None


def status(cfg: Mapping, db: sqlite_utils.Database) -> dict:
    """Delivery health for /healthz: {"ok": bool} and, when not ok, a "reason"."""
    _, problem = contact(cfg, db)
    return {"ok": True} if problem is None else {"ok": False, "reason": problem}


def banner(cfg: Mapping) -> dict:
    """Give practitioner pages `push_problem` when push cannot go out (and whether email can)."""
    if not (current_user.is_authenticated and getattr(current_user, "is_practitioner", False)):
        return {}
    _, problem = contact(cfg, get_db())
    # The dispatcher still sends email when push is off (reminders/worker.py).
    return {"push_problem": problem, "email_fallback": bool(cfg.get("SMTP_HOST"))}
