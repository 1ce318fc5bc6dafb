"""Practitioner pages as a person reads them (issue 14): the audit log in words, the timeline's
delivery per device, exports in reach."""

import html as htmllib
import re

from conftest import PASSWORD, checkin_body


def text(response) -> str:
    """The page's visible text, tags dropped and whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", body)))


def test_audit_log_speaks_in_words_with_names_and_the_clinic_zone(world):
    w = world
    cid = w.client1["id"]
    assert w.p1.get(f"/clinic/clients/{cid}").status_code == 200
    gone = w.new_client(w.p1, "Zed")
    assert w.p1.delete(f"/api/clients/{gone['id']}").status_code in (200, 204)
    page = w.p1.get("/clinic/audit")
    words = text(page)
    who = "Dr one@clinic-one.net"
    assert f"{who} read Alice's timeline" in words
    assert f"{who} recorded a session for Alice" in words
    assert f"{who} erased client #{gone['id']}" in words
    assert "client_read" not in words and "session_created" not in words
    for kind in ("checkins", "flags"):
        assert w.p1.get(f"/api/exports/{kind}.csv").status_code == 200
    words = text(w.p1.get("/clinic/audit"))
    assert f"{who} exported the clinic's check-ins (CSV)" in words, words
    assert f"{who} exported the clinic's flags (CSV)" in words and "checkins" not in words
    # Alice's name links to her record; an erased client is never a link.
    html = page.get_data(as_text=True)
    assert f'<a href="/clinic/clients/{cid}">Alice' in html
    assert f'href="/clinic/clients/{gone["id"]}"' not in html
    # Times in the clinic's zone (Europe/London: GMT or BST), not bare UTC.
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d (GMT|BST)", words)
    assert "Europe/London" in words
    # One client's log names them; another clinic sees none of it.
    one = text(w.p1.get(f"/clinic/audit?client_id={cid}"))
    assert "Audit log for Alice" in one and "Zed" not in one
    assert "Alice" not in text(w.p2.get("/clinic/audit"))


def test_flag_history_says_who_did_what(world):
    w = world
    w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    [flag] = w.p1.get("/api/flags").json["flags"]
    assert w.p1.post(f"/api/flags/{flag['id']}/acknowledge").status_code == 200
    words = text(w.p1.get(f"/clinic/clients/{w.client1['id']}"))
    assert "Dr one@clinic-one.net acknowledged" in words
    assert "Triage (from a check-in) opened it (urgent)" in words


def test_client_page_offers_every_export_with_a_filename(world):
    cid = world.client1["id"]
    html = world.p1.get(f"/clinic/clients/{cid}").get_data(as_text=True)
    for fmt in ("csv", "json", "fhir"):
        assert f'href="/api/clients/{cid}/export?format={fmt}"' in html
        r = world.p1.get(f"/api/clients/{cid}/export?format={fmt}")
        assert r.status_code == 200
        assert re.match(
            r'attachment; filename="client-\d+[-\w]*\.(csv|json)"', r.headers["Content-Disposition"]
        )


def test_clinic_exports_page_offers_the_date_range_csvs(world):
    html = world.p1.get("/clinic/exports").get_data(as_text=True)
    assert (
        'action="/api/exports/checkins.csv"' in html and 'action="/api/exports/flags.csv"' in html
    )
    assert 'type="date" name="from"' in html and 'type="date" name="to"' in html


def test_one_clients_audit_log_of_another_clinic_is_not_found(world):
    # Another clinic's client does not exist here: not "erased client #N", which would be untrue.
    assert world.p2.get(f"/clinic/audit?client_id={world.client1['id']}").status_code == 404
    gone = world.new_client(world.p1, "Zed")
    assert world.p1.delete(f"/api/clients/{gone['id']}").status_code == 204
    assert f"Audit log for erased client #{gone['id']}" in text(
        world.p1.get(f"/clinic/audit?client_id={gone['id']}")
    )


def test_the_client_list_says_what_will_appear_when_empty(world):
    words = text(world.p2.get("/clinic/clients?q=Nobody"))
    assert "No client's name matches “Nobody”" in words and "Show every client" in words
    assert world.p2.delete(f"/api/clients/{world.client2['id']}").status_code == 204
    words = text(world.p2.get("/clinic/clients"))
    assert "No clients yet. Add a client to record their session" in words


def test_the_menu_marks_where_you_are(world):
    def current(path):
        html = world.p1.get(path).get_data(as_text=True)
        nav = html[html.index('<nav aria-label="Main">') : html.index("</nav>")]
        return re.findall(r'<a href="([^"]+)" aria-current="(page|true)"', nav)

    assert current("/clinic/audit") == [("/clinic/audit", "page")]
    assert current("/clinic/") == [("/clinic/", "page")]
    # A client's pages are within Clients.
    assert current(f"/clinic/clients/{world.client1['id']}") == [("/clinic/clients", "true")]
    assert current(f"/clinic/sessions/{world.session1['id']}/reminders") == [
        ("/clinic/clients", "true")
    ]
    assert current("/clinic/two-factor") == [("/clinic/password", "true")]  # reached from there


def test_the_client_list_becomes_cards_on_a_phone(world):
    # At 390 px its three columns broke "Europe/London" and the dates mid-word; as the other
    # tables, it is one card per client there, each value labelled.
    html = world.p1.get("/clinic/clients").get_data(as_text=True)
    assert '<table class="list stack">' in html
    assert 'data-label="Time zone">Europe/London</td>' in html
    assert 'data-label="Last session">' in html
    # Each name is the row's link, a finger's height (app.css a.row-link).
    assert f'<a class="row-link" href="/clinic/clients/{world.client1["id"]}">Alice</a>' in html


def test_every_practitioner_page_carries_the_queue_badge(world):
    # The Clinic details and two-factor pages (other blueprints) showed "Queue" without a count.
    for path in ("/clinic/", "/clinic/profile", "/clinic/two-factor", "/clinic/password"):
        html = world.p1.get(path).get_data(as_text=True)
        assert '<span class="badge"' in html, path


def test_the_queue_count_is_hidden_while_nothing_waits(world):
    # A red "0" beside "Queue" on a fresh clinic read as an alarm about nothing.
    assert re.search(r'<span class="badge"[^>]* hidden>0</span>', world.p1.get("/clinic/").text)
    world.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    assert re.search(r'<span class="badge"[^>]*">1</span>', world.p1.get("/clinic/").text)


def test_the_erase_button_looks_like_the_warning_not_like_save(world):
    html = world.p1.get(f"/clinic/clients/{world.client1['id']}/erase").get_data(as_text=True)
    assert '<button type="submit" class="primary danger">Erase everything' in html


def test_the_team_table_labels_each_value_on_a_phone(world):
    # As cards at 390 px the team list showed bare "owner" and "active" under each name.
    html = world.p1.get("/clinic/team").get_data(as_text=True)
    assert '<table class="list stack">' in html
    assert 'data-label="Email">one@clinic-one.net</td>' in html
    assert 'data-label="Role">owner</td>' in html
    assert 'data-label="Status">active</td>' in html


def test_a_check_in_with_nothing_else_reported_says_so(world):
    # Its "Reported:" was left blank on a phone, as if something had failed to show.
    w = world
    w.c1.post("/api/checkins", checkin_body())
    w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    html = w.p1.get(f"/clinic/clients/{w.client1['id']}").get_data(as_text=True)
    cells = re.findall(r'<td data-label="Reported">(.*?)</td>', html, flags=re.S)
    assert sorted(c.strip() for c in cells) == ["<strong>⚠ pus</strong>", "nothing"]


def test_an_urgent_flag_on_the_client_page_is_marked_in_the_queues_colours(world):
    w = world
    w.c1.post("/api/checkins", checkin_body(warning_signs={"pus": True}))
    html = w.p1.get(f"/clinic/clients/{w.client1['id']}").get_data(as_text=True)
    assert '<li class="sev-urgent"><span class="sev">urgent</span> <strong>U3</strong>' in html


def test_the_only_owner_is_not_offered_a_button_that_cannot_work(world):
    # "Make Dr ... a practitioner" on the clinic's only owner answered 409 last_owner.
    html = world.p1.get("/clinic/team").get_data(as_text=True)
    assert "a practitioner</button>" not in html
    assert "The clinic's only owner: make a colleague an owner" in html
    body = {"name": "Pat", "email": "pat@clinic-one.net", "password": PASSWORD}
    r = world.p1.post("/api/practitioners", body)
    assert r.status_code == 201, r.json
    assert (
        world.p1.put(f"/api/practitioners/{r.json['id']}/role", {"role": "owner"}).status_code
        == 200
    )
    html = world.p1.get("/clinic/team").get_data(as_text=True)
    assert html.count("a practitioner</button>") == 2 and "only owner" not in html
