"""Demo data: a clinic, a practitioner and clients at different days of recovery."""

import secrets
import uuid
from datetime import timedelta

from flask import Flask

from companion.accounts import clients, clinics
from companion.checkins import store as checkins
from companion.clinical import SYMPTOMS, WARNING_SIGNS
from companion.db import connect, utcnow, write
from companion.treatments import store as treatments

EMAIL = "demo@companion-demo.net"
CLINIC = "Companion Demo Clinic"

# (name, hours since session, needle depth, check-ins as (hours, redness, swelling, pain, extra))
CLIENTS = [
    ("Amira Haddad", 3, 0.5, []),
    ("Ben Carter", 30, 1.0, [(24, 2, 1, 2, {})]),
    ("Chloé Martin", 56, 0.5, [(24, 2, 1, 2, {}), (50, 3, 2, 3, {})]),
    (
        "Dev Patel",
        100,
        1.5,
        [(24, 3, 2, 3, {}), (48, 2, 1, 2, {"peeling": True}), (96, 1, 0, 1, {"peeling": True})],
    ),
    ("Erin O'Neill", 80, 0.5, [(24, 2, 1, 2, {}), (72, 2, 2, 4, {"warning": "pus"})]),
    ("Farid Khan", 200, 0.25, [(24, 1, 1, 1, {}), (72, 0, 0, 0, {})]),
    ("Lucía Romero", 40, 0.5, [(24, 2, 1, 2, {})]),
]
# Clients who read the app, reminders and emails in Spanish (the rest in English).
SPANISH = {"Lucía Romero"}


def other_clinics(app: Flask) -> list[str]:
    """The clinics of this instance that are not the demo's: real ones the demo must not join."""
    db = connect(app.config["DATABASE"])
    try:
        rows = db.execute("SELECT name FROM clinics WHERE name != ? ORDER BY id", [CLINIC])
        return [name for (name,) in rows.fetchall()]
    finally:
        db.close()


def seed(app: Flask) -> tuple[str, str]:
    """Create (or refresh) the demo clinic; return the practitioner's email and a new password."""
    password = secrets.token_urlsafe(9)
    db = connect(app.config["DATABASE"])
    now = utcnow()
    try:
        existing = clinics.find_practitioner_by_email(db, EMAIL)
        if existing:
            with write(db):
                clinics.reset_password(db, existing["id"], password)
            return EMAIL, password
        with write(db):
            clinic_id = clinics.create_clinic(db, CLINIC, "Europe/London", "+44 20 7946 0000", now)
            pid = clinics.create_practitioner(db, clinic_id, EMAIL, "Dr Demo", password, now)
            the_clinic = clinics.get_clinic(db, clinic_id)
            for name, hours, depth, reports in CLIENTS:
                language = "es" if name in SPANISH else "en"
                client = clients.create_client(
                    db, the_clinic, {"name": name, "language": language}, now
                )
                performed = now - timedelta(hours=hours)
                session = treatments.create_session(
                    db,
                    client,
                    pid,
                    {
                        "performed_at": performed,
                        "areas": ["face"],
                        "needle_depth_mm": depth,
                        "device": "pen",
                        "products": ["hyaluronic serum"],
                        "notes": "Demo session.",
                    },
                    now,
                )
                for at, redness, swelling, pain, extra in reports:
                    warning = extra.pop("warning", None)
                    # Received when taken: the queue says how long each flag has waited.
                    taken = performed + timedelta(hours=at)
                    checkins.submit(
                        db,
                        client,
                        {
                            "id": str(uuid.uuid4()),
                            "session_id": session["id"],
                            "taken_at": taken,
                            "redness": redness,
                            "swelling": swelling,
                            "pain": pain,
                            "symptoms": dict.fromkeys(SYMPTOMS, False) | extra,
                            "warning_signs": dict.fromkeys(WARNING_SIGNS, False)
                            | ({warning: True} if warning else {}),
                            "note": "",
                        },
                        taken,
                    )
    finally:
        db.close()
    return EMAIL, password
