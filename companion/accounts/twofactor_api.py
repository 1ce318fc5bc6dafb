"""The two-factor API: a practitioner's two-factor sign-in, and the clinic's rule for it."""

from flask import Blueprint, jsonify, request
from flask_login import current_user

from companion import twofactor
from companion.accounts import actions, clinics
from companion.accounts.models import (
    ClinicTwoFactor,
    CodeInput,
    PasswordInput,
    Practitioner,
    RecoveryCodes,
    TwoFactorRequiredInput,
    TwoFactorSetup,
    TwoFactorStatus,
)
from companion.auth import open_during_enrolment, owner_required, practitioner_required
from companion.contract import operation, parse
from companion.db import get_db, utcnow
from companion.web import body

bp = Blueprint("api_twofactor", __name__, url_prefix="/api")


@bp.get("/auth/two-factor")
@operation(
    "Your two-factor sign-in: on or not, required by your clinic, recovery codes left",
    tag="session",
    reply=TwoFactorStatus,
    errors=(401, 403),
)
@open_during_enrolment
@practitioner_required
def two_factor_status():
    db = get_db()
    row = clinics.get_practitioner(db, current_user.id)
    return jsonify(
        {
            "enabled": twofactor.enabled(row),
            "setup_pending": bool(row["totp_pending"]) and not twofactor.enabled(row),
            "required_by_clinic": current_user.two_factor_required,
            "recovery_codes_left": twofactor.recovery_codes_left(db, current_user.id),
        }
    )


@bp.post("/auth/two-factor/setup")
@operation(
    "Start setting up two-factor sign-in: a new secret, its otpauth:// link and QR code",
    tag="session",
    reply=TwoFactorSetup,
    errors=(401, 403, 409),
)
@open_during_enrolment
@practitioner_required
def two_factor_setup():
    return jsonify(actions.start_two_factor(get_db(), current_user))


@bp.post("/auth/two-factor/confirm")
@operation(
    "Turn two-factor sign-in on with a code from the app; answers the recovery codes, once",
    tag="session",
    reply=RecoveryCodes,
    body=CodeInput,
    errors=(400, 401, 403, 409, 415, 422),
)
@open_during_enrolment
@practitioner_required
def two_factor_confirm():
    values = parse(CodeInput, body())
    codes = actions.confirm_two_factor(get_db(), current_user, values["code"], utcnow())
    return jsonify({"recovery_codes": codes})


@bp.post("/auth/two-factor/disable")
@operation(
    "Turn your two-factor sign-in off (your password required)",
    tag="session",
    ok=204,
    body=PasswordInput,
    errors=(400, 401, 403, 415, 422, 429),
)
@practitioner_required
def two_factor_disable():
    values = parse(PasswordInput, body())
    actions.disable_two_factor(get_db(), current_user, values["password"], request.remote_addr)
    return "", 204


@bp.post("/auth/two-factor/recovery-codes")
@operation(
    "Replace your recovery codes (your password required); the old ones stop working",
    tag="session",
    reply=RecoveryCodes,
    body=PasswordInput,
    errors=(400, 401, 403, 409, 415, 422, 429),
)
@practitioner_required
def recovery_codes():
    values = parse(PasswordInput, body())
    codes = actions.renew_recovery_codes(
        get_db(), current_user, values["password"], request.remote_addr, utcnow()
    )
    return jsonify({"recovery_codes": codes})


@bp.get("/clinic/two-factor")
@operation(
    "Whether your clinic requires two-factor sign-in of every practitioner",
    tag="practitioner",
    reply=ClinicTwoFactor,
    errors=(401, 403),
)
@practitioner_required
def clinic_two_factor():
    found = clinics.get_clinic(get_db(), current_user.clinic_id)
    return jsonify({"required": bool(found["two_factor_required"])})


@bp.put("/clinic/two-factor")
@operation(
    "Require two-factor sign-in of every practitioner of your clinic, or stop (owners only)",
    tag="practitioner",
    reply=ClinicTwoFactor,
    body=TwoFactorRequiredInput,
    errors=(400, 401, 403, 409, 415, 422),
)
@owner_required
def require_two_factor():
    values = parse(TwoFactorRequiredInput, body())
    required = actions.require_two_factor(get_db(), current_user, values["required"])
    return jsonify({"required": required})


@bp.post("/practitioners/<int:practitioner_id>/two-factor/reset")
@operation(
    "Turn a colleague's two-factor sign-in off, for a lost phone (owners only); they sign in again",
    tag="practitioner",
    reply=Practitioner,
    errors=(401, 403, 404),
)
@owner_required
def reset_two_factor(practitioner_id: int):
    row = actions.reset_two_factor(get_db(), current_user, practitioner_id)
    return jsonify(clinics.practitioner_dict(row))
