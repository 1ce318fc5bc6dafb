"""The clinic's face in pages: the owner's settings page, the logo and accent colour files,
and `clinic_face()` for templates (the client app's header and contact blocks)."""

import json
import re
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from companion.accounts import clinics
from companion.admin import actions, clinic
from companion.admin.models import ClinicInput
from companion.auth import practitioner_required, refuse
from companion.contract import parse
from companion.db import get_db, utcnow
from companion.errors import DomainError, Invalid
from companion.i18n import current_language
from companion.i18n import gettext as _

bp = Blueprint("clinic_face", __name__)

YEAR = 365 * 24 * 3600
MANIFEST = Path(__file__).parent.parent / "static" / "manifest.webmanifest"
SHORT_NAME_FITS = 15  # characters a home screen shows under an icon, about


@bp.app_template_global("clinic_face")
def clinic_face() -> dict | None:
    """The clinic this page is for: the signed-in person's, one set by the view (an invite's),
    or the instance's only clinic; None when it cannot be known. Read once per request."""
    if "clinic_face" not in g:
        db = get_db()
        if current_user.is_authenticated:
            row = clinics.get_clinic(db, current_user.clinic_id)
        else:
            row = clinic.only_clinic(db)
        g.clinic_face = clinic.face(row) if row else None
    return g.clinic_face


@bp.app_template_global("home_screen_name")
def home_screen_name(iphone: bool) -> str:
    """What the installed app is called under its icon, for the words that send a client
    there: on an iPhone, the client pages' apple-mobile-web-app-title (the clinic's display
    name); elsewhere the manifest's short name (the only clinic's when it fits, else Companion)."""
    if iphone:
        face = clinic_face()
        return face["display_name"] if face else "Companion"
    return short_name(clinic.only_clinic(get_db()))


def short_name(only: dict | None) -> str:
    """The manifest's short_name: the only clinic's display name when it fits under an icon."""
    name = clinic.face(only)["display_name"] if only is not None else ""
    return name if name and len(name) <= SHORT_NAME_FITS else "Companion"


@bp.app_template_filter("tel")
def tel_href(phone: str) -> str:
    """Turn a phone number as written into a tel: link's digits (and a leading +)."""
    return re.sub(r"(?!^\+)[^0-9]", "", phone.strip())


@bp.route("/clinic/profile", methods=["GET", "POST"])
@practitioner_required
def profile():
    """The clinic as clients see it; an owner changes it here."""
    db = get_db()
    errors: dict = {}
    form = None
    if request.method == "POST":
        if not current_user.is_owner:
            return refuse()
        try:
            logo = request.files.get("logo")
            if request.form.get("action") == "remove_logo":
                actions.remove_logo(db, current_user)
                flash("Logo removed.")
            elif logo and logo.filename:
                actions.change_logo(db, current_user, logo.read(), utcnow())
                flash("Logo saved. Clients see it in the app's header.")
            elif request.form.get("action") == "upload_logo" or not any(
                k in request.form for k in clinic.EDITABLE
            ):
                # "Upload logo" before choosing a file was read as the details form with every
                # field empty: it erased the clinic's phone, address and booking link.
                raise Invalid({"logo": "Choose an image first, then press Upload logo."})
            else:
                # Only the fields the form sent: one it lacks (an older page's) stays as it is.
                form = {k: request.form[k] for k in clinic.EDITABLE if k in request.form}
                if "quiet_start" in request.form or "quiet_end" in request.form:
                    form["quiet_hours"] = {
                        "start": request.form.get("quiet_start", ""),
                        "end": request.form.get("quiet_end", ""),
                    }
                if "language" in request.form:
                    form["language"] = request.form["language"]
                actions.change_clinic(db, current_user, parse(ClinicInput, form, partial=True))
                flash("Clinic details saved. Clients see them the next time a page opens.")
            return redirect(url_for(".profile"))
        except DomainError as e:
            errors = e.fields or {"form": e.message}
    face = clinic.face(clinics.get_clinic(db, current_user.clinic_id))
    return render_template(
        "practitioner/clinic_profile.html",
        face=face,
        form={k: face[k] or "" for k in clinic.EDITABLE}
        | {"quiet_hours": face["quiet_hours"], "language": face["language"]}
        | (form or {}),
        errors=errors,
        can_edit=current_user.is_owner,
    ), 422 if errors else 200


@bp.get("/clinic/logo/<int:clinic_id>/<version>.jpg")
def logo(clinic_id: int, version: str):
    """A clinic's logo (public, like a sign on its door); a new logo gets a new address."""
    image = clinic.logo(get_db(), clinic_id, version[:40])
    if image is None:
        abort(404)
    resp = make_response(image)
    resp.mimetype = "image/jpeg"
    resp.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return resp


@bp.get("/clinic/theme/<color>.css")
def theme(color: str):
    """The clinic's accent colour as a style sheet (the pages allow no inline style); light
    mode only: the dark theme keeps its own light accent, which reads on dark cards."""
    value = "#" + color
    if not clinic.HEX_COLOR.match(value) or len(color) != 6:
        abort(404)
    if clinic.contrast_with_white(value.lower()) < clinic.MIN_CONTRAST:
        abort(404)
    accent = value.lower()
    css = f"@media not (prefers-color-scheme: dark) {{ :root {{ --accent: {accent}; }} }}\n"
    resp = make_response(css)
    resp.mimetype = "text/css"
    resp.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return resp


@bp.get("/manifest.webmanifest")
def manifest():
    """The web app manifest; where this instance serves one clinic, the installed app carries
    its name (with several, the clinic is not known before sign-in: the app stays Companion)."""
    data = json.loads(MANIFEST.read_text())
    # In the browser's language (a manifest is fetched without cookies: whose app it is, unknown).
    data["lang"] = current_language()
    data["name"] = _("Companion aftercare")
    data["description"] = _(
        "Aftercare reminders and daily skin check-ins after your micro-needling session."
    )
    row = clinic.only_clinic(get_db())
    if row is not None:
        data["name"] = _("%(clinic)s · Aftercare", clinic=clinic.face(row)["display_name"])
        data["short_name"] = short_name(row)
    resp = make_response(json.dumps(data, ensure_ascii=False, indent=2))
    resp.mimetype = "application/manifest+json"
    resp.headers["Cache-Control"] = "no-cache"
    resp.vary.add("Accept-Language")
    return resp
