"""App-wide web plumbing: CSRF for forms, proxy headers, JSON bodies, the service worker,
OpenAPI document and health (the manifest, which carries the clinic's name, is admin's)."""

import ipaddress
import logging
import re
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, current_app, jsonify, make_response, request, send_from_directory
from flask.templating import Environment
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from companion.contract import document, operation
from companion.db import get_db, parse_iso
from companion.errors import N_, ApiError, Conflict
from companion.reminders import health as push_health
from companion.security import check_api_request, json_limit

csrf = CSRFProtect()

PACKAGE = Path(__file__).parent


def service_worker_path() -> Path:
    """Find sw.js: inside the installed package, else the source tree's service-worker/."""
    packaged = PACKAGE / "sw.js"
    return packaged if packaged.exists() else PACKAGE.parent / "service-worker" / "sw.js"


class _RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f"the key {key!r} is given twice")
        self.key = key


def _object(pairs: list[tuple[str, object]]) -> dict:
    """Build a JSON object, refusing a key given twice (RFC 8259 leaves the value undefined)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def _not_json(literal: str) -> float:
    raise ValueError(f"{literal} is not JSON")  # Python's parser takes NaN and Infinity


def strict_loads(raw: str | bytes) -> object:
    """Parse JSON as any other reader would: a key twice in one object (_RepeatedKey) and the
    NaN/Infinity literals are errors (ValueError), not the last value and a float; so is
    nesting deeper than Python's stack (RecursionError, a 500 on every caller that forgot it)."""
    try:
        return current_app.json.loads(raw, object_pairs_hook=_object, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def body() -> object:
    """Return the parsed JSON body ({} when empty); a malformed body is a 400.

    Stricter than Python's parser: a key twice in one object and the NaN/Infinity literals
    are malformed too, so what we act on is what any other JSON reader sees.
    """
    limit, message = json_limit()
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > limit:  # sent without a Content-Length, and too long
        raise ApiError(413, "too_large", message)
    if not raw.strip():
        return {}
    try:
        data = strict_loads(raw)
    except _RepeatedKey as repeated:
        raise ApiError(
            400, "bad_json", N_("The body gives the key %(key)s twice.", key=repeated.key[:50])
        ) from None
    except ValueError:
        data = None
    if data is None:
        raise ApiError(400, "bad_json", N_("The body is not valid JSON."))
    return data


def created(payload: dict, status: int = 201):
    return jsonify(payload), status


def public_url(path: str) -> str:
    """Return an absolute link to `path` on this installation (PUBLIC_URL when configured).

    Without PUBLIC_URL the link is built from the request's own address, but only from one
    we trust: the Host header is the caller's to write, and an invite link built from
    `Host: evil.example` would hand the client's sign-in token to evil.example.
    """
    base = current_app.config["PUBLIC_URL"]
    if not base:
        if not trusted_request_host():
            raise Conflict(
                "Invite links need this installation's address: set COMPANION_PUBLIC_URL"
                " (or list its host names in COMPANION_TRUSTED_HOSTS).",
                "public_url_required",
            )
        base = request.host_url
    return base.rstrip("/") + path


def installation_url() -> str | None:
    """Return this installation's address for links (as public_url), or None when unknown."""
    try:
        return public_url("")
    except Conflict:
        return None


def trusted_request_host() -> bool:
    """Tell whether links may be built from this request's host: a loopback address (`run` on
    this computer), or any host once TRUSTED_HOSTS is set, since Flask refuses the others."""
    if current_app.config.get("TRUSTED_HOSTS"):
        return True
    try:
        name = urlsplit("//" + request.host).hostname or ""
    except ValueError:  # a malformed Host header
        return False
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# Invite tokens sign a phone in, calendar tokens open a client's schedule, an email's check-in
# link files a check-in and its unsubscribe link turns email off: they must not reach access
# logs (paths, referrers, Location).
INVITE_TOKEN = re.compile(
    r"(/i/|/api/invites/|/calendar/|/checkin/link/|/api/checkin-links/|/email/unsubscribe/)"
    r"[^/?#\s\"]+"
)


# A client search (`?q=Erin`) names a client: kept out of Companion's own logs (gunicorn's and
# the development server's keep the query string), which erasure cannot reach.
SEARCH_TEXT = re.compile(r"((?:^|[?&])q=)[^&#\s\"]*")


def redact_tokens(text: str) -> str:
    """Replace the tokens in a logged line (a path, a referrer) with `[token]`, and the text
    of a client search with `[search]`."""
    return SEARCH_TEXT.sub(r"\1[search]", INVITE_TOKEN.sub(r"\1[token]", text))


class RedactTokens(logging.Filter):
    """Redact invite tokens from a request log: the development server's (werkzeug's, a tuple
    of arguments) and granian's access log (a dict)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact_tokens(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


REDACT_TOKENS = RedactTokens()


def shell_page(view):
    """Let the service worker keep this page for offline use: only for a page that carries no
    health data, no name and no secret (sw.js CACHEABLE_PAGES lists the same pages)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        resp = make_response(view(*args, **kwargs))
        if resp.status_code == 200:
            resp.headers["Cache-Control"] = "no-cache, private"
        return resp

    return wrapped


def exempt_api(*blueprints) -> None:
    """The JSON API's CSRF defence is its content type and Origin check, not a token: an
    offline check-in replayed hours later must still be accepted."""
    for bp in blueprints:
        csrf.exempt(bp)


# What a dict answers to as attributes (its methods): nothing else, since a dict has no __dict__.
DICT_ATTRIBUTES = frozenset(dir(dict))


class Templates(Environment):
    """Flask's Jinja environment, with `row.name` on a plain dict read at once.

    Jinja's `x.name` tries getattr(x, "name") first and, for a dict, catches the AttributeError
    before reading x["name"]; our templates read stored rows (dicts) that way, thousands of
    times on a year-long client's page. For a plain dict and a name that is not one of dict's
    own attributes the answer is the same, without the exception.
    """

    def getattr(self, obj, attribute: str):
        if type(obj) is dict and attribute not in DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def local_time(value, timezone: str) -> str:
    """Show a stored UTC moment (text or datetime) as a person in `timezone` reads it."""
    if not value:
        return ""
    moment = parse_iso(value) if isinstance(value, str) else value
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def init_app(app: Flask) -> None:
    @app.before_request  # before the CSRF check, which reads every field's name
    def nameless_fields():
        # No browser sends this (English, not in the catalogs): a hand-made multipart body.
        if (
            request.mimetype == "multipart/form-data"
            and not request.path.startswith("/api/")
            and (None in request.form or None in request.files)
        ):
            raise BadRequest("Every field of a form needs a name: one part has none.")

    csrf.init_app(app)
    logging.getLogger("werkzeug").addFilter(REDACT_TOKENS)  # added once: the same object
    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        # Trust exactly as many proxy hops as the operator configured, no more.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    app.add_template_filter(parse_iso, "parse_iso")
    app.add_template_filter(local_time, "local_time")

    @app.before_request
    def guard_api():
        if request.path.startswith("/api/"):
            error = check_api_request()
            if error is not None:
                raise error

    @app.get("/api/openapi.json")
    @operation(
        "This document (OpenAPI 3.1, built from the models)",
        tag="meta",
        reply={"type": "object"},
        errors=(),
        public=True,
    )
    def openapi():
        resp = jsonify(document(current_app))
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @app.get("/sw.js")
    def service_worker():
        path = service_worker_path()
        resp = send_from_directory(path.parent, path.name, mimetype="text/javascript", max_age=0)
        # The browser checks for a new worker on navigation; never let a cache pin it.
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["Service-Worker-Allowed"] = "/"
        return resp

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(
            PACKAGE / "static" / "icons", "favicon-32.png", mimetype="image/png", max_age=86400
        )

    @app.get("/healthz")
    def health():
        """Tell a load balancer whether this worker can reach its database."""
        try:
            get_db().conn.execute("SELECT 1 FROM _sqlite_migrations LIMIT 1").fetchone()
        except Exception as e:  # any failure means: take me out of rotation
            current_app.logger.warning("health check failed: %s", e)
            return jsonify({"status": "unavailable"}), 503
        # 200 either way: the worker serves; `push` says whether reminders can go out.
        return jsonify({"status": "ok", "push": push_health.status(current_app.config, get_db())})

    @app.context_processor
    def push_banner():
        return push_health.banner(current_app.config)
