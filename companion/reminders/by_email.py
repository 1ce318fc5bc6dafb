"""The email step of a dispatch batch, after push: who gets an email, and what a row comes to.

A client's reminder goes by email when their channels say so ("email" chosen), or, by
default, once its push could not be delivered (no live device, every device gone, failed
after retries, its push service down that long) and the client has an address. An alert goes by email when the outbox
marked it so (urgent alerts to owners, the clinic's email_alerts setting). Each email is
one deliveries row (channel 'email', the address); one SMTP connection serves the batch.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from companion.db import parse_iso, rows
from companion.reminders import channels, emails, links, retries, words
from companion.reminders.mail import Mailer

NOT_SENT = ("skipped", "failed")  # push's final verdicts that call for the fallback
PENDING = ("retry", "waiting")
EMAIL_OFF = "email is off on this server (no COMPANION_SMTP_HOST)"


@dataclass
class Email:
    """What a dispatcher needs to send email: its Mailer and how to sign links."""

    mailer: Mailer
    base_url: str
    secret_key: str


def wanted(row: dict, client: dict | None) -> tuple[str, bool] | None:
    """Return (address, always) when this row may go by email; always: not only as fallback."""
    chosen = channels.decode(row.get("channels"))
    if row["owner_kind"] == "practitioner":
        return ("", True) if chosen and "email" in chosen else None  # address looked up later
    if client is None or not client.get("email"):
        return None
    chosen = chosen if chosen is not None else channels.decode(client.get("channels"))
    if not channels.allows(chosen, "email"):
        return None
    return client["email"], chosen is not None


def _practitioners(db: sqlite_utils.Database, ids: list[int]) -> dict[int, dict]:
    found = rows(
        db,
        "SELECT id, email, active FROM practitioners WHERE id IN (SELECT value FROM json_each(:ids))",
        {"ids": json.dumps(ids)},
    )
    return {p["id"]: p for p in found if p["active"]}


def _clinic_names(db: sqlite_utils.Database, ids: list[int]) -> dict[int, str]:
    found = rows(
        db,
        "SELECT * FROM clinics WHERE id IN (SELECT value FROM json_each(:ids))",
        {"ids": json.dumps(ids)},
    )
    # A display name from the clinic's settings wins over its registered name.
    return {c["id"]: c.get("display_name") or c["name"] for c in found}


def send(
    db: sqlite_utils.Database,
    email: Email | None,
    decided: list[tuple],
    clients: dict[int, dict],
    emailed: set[int],
    deliveries: list[dict],
    stamp: str,
    now: datetime,
    settings: retries.Settings,
) -> list[tuple]:
    """Email the rows that call for it; return decided with their new verdicts.

    decided rows are (row, attempt, status, reason, next_at) after push; deliveries
    gains one row per email sent.
    """
    todo = []
    out = []
    for item in decided:
        row, attempt, status, reason, next_at = item
        client = clients.get(row["owner_id"]) if row["owner_kind"] == "client" else None
        want = None if row["id"] in emailed else wanted(row, client)
        if want is None or (not want[1] and status not in NOT_SENT):
            out.append(item)
        elif email is None:
            out.append((row, attempt, status, f"{reason or status}; {EMAIL_OFF}", next_at))
        else:
            chosen = channels.decode(row.get("channels"))
            if chosen is None and client is not None:
                chosen = channels.decode(client.get("channels"))
            if not channels.allows(chosen, "push"):
                item = (row, attempt, status, None, next_at)  # email is its only channel
            todo.append((item, want[0], client))
    if not todo:
        return out
    owners = _practitioners(db, [i[0]["owner_id"] for i, _, c in todo if c is None])
    names = _clinic_names(db, sorted({i[0]["clinic_id"] for i, _, _ in todo}))
    sender = email.mailer.settings.sender
    messages, addresses = [], {}
    for item, address, client in todo:
        row = item[0]
        clinic = names.get(row["clinic_id"])
        if client is None:  # an alert to an owner (in English)
            clinic = clinic or "Your clinic"
            owner = owners.get(row["owner_id"])
            if owner is None:
                out.append(item)
                continue
            address = owner["email"]
            message = emails.alert(row, address, clinic, sender, email.base_url + row["url"], now)
        else:
            clinic = clinic or words.words(client.get("language")).gettext("Your clinic")
            message = emails.reminder(row, address, clinic, sender, client, _links(email, row), now)
        addresses[row["id"]] = address
        messages.append((item, message))
    for item, outcome in email.mailer.send_many(messages):
        row, attempt, status, reason, next_at = item
        attempt = max(attempt, row["attempts"] + 1)
        deliveries.append(
            {
                "notification_id": row["id"],
                "subscription_id": None,
                "channel": "email",
                "address": addresses[row["id"]],
                "attempt": attempt,
                "at": stamp,
                "status_code": outcome.status,
                "outcome": outcome.kind,
                "reason": outcome.reason[:500],
                "elapsed_ms": outcome.elapsed_ms,
            }
        )
        out.append(_verdict(row, attempt, status, reason, next_at, outcome, now, settings))
    return out


def _links(email: Email, row: dict) -> dict[str, str]:
    found = {
        "app": email.base_url + "/",
        "unsubscribe": email.base_url
        + "/email/unsubscribe/"
        + links.unsubscribe_token(email.secret_key, row["client_id"]),
    }
    if row["kind"] == "checkin" and row["session_id"]:
        found["checkin"] = (
            email.base_url + "/checkin/link/" + links.checkin_token(email.secret_key, row)
        )
    return found


def _verdict(row, attempt, status, reason, next_at, outcome, now, settings) -> tuple:
    """What a row comes to once its email was tried (push's verdict stands while it retries)."""
    if status in PENDING or (status == "sent" and outcome.kind != "retry"):
        return row, attempt, status, reason, next_at
    push_said = f" (push: {reason})" if reason else ""
    if outcome.kind == "delivered":
        return row, attempt, "sent", f"sent by email{push_said}" if reason else None, None
    if outcome.kind == "retry" and attempt < settings.max_attempts:
        at = now + timedelta(seconds=retries.backoff(attempt, settings, None))
        if at < parse_iso(row["expires_at"]):
            return row, attempt, "retry", f"retrying email: {outcome.reason}", at
    if status == "sent":
        return row, attempt, status, reason, next_at
    return row, attempt, "failed", f"email not delivered: {outcome.reason}{push_said}", None
