"""The client's language (issue 15): the `language` field, pages in it, complete catalogs."""

import gettext
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from conftest import checkin_body
from flask_babel import get_translations
from test_isolation import template_world_fixture, world_fixture  # noqa: F401  (fixtures)

from companion import i18n
from companion.db import iso
from companion.i18n import LANGUAGES
from companion.reminders import links

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "companion" / "translations"
# The same options as scripts/catalogs (the README's `pybabel extract`).
EXTRACT = [
    "-F",
    "babel.cfg",
    "-k",
    "lazy_gettext",
    "-k",
    "_l",
    "-k",
    "N_",
    "--no-location",
    "--sort-output",
]


def html_lang(page: str) -> str:
    return re.search(r'<html lang="([^"]*)"', page).group(1)


# The field ----------------------------------------------------------------------------------


def test_practitioner_sets_the_clients_language(world):
    made = world.p1.post("/api/clients", {"name": "Lucía", "language": "es"})
    assert made.status_code == 201, made.json
    assert made.json["language"] == "es"
    assert world.p1.post("/api/clients", {"name": "Ann"}).json["language"] == "en"
    url = f"/api/clients/{made.json['id']}"
    assert world.p1.get(url).json["language"] == "es"
    changed = world.p1.patch(url, {"language": "en"})
    assert changed.status_code == 200 and changed.json["language"] == "en"
    listed = world.p1.get("/api/clients").json["clients"]
    assert {c["name"]: c["language"] for c in listed}["Lucía"] == "en"


@pytest.mark.parametrize("bad", ["fr", "ES", "", 1, ["es"]])
def test_a_language_we_do_not_ship_is_422_naming_the_field(world, bad):
    r = world.p1.post("/api/clients", {"name": "Lucía", "language": bad})
    assert r.status_code == 422 and "language" in r.json["error"]["fields"], r.json
    client_id = world.client1["id"]
    r = world.p1.patch(f"/api/clients/{client_id}", {"language": bad})
    assert r.status_code == 422 and "language" in r.json["error"]["fields"], r.json
    r = world.c1.patch("/api/me", {"language": bad})
    assert r.status_code == 422 and "language" in r.json["error"]["fields"], r.json
    assert world.c1.get("/api/me").json["client"]["language"] == "en"


def test_the_client_changes_their_own_language(world):
    r = world.c1.patch("/api/me", {"language": "es"})
    assert r.status_code == 200 and r.json["client"]["language"] == "es"
    assert world.p1.get(f"/api/clients/{world.client1['id']}").json["language"] == "es"
    assert html_lang(world.c1.get("/").get_data(as_text=True)) == "es"


def test_openapi_declares_the_languages(world):
    schemas = world.anon.get("/api/openapi.json").json["components"]["schemas"]
    assert schemas["Client"]["properties"]["language"]["enum"] == list(LANGUAGES)
    assert "language" in schemas["Client"]["required"]
    field = schemas["ClientInput"]["properties"]["language"]  # optional: or null (ignored)
    assert {"enum": list(LANGUAGES)} in field["anyOf"], field


# Pages --------------------------------------------------------------------------------------


def test_an_english_clients_pages_are_english(world):
    page = world.c1.get("/settings").get_data(as_text=True)
    assert html_lang(page) == "en" and ">Settings</a>" in page


SPANISH = {
    "/": ("Hola, Alice", "Cuidados de hoy", "Próximo recordatorio", "Tu recuperación hasta ahora"),
    "/checkin": ("¿Cómo está tu piel?", "Rosa suave", "Enrojecimiento", "Enviar registro"),
    "/reminders": ("Tus recordatorios",),
    "/settings": ("Zona horaria de tus recordatorios", "Horas de silencio", "Guardar ajustes"),
    "/welcome": ("Te damos la bienvenida, Alice", "Activar recordatorios"),
}
# (Protocol steps' words are the clinic's protocol's, in its languages: not checked here.)
ENGLISH = ("Today's aftercare", "How is your skin?", "Send check-in", "Save settings", ">Redness<")


@pytest.mark.parametrize("path", SPANISH)
def test_a_spanish_clients_pages_are_spanish(world, path):
    world.c1.patch("/api/me", {"language": "es"})
    if path == "/reminders":
        # A session three days old has reminders due at any hour; the world's (two hours
        # old) has none between 21:00 and 08:00, its steps held for the quiet hours.
        world.new_session(world.p1, world.client1["id"], hours_ago=72)
    r = world.c1.get(path)
    page = r.get_data(as_text=True)
    assert html_lang(page) == "es" and r.headers["Content-Language"] == "es"
    assert ">Ajustes</a>" in page and ">Settings</a>" not in page
    for words in SPANISH[path]:
        assert words in page, words
    left = [re.search(f".{{80}}{re.escape(w)}.{{80}}", page, re.S) for w in ENGLISH if w in page]
    assert not left, [m.group(0) if m else None for m in left]
    # Dates in the client's words and locale (humane.py through Babel): "Hoy 19:00".
    said = re.findall(r'<time[^>]*datetime="[^"]+">([^<]+)</time>', page)
    assert all(
        re.fullmatch(r"(Hoy|Mañana|Ayer|[A-ZÁÉÍÓÚ][a-záéíóú]+) \d{1,2}:\d\d", w) for w in said
    ), said
    assert path not in ("/", "/reminders") or said
    # The scripts' words come with the page, in Spanish too.
    words = json.loads(re.search(r'id="client-messages">([^<]*)<', page).group(1))
    assert words["checkinSaved"] == "Guardado en este teléfono; se enviará cuando tengas conexión."


def test_the_page_carries_every_word_the_scripts_use(world):
    page = world.c1.get("/checkin").get_data(as_text=True)
    words = json.loads(re.search(r'id="client-messages">([^<]*)<', page).group(1))
    used = set()
    for name in ("app.js", "checkin.js"):
        source = (ROOT / "companion" / "static" / "js" / name).read_text()
        used |= set(re.findall(r"\b(?:MESSAGES|M)\.(\w+)", source))
    plurals = {"photosSent", "photosReady", "queued"}  # functions in app.js over the words below
    assert used - plurals and not (used - plurals - set(words)), used - set(words)
    assert {"photoSent", "photosSentMany", "photoReady", "photosReadyMany", "queuedOne"} <= set(
        words
    )


def test_a_spanish_clients_assessments_are_spanish(world):
    world.c1.patch("/api/me", {"language": "es"})
    calm = world.c1.post("/api/checkins", checkin_body(redness=1, swelling=0, pain=1)).json
    assert calm["assessment"]["status"] == "expected"
    assert calm["assessment"]["message"].startswith("Un enrojecimiento como el tuyo es normal")
    urgent = world.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True})).json
    assert urgent["assessment"]["message"].startswith("Llama ya a tu clínica al")
    page = world.c1.get("/").get_data(as_text=True)
    assert "Llama ya a tu clínica al" in page
    # An English client's stay English.
    english = world.c2.post("/api/checkins", checkin_body(warning_signs={"pus": True})).json
    assert english["assessment"]["message"].startswith("Contact your clinic now")


def test_an_invite_speaks_its_clients_language(world):
    world.p1.patch(f"/api/clients/{world.client1['id']}", {"language": "es"})
    token = world.p1.post(f"/api/clients/{world.client1['id']}/invites").json["token"]
    english_browser = {"Accept-Language": "en-GB,en;q=0.9"}
    page = world.anon.get(f"/i/{token}", headers=english_browser).get_data(as_text=True)
    assert html_lang(page) == "es" and "Abrir mis cuidados" in page
    unknown = world.anon.get("/i/not-a-real-token", headers={"Accept-Language": "es"})
    assert unknown.status_code == 404
    assert "Este enlace de invitación no es válido." in unknown.get_data(as_text=True)


def test_the_offline_page_comes_in_the_language_asked(world):
    for lang, words in (("es", "No tienes conexión"), ("en", "You're offline")):
        r = world.anon.get(f"/offline?lang={lang}")
        assert r.headers["Content-Language"] == lang and words in r.get_data(as_text=True)
    notification = re.search(
        r'id="notification-words">([^<]*)<',
        world.anon.get("/offline?lang=es").get_data(as_text=True),
    )
    assert json.loads(notification.group(1))["title"] == "Nuevo recordatorio de cuidados"
    # A language we do not ship is the visitor's own (here: English).
    assert world.anon.get("/offline?lang=fr").headers["Content-Language"] == "en"


def test_public_pages_follow_the_browser_until_someone_is_known(world):
    es = {"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}
    assert html_lang(world.anon.get("/start", headers=es).get_data(as_text=True)) == "es"
    fr = {"Accept-Language": "fr-FR,fr;q=0.9"}
    assert html_lang(world.anon.get("/start", headers=fr).get_data(as_text=True)) == "en"
    assert html_lang(world.anon.get("/start").get_data(as_text=True)) == "en"


def test_practitioner_pages_stay_english_even_for_a_spanish_browser(world):
    es = {"Accept-Language": "es"}
    assert html_lang(world.p1.get("/queue", headers=es).get_data(as_text=True)) == "en"
    assert html_lang(world.anon.get("/clinic/login", headers=es).get_data(as_text=True)) == "en"


# Catalogs -----------------------------------------------------------------------------------


def catalog(language: str):
    with open(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f)


def test_every_client_facing_string_is_in_every_catalog(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", *EXTRACT]
        + ["-o", str(pot), "companion"],
        cwd=ROOT,
        check=True,
    )
    with open(pot, "rb") as f:
        wanted = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
    assert len(wanted) > 5  # the extraction found the marked strings
    for language in LANGUAGES:
        have = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog(language) if m.id}
        missing = sorted(wanted - have)
        assert not missing, f"{language}: run scripts/catalogs and translate {missing[:10]}"


def test_the_spanish_catalog_is_complete_and_not_fuzzy():
    for m in catalog("es"):
        if not m.id:
            continue
        strings = [m.string] if isinstance(m.string, str) else list(m.string)
        assert all(strings), f"es: no translation for {m.id!r}"
        assert not m.fuzzy, f"es: fuzzy translation for {m.id!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogs_match_their_po(language):
    """The app reads the committed .mo: it must say what the .po says (scripts/catalogs)."""
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with open(folder / "messages.mo", "rb") as f:
        compiled = gettext.GNUTranslations(f)._catalog
    expected = {}
    for m in catalog(language):
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, str):
            if m.string:
                expected[m.id] = m.string
        elif all(m.string):
            expected.update({(m.id[0], i): s for i, s in enumerate(m.string)})
    compiled = {k: v for k, v in compiled.items() if k != ""}  # without the header
    assert compiled == expected, f"{language}: run scripts/catalogs (pybabel compile)"


def test_the_words_shortcut_reads_flask_babels_catalog(app):
    """_catalog() reaches flask.g past its proxy: it must still be this context's g, and outside
    any context it must fall back to flask-babel's own default (a script's words)."""
    with pytest.raises(RuntimeError):  # the fallback's signal, outside an app context
        i18n._app_g()
    assert i18n._catalog().ugettext("Settings") == "Settings"
    with app.app_context() as app_ctx, app.test_request_context(headers={"Accept-Language": "es"}):
        assert i18n._app_g() is app_ctx.g
        spanish = i18n._catalog()
        assert spanish is get_translations() and spanish.ugettext("Settings") == "Ajustes"
        assert i18n._catalog() is spanish
        with i18n.in_language("en"):
            assert i18n._catalog() is get_translations()
            assert i18n._catalog().ugettext("Settings") == "Settings"
        assert i18n._catalog() is spanish


def test_the_settings_page_changes_the_language(world):
    page = world.c1.get("/settings").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "timezone": "Europe/London", "language": "es"}
    form |= {"quiet_start": "21:00", "quiet_end": "08:00"}
    saved = world.c1.http.post("/settings", data=form).get_data(as_text=True)
    assert html_lang(saved) == "es" and ">Ajustes</a>" in saved
    assert world.c1.get("/api/me").json["client"]["language"] == "es"
    form["language"] = "fr"
    refused = world.c1.http.post("/settings", data=form).get_data(as_text=True)
    assert 'class="field-error"' in refused
    assert world.c1.get("/api/me").json["client"]["language"] == "es"


def test_an_expired_link_from_a_spanish_clients_email_says_so_in_spanish(world):
    world.c1.patch("/api/me", {"language": "es"})
    session_id = world.p1.get(f"/api/clients/{world.client1['id']}").json["sessions"][0]["id"]
    stale = {"id": 1, "client_id": world.client1["id"], "session_id": session_id}
    stale["expires_at"] = iso(datetime.now(UTC) - timedelta(minutes=1))
    token = links.checkin_token(world.app.config["SECRET_KEY"], stale)
    r = world.anon.get(f"/checkin/link/{token}", headers={"Accept-Language": "en"})
    page = r.get_data(as_text=True)
    assert r.status_code == 410 and html_lang(page) == "es"
    assert "Este enlace de registro ha caducado." in page and "Something is not right" not in page
    # The page's form posts to the API: its answers are in the client's language too, whatever
    # the browser's (an English phone), expired or with a field to fix.
    english = {"Accept-Language": "en"}
    r = world.anon.post(f"/api/checkin-links/{token}", checkin_body(), headers=english)
    assert r.status_code == 410 and r.json["error"]["code"] == "link_expired"
    assert r.json["error"]["message"].startswith("Este enlace de registro ha caducado."), r.json
    fresh = links.checkin_token(
        world.app.config["SECRET_KEY"],
        stale | {"expires_at": iso(datetime.now(UTC) + timedelta(hours=1))},
    )
    r = world.anon.post(f"/api/checkin-links/{fresh}", checkin_body(redness=9), headers=english)
    assert (
        r.status_code == 422 and r.json["error"]["fields"]["redness"] == "Debe estar entre 0 y 4."
    )


def test_practitioners_error_pages_stay_english(world):
    r = world.p1.get("/clinic/clients/999999", headers={"Accept-Language": "es"})
    page = r.get_data(as_text=True)
    assert r.status_code == 404 and html_lang(page) == "en" and "Not found" in page


def test_a_practitioner_adds_a_spanish_client_on_the_page(world):
    form_page = world.p1.get("/clinic/clients/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form_page).group(1)
    form = {"csrf_token": token, "name": "Lucía", "timezone": "Europe/Madrid", "language": "es"}
    r = world.p1.http.post("/clinic/clients/new", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)
    detail = world.p1.get(r.headers["Location"]).get_data(as_text=True)
    assert "Español" in detail
    found = world.p1.get("/api/clients?q=Luc").json["clients"]
    assert [c["language"] for c in found] == ["es"]
    refused = world.p1.http.post("/clinic/clients/new", data=form | {"language": "fr"})
    assert refused.status_code == 422 and 'id="language-error"' in refused.get_data(as_text=True)


# Words a client template may show unwrapped: the class name of <body>, and the chart's
# practitioner-only legend and caption (practitioner pages stay English).
UNTRANSLATED = {
    "base.html": {"client"},
    "_chart.html": {"Raised", "flag", "tap", "for", "why", "Expected", "course", "Stretched"}
    | {"here", "mm"},
}


def test_client_templates_have_no_words_outside_the_catalogs():
    """Every word a client template shows goes through _() or {% trans %} (text and the
    attributes people read: aria-label, alt, title, placeholder, and the scripts' data-*)."""
    templates = ROOT / "companion" / "templates"
    found = {}
    for path in [*sorted((templates / "client").glob("*.html")), templates / "_chart.html"]:
        text = path.read_text()
        for pattern in (
            r"\{#.*?#\}",
            r"\{%-?\s*trans\b.*?%\}.*?\{%-?\s*endtrans\s*-?%\}",
            r"\{\{.*?\}\}",
            r"\{%.*?%\}",
            r"<(script|style|svg)\b.*?</\1>",
        ):
            text = re.sub(pattern, " ", text, flags=re.S)
        attrs = r'(?:aria-label|alt|title|placeholder|data-alt|data-label)="([^"]*)"'
        shown = [*re.findall(attrs, text), re.sub(r"<[^>]*>", " ", text)]
        allowed = UNTRANSLATED.get(path.name, set()) | {"Companion"}
        words = {w for chunk in shown for w in re.findall(r"[A-Za-z]{2,}", chunk)} - allowed
        if words:
            found[path.name] = sorted(words)
    assert not found, f"wrap these in _() and run scripts/catalogs: {found}"


def test_the_treated_areas_are_in_the_clients_language(world):
    """The session form's areas are a vocabulary (clinical.AREAS), shown to a Spanish-speaking
    client in Spanish; an area the practitioner typed outside it is shown as typed."""
    areas = ["face", "under eyes", "Neck", "lower back"]
    world.new_session(world.p1, world.client1["id"], hours_ago=1, areas=areas)
    page = world.c1.get("/").get_data(as_text=True)
    assert "(face, under eyes, Neck, lower back)." in page
    world.c1.patch("/api/me", {"language": "es"})
    page = world.c1.get("/").get_data(as_text=True)
    assert "(rostro, contorno de ojos, cuello, lower back)." in page
    # The practitioner and the API keep what was entered.
    sessions = world.p1.get(f"/api/clients/{world.client1['id']}/sessions").json["sessions"]
    assert areas in [s["areas"] for s in sessions]


def test_the_installed_apps_name_follows_the_browsers_language(world):
    """The manifest is fetched without cookies: a Spanish-speaking browser installs the app
    with Spanish words; English as before."""
    es = world.anon.get("/manifest.webmanifest", headers={"Accept-Language": "es-MX,es"}).json
    assert es["lang"] == "es" and es["name"] == "Companion: tus cuidados"
    assert es["description"].startswith("Recordatorios de cuidados")
    en = world.anon.get("/manifest.webmanifest", headers={"Accept-Language": "en-GB"}).json
    assert en["lang"] == "en" and en["name"] == "Companion aftercare"
    assert en["description"].startswith("Aftercare reminders")
