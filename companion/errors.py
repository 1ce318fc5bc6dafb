"""Domain errors and the one place they become HTTP: JSON under /api/, an HTML page elsewhere."""

import sqlite3

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, SecurityError


class N_(str):  # noqa: N801 (the gettext marker's usual name)
    """An English message that is translated where errors become JSON or a page (`shown`).

    It is the English text itself (the same bytes as before), and it remembers its msgid and
    values: `N_("At most %(max)s characters.", max=200)` reads "At most 200 characters." and
    shows as "Como máximo 200 caracteres." to a Spanish-speaking client. scripts/catalogs
    extracts `N_` (keyword `-k N_`).
    """

    def __new__(cls, msgid: str, **values):
        self = super().__new__(cls, msgid % values if values else msgid)
        self.msgid, self.values = msgid, values
        return self


def shown(text):
    """Return a message in this request's language (see companion/i18n.py; English stays as is).

    Marked messages (N_) are looked up by msgid then filled in; an unmarked text is looked up as
    it is (a word the catalog lacks, e.g. werkzeug's, stays English).
    """
    if not isinstance(text, str):
        return text
    from companion.i18n import translate  # noqa: PLC0415 (i18n imports flask-babel, pages)

    return translate(getattr(text, "msgid", text), getattr(text, "values", None))


class DomainError(Exception):
    """An error a user can cause, raised by domain code that knows nothing of HTTP.

    `code` is the machine-readable reason, `message` the plain-language one; `fields` names
    the bad input. The HTTP status is chosen once, in STATUS below.
    """

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, fields: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.fields = fields or {}


class NotFound(DomainError):
    """No such record, or not one the caller may see (the same answer, so ids do not leak)."""

    code = "not_found"

    def __init__(self, what: str = "record", code: str | None = None, message: str | None = None):
        what = RECORDS.get(what, what)
        super().__init__(message or N_("No such %(what)s.", what=what), code)


# The records a "No such ..." names, marked so that a client reads them in their language too.
RECORDS = {
    word: N_(word)
    for word in (
        N_("record"),
        N_("session"),
        N_("check-in"),
        N_("check-in link"),
        N_("unsubscribe link"),
        N_("subscription"),
        N_("signed-in phone"),
        N_("photo"),
        N_("flag"),
        N_("practitioner"),
        N_("client"),
    )
}


class Conflict(DomainError):
    """The request clashes with the record's current state."""

    code = "conflict"


class Unauthenticated(DomainError):
    """What was given to sign in is wrong (a password, a code)."""

    code = "bad_credentials"


class Gone(DomainError):
    """The thing existed but can no longer be used (an expired or used invite)."""

    code = "gone"


class Invalid(DomainError):
    """Input that breaks the contract; `fields` says which field and why."""

    code = "invalid"

    def __init__(self, fields: dict, message: str = N_("Some fields are not valid.")):
        super().__init__(message, "invalid", fields)


class TooLarge(DomainError):
    code = "too_large"


class Unsupported(DomainError):
    """A body of a kind we do not accept (e.g. an image format)."""

    code = "unsupported_media_type"


class RateLimited(DomainError):
    """Too many attempts; try again after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, code: str | None = None):
        super().__init__(message, code)
        self.retry_after = retry_after


# What werkzeug's refusals say (in English) to a reader of another language, by status.
HTTP_MESSAGES = {
    400: N_("The request could not be understood."),
    404: N_("There is nothing at this address."),
    405: N_("This address does not take this kind of request."),
    413: N_("What was sent is too large."),
}


# The one place a domain error becomes an HTTP status.
STATUS: dict[type[DomainError], int] = {
    DomainError: 400,
    NotFound: 404,
    Unauthenticated: 401,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    Unsupported: 415,
    Invalid: 422,
    RateLimited: 429,
}


def status_of(e: DomainError) -> int:
    """Return the HTTP status for a domain error (its nearest mapped class)."""
    for cls in type(e).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


class ApiError(Exception):
    """An HTTP-level refusal raised at the edge (routes, auth, request checks), with its status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def abort_json_or_html(
    status: int, code: str, message: str, fields: dict | None = None, headers: dict | None = None
):
    """Answer an error as JSON under /api/, as a page elsewhere."""
    message = shown(message)
    fields = {name: shown(text) for name, text in (fields or {}).items()}
    if request.path.startswith("/api/"):
        resp = jsonify(error_body(code, message, fields))
    else:
        resp = render_template("error.html", status=status, code=code, message=message)
    return (resp, status, headers or {})


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return abort_json_or_html(e.status, e.code, e.message, e.fields, e.headers)

    @app.errorhandler(DomainError)
    def domain_error(e: DomainError):
        headers = {}
        if isinstance(e, RateLimited):
            headers["Retry-After"] = str(e.retry_after)
        return abort_json_or_html(status_of(e), e.code, e.message, e.fields, headers)

    @app.errorhandler(SecurityError)
    def untrusted_host(e: SecurityError):
        # A Host outside TRUSTED_HOSTS leaves the request without a URL adapter, so no page
        # can be built (url_for fails: it was a 500): JSON under /api/, plain text elsewhere.
        message = "This installation does not answer to that host name."
        if request.path.startswith("/api/"):
            return jsonify(error_body("bad_request", message)), 400
        return message + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"}

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = (e.name or "error").lower().replace(" ", "_")
        # Keep what the exception says about itself, e.g. Allow on a 405.
        headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
        message = e.description or e.name
        # werkzeug's own sentence is English: ours, translated, for a reader of another
        # language (English readers keep werkzeug's, byte for byte).
        ours = HTTP_MESSAGES.get(e.code)
        if ours and message == type(e).description and shown(ours) != ours:
            message = ours
        return abort_json_or_html(e.code or 500, code, message, headers=headers)

    @app.errorhandler(sqlite3.OperationalError)
    def storage_error(e: sqlite3.OperationalError):
        # Disk full, read-only file, lock timeout: nothing was stored; the phone keeps
        # the check-in in its outbox and sends it again.
        app.logger.error("storage unavailable: %s", e)
        return abort_json_or_html(
            503,
            "storage_unavailable",
            N_("The clinic's server cannot save right now. Try again shortly."),
            headers={"Retry-After": "30"},
        )
