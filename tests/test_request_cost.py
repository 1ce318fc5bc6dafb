"""What the per-request shortcuts (issue 16) keep: the same words, headers and cookies as the
long way round (benchmarks/percall.py measures what they save)."""

from flask_babel import refresh

from companion.i18n import in_language


def test_template_words_follow_the_language_inside_one_request(app):
    """Templates look the catalog up once per request and locale: a block in another language
    (an email to a client rendered during someone else's request) and a refresh still switch."""
    template = app.jinja_env.from_string("{{ _('Today') }}")
    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        assert template.render() == "Hoy"
        with in_language("en"):
            assert template.render() == "Today"
        assert template.render() == "Hoy"
        with in_language("es"):
            assert template.render() == "Hoy"
        refresh()
        assert template.render() == "Hoy"
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert template.render() == "Today"
        with in_language("es"):
            assert template.render() == "Hoy"
        assert template.render() == "Today"


def test_a_view_keeps_its_own_security_headers_and_gets_the_others(app):
    @app.get("/own-headers")
    def own_headers():
        return "x", 200, {"Referrer-Policy": "no-referrer", "cache-control": "max-age=5"}

    resp = app.test_client().get("/own-headers")
    assert resp.headers.getlist("Referrer-Policy") == ["no-referrer"]
    assert resp.headers.getlist("Cache-Control") == ["max-age=5"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    plain = app.test_client().get("/healthz")
    assert plain.headers["Referrer-Policy"] == "same-origin"
    assert plain.headers["Cache-Control"] == "no-store"


def test_session_cookies_follow_a_new_secret_key(app):
    """The session's signing serializer is kept per key: a rotated key signs new cookies, the
    old key (in SECRET_KEY_FALLBACKS) still opens old ones, and without it they are refused."""

    @app.get("/put")
    def put():
        from flask import session

        session["n"] = 1
        return "ok"

    @app.get("/read")
    def read():
        from flask import session

        return str(session.get("n"))

    browser = app.test_client()
    browser.get("/put")
    assert browser.get("/read").text == "1"
    old = app.secret_key
    app.secret_key = "another key of enough length for the test, 2026"
    app.config["SECRET_KEY_FALLBACKS"] = [old]
    assert browser.get("/read").text == "1"
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert browser.get("/read").text == "None"


def test_the_scripts_words_are_made_once_per_language_and_stay_each_languages(app):
    from companion.client_words import client_messages
    from companion.i18n import client_messages_once

    for language in ("es", "en", "es"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert client_messages_once() == client_messages()
            assert (
                client_messages_once()["checkinSent"]
                == {
                    "es": client_messages()["checkinSent"],
                    "en": "Check-in sent.",
                }[language]
            )
    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        assert client_messages_once()["checkinSent"] != "Check-in sent."
