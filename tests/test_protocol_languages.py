"""A protocol's texts by language (issue 15, "The client's language"): a step's title and body
are one text for everyone, or {"en": ..., "es": ...}; a client gets theirs, else the English."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_roles import csrf, page_client

from companion.admin import protocol_editor
from companion.db import connect
from companion.migrations import migrations
from companion.reminders.planning import plan
from companion.reminders.protocol import DEFAULT_STEPS, text_in, validate_steps

STEP = {
    "key": "sun",
    "kind": "instruction",
    "title": {"en": "Sunscreen today", "es": "Hoy, protector solar"},
    "body": {"en": "Put on sunscreen.", "es": "Ponte protector solar."},
    "at": {"day": 1, "time": "10:00"},
}
PLAIN = dict(STEP, key="plain", title="Drink water", body="Stay hydrated.")
SESSION = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def test_the_default_protocol_is_valid_and_every_step_has_english_and_spanish():
    clean, errors = validate_steps(DEFAULT_STEPS)
    assert errors == {}
    assert clean == DEFAULT_STEPS  # what ships is exactly what the validator keeps
    for step in DEFAULT_STEPS:
        for name in ("title", "body"):
            texts = step[name]
            assert set(texts) == {"en", "es"} and texts["es"] != texts["en"], (step["key"], name)
    spanish = {
        s["step_key"]: s
        for s in plan(SESSION, DEFAULT_STEPS, "Europe/Madrid", None, None, SESSION, "es")
    }
    assert spanish["day2-checkin"]["title"] == "Día 2: ¿cómo está tu piel?"
    assert spanish["24h-checkin"]["body"].startswith("¿Cómo está tu piel?")


def test_a_client_gets_their_language_else_english_and_plain_text_is_for_everyone():
    for language, title in (("es", "Hoy, protector solar"), ("en", "Sunscreen today")):
        rows = plan(SESSION, [STEP, PLAIN], "Europe/Madrid", None, None, SESSION, language)
        assert [r["title"] for r in rows] == [title, "Drink water"]
    english_only = dict(STEP, title={"en": "Only English"})
    assert plan(SESSION, [english_only], "UTC", None, None, SESSION, "es")[0]["title"] == (
        "Only English"
    )
    assert text_in({"en": "Hi", "es": "Hola"}, None) == "Hi"


@pytest.mark.parametrize(
    ("title", "path", "message"),
    [
        ({"es": "Hola"}, "steps[0].title.en", "is required"),
        ({"en": "Hi", "fr": "Salut"}, "steps[0].title.fr", "unknown language"),
        ({"en": "Hi", "es": "  "}, "steps[0].title.es", "must not be empty"),
        ({"en": "Hi", "es": "x" * 61}, "steps[0].title.es", "at most 60"),
        ({"en": 3}, "steps[0].title.en", "must be a string"),
        (["Hi"], "steps[0].title", "texts by language"),
        (None, "steps[0].title", "texts by language"),
    ],
)
def test_bad_texts_by_language_are_refused_with_the_path_named(world, title, path, message):
    r = world.p1.put("/api/protocol", {"steps": [dict(STEP, title=title)]})
    assert r.status_code == 422, r.json
    assert message in r.json["error"]["fields"][path]
    r = world.p1.post("/api/protocol/preview", {"steps": [dict(STEP, title=title)]})
    assert r.status_code == 422 and path in r.json["error"]["fields"]
    assert world.p1.get("/api/protocol").json["version"] == 1  # nothing saved


@pytest.mark.parametrize(
    ("title", "body", "path", "what"),
    [
        (STEP["title"], "Put some on.", "steps[0].body.es", "Spanish text"),
        ("Sunscreen", STEP["body"], "steps[0].title.es", "Spanish title"),
        (STEP["title"], {"en": "Put some on.", "es": ""}, "steps[0].body.es", "Spanish text"),
        (STEP["title"], {"en": "Put some on."}, "steps[0].body.es", "Spanish text"),
    ],
)
def test_a_half_translated_step_is_refused_as_the_editor_refuses_it(world, title, body, path, what):
    """A Spanish-speaking client would read half the step in English: both or neither."""
    half = dict(STEP, title=title, body=body)
    for method, url in (("put", "/api/protocol"), ("post", "/api/protocol/preview")):
        r = getattr(world.p1, method)(url, {"steps": [PLAIN, half]})
        assert r.status_code == 422, r.json
        assert r.json["error"]["fields"] == {
            path.replace("[0]", "[1]"): f"write the {what} too, or neither"
        }
    assert world.p1.get("/api/protocol").json["version"] == 1  # nothing saved
    # The editor's JSON import says the same, by step and field.
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    page = http.get("/clinic/protocol").get_data(as_text=True)
    imported = {"csrf_token": csrf(page), "steps": json.dumps([half])}
    html = http.post("/clinic/protocol", data=imported).get_data(as_text=True)
    assert f"Step 1, {what}: write the {what} too, or neither" in html
    assert world.p1.get("/api/protocol").json["version"] == 1


def test_spanish_for_a_step_with_no_english_text_to_translate_is_whole(world):
    for body in ("", {"en": "", "es": ""}, {"en": ""}):
        r = world.p1.put("/api/protocol", {"steps": [dict(STEP, body=body)]})
        assert r.status_code == 200, (body, r.json)


def test_texts_by_language_round_trip_through_the_api_and_plain_protocols_still_work(world):
    r = world.p1.put("/api/protocol", {"steps": [STEP, PLAIN]})
    assert r.status_code == 200, r.json
    got = world.p1.get("/api/protocol").json
    assert got["version"] == 2
    assert [(s["title"], s["body"]) for s in got["steps"]] == [
        (STEP["title"], STEP["body"]),
        ("Drink water", "Stay hydrated."),
    ]
    # A GET body goes back as it came, and an old, plain protocol is still accepted.
    assert world.p1.put("/api/protocol", {"steps": got["steps"]}).status_code == 200
    r = world.p1.put("/api/protocol", {"steps": [PLAIN]})
    assert r.status_code == 200 and r.json["steps"][0]["title"] == "Drink water"
    preview = world.p1.post("/api/protocol/preview", {"steps": [STEP, PLAIN]}).json
    assert preview["language"] == "en" and preview["plan"][0]["title"] == "Sunscreen today"
    # The preview as a Spanish-speaking client gets it: the step's Spanish, else the text.
    preview = world.p1.post("/api/protocol/preview", {"steps": [STEP, PLAIN], "language": "es"})
    assert [r["title"] for r in preview.json["plan"]] == ["Hoy, protector solar", "Drink water"]
    refused = world.p1.post("/api/protocol/preview", {"steps": [STEP], "language": "fr"})
    assert refused.status_code == 422 and "language" in refused.json["error"]["fields"]


def test_the_openapi_document_states_both_shapes(client):
    schemas = client.get("/api/openapi.json").json["components"]["schemas"]
    for name in ("title", "body"):
        text, by_language = schemas["StepInput"]["properties"][name]["anyOf"]
        assert text["type"] == "string"
        assert by_language["required"] == ["en"] and by_language["additionalProperties"] is False
        assert set(by_language["properties"]) == {"en", "es"}
        shapes = schemas["Step"]["properties"][name]["anyOf"]
        assert {"type": "string"} in shapes and {"$ref": "#/components/schemas/StepTexts"} in shapes


def form_of(page: str, rows: list[dict]) -> dict:
    """The editor's form: each field repeated once a step, in page order."""
    return {"csrf_token": csrf(page)} | {
        name: [row.get(name, "") for row in rows] for name in protocol_editor.FIELDS
    }


def test_the_editor_shows_and_saves_the_spanish_text_of_each_step(world):
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    page = http.get("/clinic/protocol").get_data(as_text=True)
    # The default protocol's Spanish is in its own fields, the English in the usual ones.
    assert 'name="title_es" maxlength="60" value="Cómo cuidar tu piel hoy"' in page
    assert 'name="title" maxlength="60" value="Caring for your skin today"' in page
    assert "{&#39;en&#39;" not in page and "{'en'" not in page
    first = {"key": "after-session", "timing": "after", "offset_hours": "0", "kind": "instruction"}
    rows = [
        first
        | {"title": "Hi", "body": "Be gentle.", "title_es": "Hola", "body_es": "Con cuidado."},
        {"timing": "day", "day": "3", "time": "07:30", "kind": "checkin", "title": "Check"}
        | {"body": "How is it?"},
    ]
    form = form_of(page, rows)
    r = http.post("/clinic/protocol", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    steps = world.p1.get("/api/protocol").json["steps"]
    assert (steps[0]["title"], steps[0]["body"]) == (
        {"en": "Hi", "es": "Hola"},
        {"en": "Be gentle.", "es": "Con cuidado."},
    )
    assert (steps[1]["title"], steps[1]["body"]) == ("Check", "How is it?")
    # A Spanish title over an empty English one: refused, named as the page labels it.
    rows[0]["title"] = ""
    html = http.post("/clinic/protocol", data=form_of(page, rows)).get_data(as_text=True)
    assert "Not saved" in html and "Step 1, title: must not be empty" in html
    assert re.search(r'name="title_es" maxlength="60" value="Hola"', html)  # kept as typed


def test_stored_protocols_get_the_default_steps_spanish_where_the_english_is_untouched(app):
    """m012: a protocol stored before Spanish shipped (plain English) gains the default steps'
    Spanish where a text is the default's word for word; an owner's own text stays as it is."""
    path = str(Path(app.config["DATABASE"]).with_name("older.db"))
    db = connect(path)
    migrations.apply(db, stop_before="m012_default_protocol_in_spanish")
    old = [
        {k: (v["en"] if k in ("title", "body") else v) for k, v in step.items()}
        for step in DEFAULT_STEPS[:2]
    ]
    old[1]["body"] = "Our own evening routine."  # edited by the owner
    db.execute("INSERT INTO clinics (name, timezone, created_at) VALUES ('Old', 'UTC', 'then')")
    db.execute(
        "INSERT INTO protocols (clinic_id, version, steps, created_at) VALUES (1, 1, ?, 'then')",
        [json.dumps(old)],
    )
    db.conn.commit()
    migrations.apply(db)
    [stored] = [json.loads(r[0]) for r in db.execute("SELECT steps FROM protocols").fetchall()]
    db.close()
    assert stored[0]["title"] == DEFAULT_STEPS[0]["title"]  # {"en", "es"}
    assert stored[0]["body"] == DEFAULT_STEPS[0]["body"]
    assert stored[1]["title"] == DEFAULT_STEPS[1]["title"]
    assert stored[1]["body"] == "Our own evening routine."
    # The owner's own English body has no Spanish: the step keeps planning as it is stored,
    # and the next save asks for the Spanish text (as the editor always did).
    assert validate_steps(stored)[1] == {
        "steps[1].body.es": "write the Spanish text too, or neither"
    }
    rows = plan(SESSION, stored, "Europe/Madrid", None, None, SESSION, "es")
    assert [r["body"] for r in rows][1] == "Our own evening routine."


def test_the_editor_wants_both_spanish_texts_or_neither(world):
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    page = http.get("/clinic/protocol").get_data(as_text=True)
    step = {"key": "sun", "timing": "after", "offset_hours": "0", "kind": "instruction"}
    half = step | {"title": "Sunscreen", "body": "Put some on.", "title_es": "Protector solar"}
    html = http.post("/clinic/protocol", data=form_of(page, [half])).get_data(as_text=True)
    assert "Step 1, Spanish text: write the Spanish text too, or neither" in html
    assert world.p1.get("/api/protocol").json["version"] == 1
    # No English text: nothing to translate, so the Spanish title alone is whole.
    whole = half | {"body": ""}
    assert http.post("/clinic/protocol", data=form_of(page, [whole])).status_code == 302
    [saved] = world.p1.get("/api/protocol").json["steps"]
    assert saved["title"] == {"en": "Sunscreen", "es": "Protector solar"} and saved["body"] == ""


def test_an_empty_spanish_text_is_not_written_yet_so_a_spanish_client_gets_the_english(world):
    # The API refuses {"en": "...", "es": ""} beside a Spanish title now (half translated), but
    # a step stored so before must not send a Spanish-speaking client a reminder without text.
    step = dict(STEP, body={"en": "Put on sunscreen.", "es": ""})
    assert world.p1.put("/api/protocol", {"steps": [step]}).status_code == 422
    rows = plan(SESSION, [step], "Europe/Madrid", None, None, SESSION, "es")
    assert (rows[0]["title"], rows[0]["body"]) == ("Hoy, protector solar", "Put on sunscreen.")


def test_a_step_written_as_the_issue_writes_it_is_saved_and_planned(world):
    """Issue 3: a step has a title, a body, a kind and a time, "+24 h" or "day 2, 18:00"; the
    API takes exactly that (no key: one is made from the title) and plans sessions with it."""
    steps = [
        {"title": "How is your skin?", "body": "Tap to answer.", "kind": "checkin", "at": "+24 h"},
        {"title": "Evening", "body": "Moisturise.", "kind": "instruction", "at": "day 2, 18:00"},
    ]
    r = world.p1.put("/api/protocol", {"steps": steps})
    assert r.status_code == 200, r.json
    assert [(s["key"], s["at"]) for s in r.json["steps"]] == [
        ("how-is-your-skin", {"offset_hours": 24}),
        ("evening", {"day": 2, "time": "18:00"}),
    ]
    session = world.new_session(world.p1, world.client1["id"], hours_ago=1)
    planned = world.p1.get(f"/api/sessions/{session['id']}").json["schedule"]
    assert {n["step_key"] for n in planned} == {"how-is-your-skin", "evening"}
