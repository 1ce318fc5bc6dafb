"""What every request and answer is checked for: no cross-site writes, no open redirect,
security headers on every answer (errors included).
"""

from urllib.parse import urlsplit

from flask import Flask, current_app, request

from companion.errors import HTTP_MESSAGES, N_, ApiError

SIMPLE_CONTENT_TYPES = {
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
    "",
}


def safe_next(target: str | None) -> str | None:
    """Return target if it is a local path, else None (no open redirect)."""
    if not target:
        return None
    target = target.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):  # a newline breaks the header
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # "//[": an IPv6 bracket left open
        return None
    if (
        not target.startswith("/")
        or target.startswith("//")
        or target.startswith("/\\")
        or "\\" in target
        or parts.scheme
        or parts.netloc
    ):
        return None
    return target.rstrip("?") or "/"


CROSS_ORIGIN = N_("Cross-origin requests are not allowed.")
# The largest JSON body any route takes. The largest legitimate one is a protocol PUT: 100 steps,
# each with a 60-character title and a 300-character text in English and Spanish, is 98 kB as
# sent (indented), and 890 kB even if every character is an emoji written as \u escapes
# (tests/test_bad_input.py builds both). Images (photos, the logo) keep their own limits under
# MAX_CONTENT_LENGTH; JSON past this is refused before it is read.
JSON_MAX_BYTES = 1024 * 1024
JSON_TOO_LARGE = N_("The body is too large: a JSON body can be at most 1 MB.")
SEND_AN_IMAGE = N_(
    "Send the image as the body with Content-Type image/jpeg, image/png, image/webp or image/heic."
)


def json_limit() -> tuple[int, str]:
    """The most bytes of JSON a route reads, and what a longer body is told (an operator's
    lower MAX_CONTENT_LENGTH wins)."""
    cap = current_app.config.get("MAX_CONTENT_LENGTH")
    if cap is not None and cap < JSON_MAX_BYTES:
        return cap, HTTP_MESSAGES[413]
    return JSON_MAX_BYTES, JSON_TOO_LARGE


def check_api_request() -> ApiError | None:
    """Refuse cross-site writes: unsafe API calls need a non-form body type and our Origin."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return None
    mimetype = request.mimetype or ""
    contract = getattr(current_app.view_functions.get(request.endpoint), "__contract__", None)
    if contract is None or not contract.body_type.startswith("image/"):
        limit, message = json_limit()
        # Also bounds what web.body() reads of a body sent without a Content-Length: werkzeug
        # stops there without a word, so one byte more tells web.body() the body went on.
        request.max_content_length = limit + 1
        if (request.content_length or 0) > limit:
            return ApiError(413, "too_large", message)
    # A cross-site HTML form can only send the simple types; requiring JSON (or an
    # image for uploads) forces a CORS preflight that we never grant. A request with
    # no body at all carries no form, and the Origin check below still applies.
    bodyless = not mimetype and not request.content_length
    if mimetype in SIMPLE_CONTENT_TYPES and not bodyless:
        # Said for what the route takes: a photo or logo upload is an image, not JSON.
        if contract is not None and contract.body_type.startswith("image/"):
            return ApiError(415, "unsupported_media_type", SEND_AN_IMAGE)
        return ApiError(415, "unsupported_media_type", N_("Send the body as application/json."))
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        expected = f"{request.scheme}://{request.host}"
        if origin.rstrip("/") != expected:
            return ApiError(403, "bad_origin", CROSS_ORIGIN)
    elif origin == "null" or request.headers.get("Sec-Fetch-Site") == "cross-site":
        return ApiError(403, "bad_origin", CROSS_ORIGIN)
    return None


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


# Added to every response that does not set its own (built once, not per request).
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    # Invite links carry a token: it may go to our own pages (CSRF checks over HTTPS need
    # a same-origin Referer) but never to another site.
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(self), geolocation=(), microphone=()"),
)


def security_headers(resp):
    h = resp.headers
    have = set(h.keys(lower=True))
    h.extend([(k, v) for k, v in SECURITY_HEADERS if k.lower() not in have])
    if request.is_secure:
        h.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        # The remember cookie is set before this hook runs; mark it Secure over HTTPS.
        cookies = h.getlist("Set-Cookie")
        if cookies:
            del h["Set-Cookie"]
            for c in cookies:
                h.add("Set-Cookie", c if "; Secure" in c else c + "; Secure")
    # Anything that may carry client data is never stored by a browser or proxy.
    if "cache-control" not in have:
        h["Cache-Control"] = "no-store"
    return resp


def init_app(app: Flask) -> None:
    # Registered before every other part's after_request (create_app calls this first), so it
    # runs last: it sees the cookies flask-login and the pages set, and the headers they chose.
    app.after_request(security_headers)
