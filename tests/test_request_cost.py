"""What the per-request shortcuts (issue 16) keep: the same words, headers and cookies as the
long way round (benchmarks/percall.py measures what they save)."""

import json

from conftest import checkin_body
from flask_babel import refresh
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)

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
    from companion.i18n import client_messages_json

    for language in ("es", "en", "es"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert json.loads(client_messages_json()) == client_messages()
            assert (
                json.loads(client_messages_json())["checkinSent"]
                == {
                    "es": client_messages()["checkinSent"],
                    "en": "Check-in sent.",
                }[language]
            )
    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        assert json.loads(client_messages_json())["checkinSent"] != "Check-in sent."


def test_template_words_are_escaped_and_formatted_as_jinjas_own(app):
    """_() and {% trans %} go straight to the catalog, with Jinja's newstyle rules kept."""
    source = (
        "{{ _('Hello, %(name)s', name=who) }}|{% trans %}Today{% endtrans %}|"
        "{% trans count=n %}{{ count }} photo{% pluralize %}{{ count }} photos{% endtrans %}|"
        "{{ _('100%% sure') }}"
    )
    template = app.jinja_env.from_string(source)
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert template.render(who="<b>", n=2) == "Hello, &lt;b&gt;|Today|2 photos|100% sure"
    with app.test_request_context("/", headers={"Accept-Language": "es"}):
        assert template.render(who="Ana", n=1).split("|")[1] == "Hoy"


def test_spanish_and_english_clients_interleaved_in_one_process_get_their_own_words(world):
    """Nothing cached per process or per template carries one client's language to the next."""
    world.c1.patch("/api/me", {"language": "es"})
    for _ in range(3):
        for phone, words, other in (
            (world.c1, ("Cuidados de hoy", "Tu recuperación hasta ahora"), "Today's aftercare"),
            (world.c2, ("Today's aftercare",), "Cuidados de hoy"),
        ):
            page = phone.get("/").get_data(as_text=True)
            assert all(w in page for w in words) and other not in page
            checkin = phone.get("/checkin").get_data(as_text=True)
            assert ("Enviar registro" in checkin) == (phone is world.c1)
            assert ("Send check-in" in checkin) == (phone is world.c2)
            message = phone.post("/api/checkins", checkin_body(redness=1, pain=1)).json
            spanish = message["assessment"]["message"].startswith("Un enrojecimiento")
            assert spanish == (phone is world.c1)


def test_templates_read_a_dict_as_jinja_does(app):
    """`row.name` on a plain dict skips Jinja's failed getattr: every answer stays Jinja's own,
    dict methods, missing keys, keys named like methods and dict subclasses included."""
    from flask import Flask

    class Row(dict):
        pass

    row = {"a": 1, "items": "X", "get": "G", "none": None}
    names = ("a", "items", "get", "none", "missing", "__class__", "keys")
    source = (
        "".join(
            f"{{{{ {v}.{n} is defined }}}}:{{{{ {v}.{n} }}}}|"
            for v in ("row", "sub")
            for n in names
        )
        + "{{ row.keys()|list }}{{ row.missing|default('-') }}"
    )
    sub = Row(row)
    stock = Flask("stock").jinja_env.from_string(source).render(row=row, sub=sub)
    ours = app.jinja_env.from_string(source).render(row=row, sub=sub)
    assert type(app.jinja_env).__name__ == "Templates"
    assert ours == stock
    assert "True:1|True:&lt;built-in method items" in ours  # a method stays the method
    assert "False:|" in ours  # a missing key is undefined
