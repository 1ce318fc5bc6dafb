"""What owners do to their clinic's face, shared by the API and the settings page.

Each action writes in one transaction and records itself in the audit log for the actor
given; the routes and pages check that the actor is an owner.
"""

from datetime import datetime

import sqlite_utils
from flask import current_app

from companion import audit
from companion.accounts import clinics
from companion.admin import clinic
from companion.auth import User
from companion.checkins import photos
from companion.checkins.photo_header import BadImage
from companion.db import write
from companion.errors import Invalid, TooLarge


def change_clinic(db: sqlite_utils.Database, actor: User, values: dict) -> dict:
    """Change the actor's clinic settings from a parsed ClinicInput; return its face."""
    with write(db):
        clinic.update(db, actor.clinic_id, values)
        if values:
            audit.record("clinic_changed", detail="fields=" + ",".join(sorted(values)), actor=actor)
    return clinic.face(clinics.get_clinic(db, actor.clinic_id))


def change_logo(db: sqlite_utils.Database, actor: User, data: bytes, now: datetime) -> dict:
    """Store a new logo for the actor's clinic: checked and re-encoded like a check-in photo
    (pixels only, no metadata), then scaled down to at most 512 px a side."""
    if len(data) > clinic.LOGO_MAX_BYTES:
        raise TooLarge(f"A logo can be at most {clinic.LOGO_MAX_BYTES // 1024 // 1024} MB.")
    if not data:
        raise Invalid({"logo": "Send the logo image as the body."})
    guard = photos.guard_of(current_app)
    try:
        with guard.decoding():
            jpeg, _, _ = photos.process(data)
    except BadImage as e:
        e.fields = {"logo": e.fields.get("photo", e.message)}  # the field this route takes
        raise
    small, width, height = clinic.shrink_logo(jpeg)
    with write(db):
        clinic.save_logo(db, actor.clinic_id, small, width, height, now)
        audit.record("clinic_logo_changed", actor=actor)
    return clinic.face(clinics.get_clinic(db, actor.clinic_id))


def remove_logo(db: sqlite_utils.Database, actor: User) -> dict:
    with write(db):
        clinic.remove_logo(db, actor.clinic_id)
        audit.record("clinic_logo_removed", actor=actor)
    return clinic.face(clinics.get_clinic(db, actor.clinic_id))
