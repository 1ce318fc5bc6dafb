"""The protocol editor (issue 14): the preview route plans like a real session; the form saves."""

import json
import re

import pytest
from test_roles import add, csrf, page_client

from companion.admin import protocol_editor

STEP = {
    "key": "late",
    "kind": "instruction",
    "title": "Late",
    "body": "",
    "at": {"day": 1, "time": "23:00"},
}


def test_preview_moves_a_step_out_of_quiet_hours_in_the_chosen_zone(world):
    r = world.p1.post(
        "/api/protocol/preview",
        {"steps": [STEP], "timezone": "Asia/Tokyo", "performed_at": "2026-06-10T10:00:00+09:00"},
    )
    assert r.status_code == 200, r.json
    [row] = r.json["plan"]
    assert row["local"] == "Fri 12 Jun, 08:00 JST"  # day 1 23:00 is quiet: moved to 08:00 next day
    assert row["due_at"] == "2026-06-12T08:00:00+09:00" and row["day"] == 2
    assert row["moved_from"] == "23:00 (quiet hours)" and row["when"] == "day 1 at 23:00"
    assert (r.json["quiet_start"], r.json["quiet_end"]) == ("21:00", "08:00")
    # Equal start and end: no quiet hours; the clinic's zone when none is given.
    r = world.p1.post(
        "/api/protocol/preview",
        {"steps": [STEP], "quiet_start": "00:00", "quiet_end": "00:00"},
    )
    [row] = r.json["plan"]
    assert r.json["timezone"] == "Europe/London"
    assert re.fullmatch(r"\w{3} \d\d \w{3}, 23:00 (GMT|BST)", row["local"]) and row["day"] == 1
    assert row["moved_from"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": [dict(STEP, at={"day": 1, "time": "25:00"})]}, "steps[0].at.time"),
        ({"steps": []}, "steps"),
        ({}, "steps"),
        ({"steps": [STEP], "timezone": "Mars/Olympus"}, "timezone"),
        ({"steps": [STEP], "quiet_start": "22:00"}, "quiet_end"),
        ({"steps": [STEP], "performed_at": "yesterday"}, "performed_at"),
        ({"steps": [STEP], "colour": "red"}, "colour"),
    ],
)
def test_preview_refuses_bad_input_with_the_field_named(world, body, field):
    r = world.p1.post("/api/protocol/preview", body)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["fields"]


def test_the_form_saves_steps_with_keys_made_from_titles_and_keeps_hidden_settings(world):
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    page = http.get("/clinic/protocol").get_data(as_text=True)
    keys = re.findall(r'name="key" value="([^"]*)"', page)
    assert keys[:2] == ["after-session", "evening-routine"]  # in the order they fire
    form = {"csrf_token": csrf(page)}
    rows = [
        (
            "after-session",
            "after",
            "0",
            "",
            "",
            "instruction",
            "Caring for your skin",
            "Be gentle.",
            "",
        ),
        ("evening-routine", "day", "", "0", "19:00", "instruction", "Evening", "Cleanse.", "6"),
        ("", "day", "", "3", "07:30", "checkin", "Early check", "How is it?", ""),
    ]
    english = [name for name in protocol_editor.FIELDS if not name.endswith("_es")]
    for name, column in zip(english, zip(*rows, strict=True), strict=True):
        form[name] = list(column)
    form["title_es"] = form["body_es"] = [""] * len(rows)  # no Spanish: one text for everyone
    r = http.post("/clinic/protocol", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    protocol = world.p1.get("/api/protocol").json
    assert protocol["version"] == 2
    steps = {s["key"]: s for s in protocol["steps"]}
    assert list(steps) == ["after-session", "evening-routine", "early-check"]
    assert steps["evening-routine"]["min_gap_hours"] == 1  # not on the form: kept
    assert steps["evening-routine"]["valid_hours"] == 6
    assert steps["early-check"]["at"] == {"day": 3, "time": "07:30"}
    assert steps["early-check"]["valid_hours"] == 24  # the kind's default


def test_a_bad_form_is_not_saved_and_says_where(world):
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    token = csrf(http.get("/clinic/protocol").get_data(as_text=True))
    form = {
        "csrf_token": token,
        "key": "a",
        "timing": "day",
        "offset_hours": "",
        "day": "2",
        "time": "25:00",
        "kind": "checkin",
        "title": "",
        "body": "",
        "valid_hours": "-1",
    }
    # An empty title with a key is a step with a missing title, not a blank row.
    r = http.post("/clinic/protocol", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "Not saved" in html
    assert "Step 1, time:" in html and "Step 1, title:" in html and "Step 1, valid for:" in html
    assert world.p1.get("/api/protocol").json["version"] == 1


def test_each_step_is_folded_to_its_when_kind_and_title_but_a_broken_one_opens(world):
    """Fifteen open steps made the page 16,000 px tall on a phone: each step is a <details>
    whose summary says when it fires, its kind and its title, and it works without script.
    After a refused save, the steps with a problem are open and the others folded."""
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    page = http.get("/clinic/protocol").get_data(as_text=True)
    folds = re.findall(r'<details class="step-card"( open)?>\s*<summary>(.*?)</summary>', page)
    steps = len(re.findall(r'name="key" value="[^"]+"', page))
    assert len(folds) == steps + 1  # and the blank one "Add a step" copies
    assert [opened for opened, _ in folds] == [""] * steps + [" open"]
    summaries = [re.sub(r"<[^>]+>", "", summary) for _, summary in folds]
    assert summaries[:2] == [
        "right after · InstructionCaring for your skin today",
        "same day at 19:00 · InstructionYour evening skin routine",
    ]
    assert "24 h after · Check-inHow is your skin today?" in summaries
    rows = [
        ("a", "after", "0", "", "", "instruction", "Fine", "Be gentle.", ""),
        ("b", "day", "", "2", "25:00", "checkin", "Broken", "How is it?", ""),
        ("c", "after", "48", "", "", "instruction", "Also fine", "Moisturise.", ""),
    ]
    form = {"csrf_token": csrf(page)}
    english = [name for name in protocol_editor.FIELDS if not name.endswith("_es")]
    for name, column in zip(english, zip(*rows, strict=True), strict=True):
        form[name] = list(column)
    form["title_es"] = form["body_es"] = [""] * len(rows)
    r = http.post("/clinic/protocol", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "Step 2, time:" in html
    folds = re.findall(r'<details class="step-card"( open)?>\s*<summary>(.*?)</summary>', html)
    assert [opened for opened, _ in folds] == ["", " open", "", " open"], folds
    assert "Broken" in folds[1][1]


def test_a_practitioner_previews_but_cannot_save(world):
    colleague = add(world.p1)
    http = page_client(world.app, colleague)
    page = http.get("/clinic/protocol").get_data(as_text=True)
    assert "Only an owner" in page and 'id="preview"' in page
    r = http.post("/clinic/protocol", data={"csrf_token": csrf(page), "title": "x"})
    assert r.status_code == 403


STEP_JSON = '{"key": "late", "kind": "instruction", "title": "Late", "body": "", "at": {"day": 1, "time": "23:00"}'


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        # An owner pasting JSON with "title" twice saved the second title without a word.
        ("[" + STEP_JSON + ', "title": "Later"}]', "title"),
        ("[" + STEP_JSON + ', "valid_hours": NaN}]', "NaN"),
    ],
    ids=["repeated key", "NaN"],
)
def test_the_json_import_refuses_what_the_api_refuses(world, text, phrase):
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    token = csrf(http.get("/clinic/protocol").get_data(as_text=True))
    r = http.post("/clinic/protocol", data={"csrf_token": token, "steps": text})
    assert r.status_code == 422, r.status_code  # the page again, with the error: nothing saved
    page = r.get_data(as_text=True)
    assert "Not valid JSON" in page and phrase in page, page[:3000]
    assert world.p1.get("/api/protocol").json["version"] == 1


def test_the_json_download_imports_back_as_it_is(world):
    # "Download version N as JSON" gives GET /api/protocol's answer; importing that file
    # (or its steps, each with GET's "when") was refused as not a list / unknown fields.
    http = page_client(world.app, {"email": "one@clinic-one.net"})
    downloaded = http.get("/api/protocol").get_data(as_text=True)
    steps = json.dumps(json.loads(downloaded)["steps"])
    for version, text in ((2, downloaded), (3, steps)):
        token = csrf(http.get("/clinic/protocol").get_data(as_text=True))
        r = http.post("/clinic/protocol", data={"csrf_token": token, "steps": text})
        assert r.status_code == 302, r.get_data(as_text=True)[:2000]
        now = world.p1.get("/api/protocol").json
        assert now["version"] == version
        assert now["steps"] == json.loads(downloaded)["steps"]
