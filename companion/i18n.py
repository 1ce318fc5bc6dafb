"""The client's language: the languages we ship, and which one a request is shown in.

Client-facing words go through flask-babel's gettext catalogs (companion/translations/, compiled
.mo files committed beside their .po; tests/test_i18n.py checks both are complete and in sync).
Practitioner pages stay English. A request's language:
- a signed-in client: their `language`;
- a signed-in practitioner: English;
- anyone else (the start page, an invite link before the tap): `g.language` when a page knows
  whose it is (the invite's client), else the browser's Accept-Language best match, else English.
Outside a request (the dispatcher's push and email texts) callers choose with `in_language`.
"""

import hashlib
import json
from contextlib import contextmanager
from typing import Literal

from babel import Locale
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale, get_translations
from flask_babel.speaklater import LazyString
from flask_login import current_user
from jinja2 import pass_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

# Defined once: the contract's Literal, the checks and the settings page's choices use these.
LANGUAGES = ("en", "es")
Language = Literal[LANGUAGES]  # Literal["en", "es"]
DEFAULT_LANGUAGE = "en"
# Each language's name in itself, as a language menu shows it.
LANGUAGE_NAMES = {"en": "English", "es": "Español"}

babel = Babel()


def language_of(row: dict | None) -> str:
    """Return a client row's language, English when it has none we ship."""
    language = (row or {}).get("language")
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if current_user and current_user.is_authenticated:
        return language_of(current_user.row) if current_user.is_client else DEFAULT_LANGUAGE
    chosen = g.get("language")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language this request's words are in ("en" or "es")."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def page_language() -> str:
    """Declare a client page's language (its `<html lang>` and Content-Language header)."""
    g.page_language = current_language()
    return g.page_language


# One Locale per language: force_locale() would parse a new one on every in_language(), and a
# new Locale object makes _catalog() look the catalog up again.
_LOCALES = {language: Locale.parse(language) for language in LANGUAGES}


@contextmanager
def in_language(language: str | None):
    """Translate the words made inside this block into `language` (a client's, say)."""
    with force_locale(_LOCALES.get(language) or _LOCALES[DEFAULT_LANGUAGE]):
        yield


# flask.g's object without going through its proxy each time (`g.get()` is ~4x dearer, and a
# client page asks for 44 words): the proxy's _get_current_object, which werkzeug documents for
# this ("useful for performance"); it raises RuntimeError outside an app context.
_app_g = g._get_current_object


def _catalog():
    """This request's translations, as flask-babel's get_translations() gives them, looked up
    once per request and locale.

    flask-babel looks the locale and catalog up again on every call (nine context lookups, the
    locale's name built): ~25 us for each `_()` in a template, and a client page has dozens.
    Its per-request state (`g._flask_babel.babel_locale`, which the locale selector, refresh()
    and force_locale set) says when to look again: a new locale object means another language.
    """
    try:
        app_g = _app_g()
    except RuntimeError:  # no app context (a script): flask-babel's own default
        return get_translations()
    ctx = app_g.get("_flask_babel")
    locale = getattr(ctx, "babel_locale", None)
    if locale is None:  # not chosen yet in this request (or refreshed)
        return get_translations()
    found = getattr(ctx, "companion_catalog", None)
    if found is None or found[0] is not locale:
        found = ctx.companion_catalog = (locale, get_translations())
    return found[1]


def gettext(string: str, **variables) -> str:
    """flask-babel's gettext (`%`-formatted only when given variables) through _catalog():
    the Python side's words (triage's sentences, the chart's) look the catalog up once too."""
    text = _catalog().ugettext(string)
    return text % variables if variables else text


def lazy_gettext(string: str, **variables) -> LazyString:
    """gettext() when the text is shown (module-level words: clinical.py's scales, say)."""
    return LazyString(gettext, string, **variables)


def translate(msgid: str, values: dict | None = None) -> str:
    """A message (an error's, say) in this request's language; English returned untouched."""
    if not has_request_context() or current_language() == DEFAULT_LANGUAGE:
        return msgid % values if values else msgid
    # A value that is itself a marked word (NotFound's record name) is shown translated too.
    values = {
        k: translate(v.msgid) if hasattr(v, "msgid") else v for k, v in (values or {}).items()
    }
    return gettext(msgid, **values)


@pass_context
def _template_gettext(context, string, **variables):
    """A template's _() and {% trans %}, as Jinja's newstyle gettext: escaped, always formatted."""
    rv = _catalog().ugettext(string)
    if context.eval_ctx.autoescape:
        rv = Markup(rv)
    # Formatting a text without a % (most) gives it back unchanged: skipped.
    return rv % variables if variables or "%" in rv else rv


@pass_context
def _template_ngettext(context, singular, plural, num, **variables):
    variables.setdefault("num", num)
    rv = _catalog().ungettext(singular, plural, num)
    if context.eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


# The scripts' words (client_messages()) as the pages write them (`client_messages()|tojson`): they
# are the catalog's words and nothing else, so each language's JSON is made once per process
# instead of ~45 gettext lookups and a JSON dump on every client page.
_CLIENT_MESSAGES_JSON: dict[str, Markup] = {}


def client_messages_json() -> Markup:
    """client_messages() in this request's language through the tojson filter, once per language."""
    from companion.client_words import client_messages  # it imports this module's gettext

    locale = str(get_locale())
    found = _CLIENT_MESSAGES_JSON.get(locale)
    if found is None:
        env = current_app.jinja_env
        found = env.filters["tojson"](EvalContext(env), client_messages())
        _CLIENT_MESSAGES_JSON[locale] = found
    return found


def init_app(app: Flask) -> None:
    from companion.client_words import page_problem  # it imports this module's gettext

    babel.init_app(app, locale_selector=select_locale, default_domain="messages")
    app.jinja_env.globals["current_language"] = current_language
    # Templates' _(), gettext and ngettext through the per-request catalog (see _catalog).
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _catalog().ugettext(s),
        ngettext=lambda s, p, n: _catalog().ungettext(s, p, n),
        pgettext=lambda c, s: _catalog().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalog().unpgettext(c, s, p, n),
        newstyle=True,
    )
    # _() and {% trans %} straight to the catalog: Jinja's own route is _ -> gettext -> the
    # lambda above, three context.call()s a word; these do what its newstyle gettext does.
    app.jinja_env.globals.update(_=_template_gettext, gettext=_template_gettext)
    app.jinja_env.globals["ngettext"] = _template_ngettext
    app.jinja_env.globals["page_language"] = page_language
    app.jinja_env.globals["client_messages_json"] = client_messages_json
    app.jinja_env.globals["page_problem"] = page_problem
    app.jinja_env.globals["language_names"] = LANGUAGE_NAMES

    @app.after_request
    def content_language(response):
        # A client page says its language (the service worker keeps its offline page in it),
        # and which offline page goes with it: that language and the clinic's face in the
        # header (name, logo, accent), so the cached copy is fetched again when either moves.
        language = g.get("page_language")
        if language and response.mimetype == "text/html":
            response.headers["Content-Language"] = language
            response.headers[SHELL_HEADER] = shell_of(language, g.get("clinic_face"))
        return response


SHELL_HEADER = "X-Companion-Shell"


def shell_of(language: str, face: dict | None) -> str:
    """Name the offline page a client page goes with (see content_language above): its
    language and the clinic's header and phone number (its call button)."""
    seen = [language] + (
        [face["display_name"], face["logo_url"], face["accent_color"], face["phone"]]
        if face
        else []
    )
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()[:16]
