"""The queue of recoveries: one item per session, recovery-level actions, notes and claims."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import Api, checkin_body, count

from companion import clinical

pytestmark = pytest.mark.filterwarnings("error")

FOUR_WARNINGS = {"spreading_redness": True, "fever": True, "pus": True, "eye_or_breathing": True}


def taken(hours_after: float, session: dict) -> str:
    performed = datetime.fromisoformat(session["performed_at"])
    return (performed + timedelta(hours=hours_after)).isoformat()


@pytest.fixture
def seven(world):
    """Alice: four urgent flags from one check-in; Carol, older: three review flags from one."""
    w = world
    carol = w.new_client(w.p1, "Carol")
    session = w.new_session(w.p1, carol["id"], hours_ago=76)
    phone = w.sign_in_client(w.p1, carol["id"])
    r = phone.post(
        "/api/checkins", checkin_body(redness=3, swelling=3, pain=7, taken_at=taken(75, session))
    )
    assert {f["rule"] for f in r.json["assessment"]["flags"]} == {"R1", "R2", "R4"}
    r = w.c1.post("/api/checkins", checkin_body(warning_signs=FOUR_WARNINGS))
    assert {f["rule"] for f in r.json["assessment"]["flags"]} == {"U1", "U2", "U3", "U4"}
    w.carol, w.carol_session, w.carol_phone = carol, session, phone
    return w


def test_seven_flags_of_two_clients_are_two_recoveries(seven):
    w = seven
    r = w.p1.get("/api/queue")
    assert r.status_code == 200
    items = r.json["recoveries"]
    assert [i["client_name"] for i in items] == ["Alice", "Carol"]  # urgent first
    alice, carol = items
    assert (alice["session_id"], alice["client_id"]) == (w.session1["id"], w.client1["id"])
    assert alice["severity"] == "urgent" and carol["severity"] == "review"
    assert sorted(f["rule"] for f in alice["flags"]) == ["U1", "U2", "U3", "U4"]
    assert sorted(f["rule"] for f in carol["flags"]) == ["R1", "R2", "R4"]
    # Each flag exactly as GET /api/flags shows it.
    per_flag = {f["id"]: f for f in w.p1.get("/api/flags").json["flags"]}
    assert len(per_flag) == 7
    for item in items:
        for flag in item["flags"]:
            assert flag == per_flag[flag["id"]]
        assert item["waiting_since"] == min(f["opened_at"] for f in item["flags"])
        assert item["handled_by"] is None and item["resolution"] is None
    assert carol["latest"]["redness"] == 3
    assert r.json["counts"] == {"urgent": 1, "review": 1, "info": 0}
    assert w.p2.get("/api/queue").json["recoveries"] == []


def test_urgent_first_then_oldest(seven):
    w = seven
    dave = w.new_client(w.p1, "Dave")
    w.new_session(w.p1, dave["id"])
    w.sign_in_client(w.p1, dave["id"]).post(
        "/api/checkins", checkin_body(warning_signs={"fever": True})
    )
    names = [i["client_name"] for i in w.p1.get("/api/queue").json["recoveries"]]
    assert names == ["Alice", "Dave", "Carol"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("severity=review", ["Carol"]),
        ("severity=urgent", ["Alice"]),
        ("severity=info", []),
        ("status=open", ["Alice", "Carol"]),
        ("status=resolved", []),
        ("status=all", ["Alice", "Carol"]),
        ("limit=1", ["Alice"]),
    ],
)
def test_filters(seven, query, names):
    r = seven.p1.get(f"/api/queue?{query}")
    assert [i["client_name"] for i in r.json["recoveries"]] == names


def test_filter_by_client_and_practitioner(seven):
    w = seven
    r = w.p1.get(f"/api/queue?client_id={w.carol['id']}")
    assert [i["client_name"] for i in r.json["recoveries"]] == ["Carol"]
    me = w.p1.get("/api/me").json["practitioner"]["id"]
    assert len(w.p1.get(f"/api/queue?practitioner_id={me}").json["recoveries"]) == 2
    assert w.p1.get(f"/api/queue?practitioner_id={me + 100}").json["recoveries"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=loud", "status"),
        ("severity=high", "severity"),
        ("client_id=abc", "client_id"),
        ("limit=0", "limit"),
        ("practitioner_id=-1", "practitioner_id"),
    ],
)
def test_bad_filters_are_422(seven, query, field):
    r = seven.p1.get(f"/api/queue?{query}")
    assert r.status_code == 422 and field in r.json["error"]["fields"]


def test_acknowledge_claims_and_keeps_the_first_claimant(seven):
    w = seven
    sam = Api(w.app)
    me = w.p1.post(
        "/api/practitioners",
        {"email": "sam@clinic-one.net", "name": "Sam", "password": "long enough password"},
    ).json
    assert sam.post(
        "/api/auth/login", {"email": me["email"], "password": "long enough password"}
    ).json
    sid = w.carol_session["id"]
    r = sam.post(f"/api/queue/{sid}/acknowledge", {})
    assert r.status_code == 200, r.json
    assert r.json["handled_by"] == {"id": me["id"], "name": "Sam"}
    assert r.json["status"] == "acknowledged"
    assert {f["status"] for f in r.json["flags"]} == {"acknowledged"}
    # A colleague acknowledging afterwards does not take it over, per recovery or per flag.
    again = w.p1.post(f"/api/queue/{sid}/acknowledge", {}).json
    assert again["handled_by"]["name"] == "Sam"
    flag_id = again["flags"][0]["id"]
    w.p1.post(f"/api/flags/{flag_id}/acknowledge", {})
    assert count(w.app, "flags", "id = ? AND acknowledged_by = ?", (flag_id, me["id"])) == 1
    [carol] = w.p1.get(f"/api/queue?client_id={w.carol['id']}").json["recoveries"]
    assert carol["handled_by"]["name"] == "Sam"


def test_called_and_resolve_apply_to_every_flag_and_need_a_note(seven):
    w = seven
    sid = w.session1["id"]
    called = w.p1.post(f"/api/queue/{sid}/called", {}).json
    assert called["called_at"] and all(f["called_at"] for f in called["flags"])
    missing = w.p1.post(f"/api/queue/{sid}/resolve", {})
    assert missing.status_code == 422 and "note" in missing.json["error"]["fields"]
    blank = w.p1.post(f"/api/queue/{sid}/resolve", {"note": "   "})
    assert blank.status_code == 422
    assert count(w.app, "flags", "session_id = ? AND status = 'resolved'", (sid,)) == 0
    done = w.p1.post(f"/api/queue/{sid}/resolve", {"note": "Sent to A&E; GP informed."})
    assert done.status_code == 200
    assert done.json["status"] == "resolved" and len(done.json["flags"]) == 4
    assert done.json["resolution"]["note"] == "Sent to A&E; GP informed."
    assert done.json["resolution"]["by"]["name"] == "Dr one@clinic-one.net"
    # Flags stay per rule in the data and the audit.
    assert count(w.app, "flag_events", "action = 'resolve'") == 4
    assert count(w.app, "audit_log", "action = 'flag_resolve'") == 4
    assert [i["client_name"] for i in w.p1.get("/api/queue").json["recoveries"]] == ["Carol"]
    again = w.p1.post(f"/api/queue/{sid}/resolve", {"note": "again"})
    assert again.status_code == 409
    [resolved] = w.p1.get("/api/queue?status=resolved").json["recoveries"]
    assert resolved["client_name"] == "Alice" and resolved["resolution"]["at"]


def test_a_flag_that_arrived_unseen_stays_open(seven):
    w = seven
    sid = w.session1["id"]
    seen = [f["id"] for f in w.p1.get("/api/queue").json["recoveries"][0]["flags"]]
    w.c1.post("/api/checkins", checkin_body(warning_signs={"blisters": True}))
    r = w.p1.post(f"/api/queue/{sid}/resolve", {"note": "Seen in clinic", "flag_ids": seen})
    assert r.status_code == 200
    assert r.json["status"] == "open"
    assert [f["rule"] for f in r.json["flags"] if f["status"] == "open"] == ["U5"]
    [alice] = w.p1.get(f"/api/queue?client_id={w.client1['id']}").json["recoveries"]
    assert [f["rule"] for f in alice["flags"]] == ["U5"]
    stray = w.p1.post(f"/api/queue/{sid}/resolve", {"note": "x", "flag_ids": [seen[0] + 999]})
    assert stray.status_code == 422 and "flag_ids" in stray.json["error"]["fields"]


def test_flag_ids_written_as_whole_floats_are_those_flags(seven):
    """JSON's 7.0 is the integer 7 (the schema's "integer"; schemathesis sends such ids)."""
    w = seven
    sid = w.session1["id"]
    seen = [f["id"] for f in w.p1.get("/api/queue").json["recoveries"][0]["flags"]]
    r = w.p1.post(
        f"/api/queue/{sid}/resolve", {"note": "Seen", "flag_ids": [float(i) for i in seen]}
    )
    assert r.status_code == 200, r.json
    assert {f["id"] for f in r.json["flags"] if f["status"] == "resolved"} == set(seen)


@pytest.mark.parametrize(
    "body",
    [
        {"note": 5},
        {"note": "x" * 2001},
        {"note": "ok", "flag_ids": []},
        {"note": "ok", "flag_ids": ["1"]},
        {"note": "ok", "flag_ids": [True]},
        {"note": "ok", "flag_ids": 3},
        {"note": "ok", "flag_ids": [0]},
        {"note": "ok", "flag_ids": [1.5]},
    ],
)
def test_bad_action_bodies_are_422(seven, body):
    r = seven.p1.post(f"/api/queue/{seven.session1['id']}/resolve", body)
    assert r.status_code == 422, r.json


def test_recovery_actions_are_for_the_clinic_only(seven):
    w = seven
    sid = w.session1["id"]
    for action in ("acknowledge", "called", "resolve"):
        assert w.p2.post(f"/api/queue/{sid}/{action}", {"note": "x"}).status_code == 404
        assert w.c1.post(f"/api/queue/{sid}/{action}", {"note": "x"}).status_code == 403
        assert w.anon.post(f"/api/queue/{sid}/{action}", {"note": "x"}).status_code == 401
    assert w.p2.get("/api/queue/summary").json["counts"]["urgent"] == 0
    # A session with no flags has nothing to act on.
    quiet = w.new_session(w.p1, w.client1["id"])
    assert w.p1.post(f"/api/queue/{quiet['id']}/acknowledge", {}).status_code == 404


def test_summary_counts_recoveries_and_moves_with_the_queue(seven):
    w = seven
    first = w.p1.get("/api/queue/summary").json
    assert first["counts"] == {"urgent": 1, "review": 1, "info": 0}
    audited = count(w.app, "audit_log")
    assert w.p1.get("/api/queue/summary").json == first
    assert count(w.app, "audit_log") == audited  # no personal data, so no read to record
    w.carol_phone.post(
        "/api/checkins",
        checkin_body(warning_signs={"pus": True}, taken_at=taken(75.5, w.carol_session)),
    )
    moved = w.p1.get("/api/queue/summary").json
    assert moved["version"] != first["version"]
    assert moved["counts"] == {"urgent": 2, "review": 0, "info": 0}


def test_resolving_a_single_flag_needs_a_note_too(seven):
    w = seven
    fid = w.p1.get("/api/flags").json["flags"][0]["id"]
    r = w.p1.post(f"/api/flags/{fid}/resolve", {})
    assert r.status_code == 422 and "note" in r.json["error"]["fields"]
    assert w.p1.post(f"/api/flags/{fid}/resolve", {"note": "Seen"}).status_code == 200
    assert w.p1.post(f"/api/flags/{fid}/resolve", {"note": "Again"}).status_code == 409


def test_reading_the_queue_is_audited_once(seven):
    w = seven
    before = count(w.app, "audit_log", "action = 'queue_read'")
    w.p1.get("/api/queue")
    assert count(w.app, "audit_log", "action = 'queue_read'") == before + 1
    w.p2.get("/api/queue")  # shows nobody
    assert count(w.app, "audit_log", "action = 'queue_read'") == before + 1


def test_days_since_session_is_the_one_day_number(seven):
    # "Day N" as on every page: the client's local calendar day since the session.
    w = seven
    [carol] = w.p1.get(f"/api/queue?client_id={w.carol['id']}").json["recoveries"]
    performed = datetime.fromisoformat(carol["performed_at"])
    expected = clinical.day_number(performed, datetime.now(UTC), "Europe/London")
    assert carol["days_since_session"] == expected and expected in (3, 4)


def test_hours_since_session_is_filled_in(seven):
    # Documented (number or null) on every flag of the queue and GET /api/flags, it was
    # always null: the hours from the session to now, beside days_since_session.
    w = seven
    for flags in (
        w.p1.get(f"/api/flags?client_id={w.carol['id']}").json["flags"],
        w.p1.get(f"/api/queue?client_id={w.carol['id']}").json["recoveries"][0]["flags"],
    ):
        assert len(flags) == 3
        for flag in flags:
            assert 75.9 <= flag["hours_since_session"] <= 77, flag


def test_a_late_check_in_opens_no_r3_or_r4_against_a_later_better_one(world):
    w = world
    session = w.new_session(w.p1, w.client1["id"], hours_ago=90)
    post = lambda h, r, s, p, **extra: w.c1.post(  # noqa: E731
        "/api/checkins",
        checkin_body(
            session_id=session["id"],
            taken_at=taken(h, session),
            redness=r,
            swelling=s,
            pain=p,
            **extra,
        ),
    )
    assert post(24, 2, 1, 2).json["assessment"]["status"] == "expected"
    assert post(80, 1, 0, 1).json["assessment"]["status"] == "expected"
    late = post(56, 3, 2, 6)  # queued offline on day 2, sent after the day 3 answer
    assert late.status_code == 201
    assert late.json["assessment"]["status"] == "expected"
    assert late.json["assessment"]["flags"] == []
    assert "goes by the newer one" in late.json["assessment"]["message"]
    assert count(w.app, "flags", "session_id = ?", (session["id"],)) == 0
    assert w.p1.get("/api/queue").json["recoveries"] == []
    # A warning sign in a late answer still reaches the practitioner.
    post(60, 3, 2, 6, warning_signs={"pus": True})
    [recovery] = w.p1.get("/api/queue").json["recoveries"]
    assert [f["rule"] for f in recovery["flags"]] == ["U3"]


def test_one_worse_check_in_is_one_recovery_with_three_reasons(world):
    w = world
    session = w.new_session(w.p1, w.client1["id"], hours_ago=60)
    for h, r, s, p in ((24, 2, 1, 2), (56, 3, 2, 5)):
        answer = w.c1.post(
            "/api/checkins",
            checkin_body(
                session_id=session["id"], taken_at=taken(h, session), redness=r, swelling=s, pain=p
            ),
        ).json
    assert answer["assessment"]["status"] == "review"
    assert answer["assessment"]["message"].startswith("What you reported on day")
    [recovery] = w.p1.get("/api/queue").json["recoveries"]
    assert sorted(f["rule"] for f in recovery["flags"]) == ["R1", "R2", "R4"]


def test_the_session_form_starts_at_now(world):
    from zoneinfo import ZoneInfo

    w = world
    html = w.p1.get(f"/clinic/clients/{w.client1['id']}/sessions/new").get_data(as_text=True)
    zone = ZoneInfo(w.client1["timezone"])
    now = datetime.now(UTC)
    near = {
        (now + timedelta(minutes=d)).astimezone(zone).strftime("%Y-%m-%dT%H:%M") for d in (-1, 0)
    }
    assert any(
        f'name="performed_at" type="datetime-local" required value="{v}"' in html for v in near
    )


def test_no_page_reloads_itself():
    from pathlib import Path

    import companion

    templates = Path(companion.__file__).parent / "templates"
    reloading = [p.name for p in templates.rglob("*.html") if "http-equiv" in p.read_text()]
    assert reloading == []


def test_the_queue_page_shows_recoveries_and_says_what_will_appear(seven):
    w = seven
    html = w.p1.get("/clinic/").get_data(as_text=True)
    assert html.count('class="recovery ') == 2 and html.count('class="chip ') == 7
    assert "Nobody on it yet" in html and 'id="queue-empty" hidden' in html
    assert "<title>(1 urgent) Queue: 2 recoveries to review" in html
    empty = w.p2.get("/clinic/").get_data(as_text=True)
    assert "No recoveries need you now. When a check-in falls outside" in empty
    resolved = w.p1.get("/clinic/?status=resolved").get_data(as_text=True)
    assert "Recoveries you resolve show here with their note" in resolved
    w.p1.post(f"/api/queue/{w.session1['id']}/resolve", {"note": "Antibiotics from the GP."})
    resolved = w.p1.get("/clinic/?status=resolved").get_data(as_text=True)
    assert "Antibiotics from the GP." in resolved and "Resolved by" in resolved
    assert "Waiting" not in resolved


def test_recovery_forms_on_the_page(seven):
    import re

    w = seven
    html = w.p1.get("/clinic/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    carol_ids = [f["id"] for f in w.p1.get(f"/api/flags?client_id={w.carol['id']}").json["flags"]]
    form = {"csrf_token": token, "flag_id": [str(i) for i in carol_ids]}
    r = w.p1.http.post("/clinic/recoveries/acknowledge", data=form)
    assert r.status_code == 302
    [carol] = w.p1.get(f"/api/queue?client_id={w.carol['id']}").json["recoveries"]
    assert carol["handled_by"]["name"] == "Dr one@clinic-one.net"
    w.p1.http.post("/clinic/recoveries/resolve", data=form | {"note": "  "})
    assert count(w.app, "flags", "status = 'resolved'") == 0  # a note is required
    w.p1.http.post("/clinic/recoveries/resolve", data=form | {"note": "Settling; photo tomorrow"})
    assert count(w.app, "flags", "status = 'resolved' AND note = 'Settling; photo tomorrow'") == 3
    # Another clinic's practitioner cannot act on these flags.
    other = w.p2.get("/clinic/").get_data(as_text=True)
    other_token = re.search(r'name="csrf_token" value="([^"]+)"', other).group(1)
    alice_ids = [str(f["id"]) for f in w.p1.get("/api/flags").json["flags"]]
    r = w.p2.http.post(
        "/clinic/recoveries/called", data={"csrf_token": other_token, "flag_id": alice_ids}
    )
    assert r.status_code == 404


def test_the_resolved_view_shows_the_latest_resolution_first(seven):
    w = seven
    w.p1.post(f"/api/queue/{w.carol_session['id']}/resolve", {"note": "First"})
    w.p1.post(f"/api/queue/{w.session1['id']}/resolve", {"note": "Second"})
    items = w.p1.get("/api/queue?status=resolved").json["recoveries"]
    assert [i["resolution"]["note"] for i in items] == ["Second", "First"]
    assert all(i["status"] == "resolved" for i in items)


def test_a_chip_says_only_what_its_title_does_not():
    from companion.review.queue import chip_reason

    london, new_york = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
    pus = "Pus, yellow crusts or discharge reported on day 0"
    assert chip_reason("U3", pus, london) == "Reported on day 0"
    # U4's reason names the sign in other words than its title: still only the rest.
    eye = "Swelling around the eye, vision change or trouble breathing reported on day 2"
    assert chip_reason("U4", eye, london) == "Reported on day 2"
    fever = "Fever of 38.0 °C / 100.4 °F or more, or chills reported on day 1"
    assert chip_reason("U2", fever, london) == "Reported on day 1"
    # Reasons that say more than their title are left whole.
    r1 = "Redness 3/4 on day 3 (expected at most 2/4 by now)"
    assert chip_reason("R1", r1, london) == r1
    assert chip_reason("U3", None, london) == ""
    n3 = (
        "No answer to 2 scheduled check-ins in a row (2026-11-27 23:30 UTC to 2026-11-28 09:00 UTC)"
    )
    assert chip_reason("N3", n3, new_york) == (
        "No answer to 2 scheduled check-ins in a row (27 Nov, 18:30 to 28 Nov, 04:00)"
    )
    summer = (
        "No answer to 3 scheduled check-ins in a row (2026-07-01 08:00 UTC to 2026-07-02 08:00 UTC)"
    )
    assert chip_reason("N3", summer, london).endswith("(1 Jul, 09:00 to 2 Jul, 09:00)")


def test_the_queue_page_chips_repeat_no_title_and_show_n3_in_the_clinics_zone(seven, app):
    import re

    from companion.checkins import flags
    from companion.db import connect, parse_iso

    w = seven
    html = w.p1.get("/clinic/").get_data(as_text=True)
    chips = re.findall(r'<li class="chip [^"]*"[^>]*>(.*?)</li>', html, re.S)
    u3 = next(chip for chip in chips if "<strong>U3</strong>" in chip)
    assert "Pus, yellow crusts or discharge" in u3  # the title, once
    assert re.search(r'<span class="reason">Reported on day \d+</span>', u3)
    for chip in chips:
        title, reason = re.search(
            r"</strong> (.*?)(?:<span class=\"new\".*)?<span class=\"reason\">(.*?)</span>",
            chip,
            re.S,
        ).groups()
        assert not reason.lower().startswith(title.strip().lower()), chip
    assert "UTC" not in html
    # N3 for Alice, in a clinic on New York time: its times are New York's, as in the rest.
    db = connect(app.config["DATABASE"])
    db.conn.execute(
        "UPDATE clinics SET timezone = 'America/New_York'"
        " WHERE id = (SELECT clinic_id FROM clients WHERE id = ?)",
        (w.client1["id"],),
    )
    db.conn.commit()
    due = [
        parse_iso(r[0])
        for r in db.conn.execute(
            "SELECT due_at FROM notifications WHERE session_id = ? AND kind = 'checkin'"
            " ORDER BY due_at",
            (w.session1["id"],),
        )
    ]
    with app.app_context():
        assert flags.check_missed(db, due[1] + timedelta(hours=13)) >= 1
    ((reason,),) = db.conn.execute(
        "SELECT reason FROM flags WHERE rule = 'N3' AND session_id = ?", (w.session1["id"],)
    ).fetchall()
    db.close()
    first = datetime.strptime(re.search(r"\((\S+ \S+) UTC", reason).group(1), "%Y-%m-%d %H:%M")
    local = first.replace(tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
    html = w.p1.get("/clinic/").get_data(as_text=True)
    n3 = next(
        c
        for c in re.findall(r'<li class="chip [^"]*"[^>]*>(.*?)</li>', html, re.S)
        if "<strong>N3</strong>" in c
    )
    assert f"({local:%-d %b, %H:%M} to " in n3 and "UTC" not in n3


def test_a_flagged_clients_page_opens_on_their_open_flags_with_the_actions(seven):
    # From the queue a practitioner opens the client to read the chart and photos; their open
    # flags were at the foot of the page (below exports, devices and phones) with no way to act.
    import re

    w = seven
    page = f"/clinic/clients/{w.carol['id']}"
    html = w.p1.get(page).get_data(as_text=True)
    flags = html.index("Open flags")
    assert flags < html.index("Export Carol") < html.index("<h2>Sessions</h2>")
    for rule in ("R1", "R2", "R4"):
        assert f"<strong>{rule}</strong>" in html[flags : html.index("Export Carol")]
    assert "Nobody on it yet" in html
    form = html[flags : html.index("Export Carol")]
    ids = re.findall(r'name="flag_id" value="(\d+)"', form)
    carol_ids = {
        str(f["id"]) for f in w.p1.get(f"/api/flags?client_id={w.carol['id']}").json["flags"]
    }
    assert set(ids) == carol_ids
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    back = re.search(r'name="back" value="([^"]+)"', form).group(1)
    data = {"csrf_token": token, "flag_id": sorted(carol_ids), "back": back}
    r = w.p1.http.post("/clinic/recoveries/acknowledge", data=data)
    assert r.status_code == 302 and r.headers["Location"].endswith(page)
    assert "is on it" in w.p1.get(page).get_data(as_text=True)
    r = w.p1.http.post("/clinic/recoveries/resolve", data=data | {"note": "Rang her: settling"})
    assert r.headers["Location"].endswith(page)
    assert count(w.app, "flags", "status = 'resolved' AND note = 'Rang her: settling'") == 3
    # Nothing open: the page starts with the client again; a client with no flags has no box.
    assert "Open flags" not in w.p1.get(page).get_data(as_text=True)


def test_the_client_list_says_who_is_in_the_queue_and_how_urgently(seven):
    # A client phones in; the practitioner finds them on Clients, which said nothing of flags.
    import re

    w = seven
    html = w.p1.get("/clinic/clients").get_data(as_text=True)
    rows = {
        re.search(r">([^<]+)</a>", row).group(1): row
        for row in re.findall(r"<tr><td><a class=\"row-link\".*?</tr>", html, re.S)
    }
    assert "⚠ Urgent" in rows["Alice"] and "Review today" in rows["Carol"]
    w.p1.post(f"/api/queue/{w.carol_session['id']}/resolve", {"note": "Settling"})
    html = w.p1.get("/clinic/clients").get_data(as_text=True)
    carol = re.search(r'<tr><td><a class="row-link"[^>]*>Carol</a>.*?</tr>', html, re.S).group(0)
    assert "flag-tag" not in carol
    # Another clinic's list shows none of this clinic's flags.
    assert "flag-tag" not in w.p2.get("/clinic/clients").get_data(as_text=True)


def test_the_queue_page_takes_the_apis_filter_names(seven):
    # The README gives the page and GET /api/queue the same filters; the page read only its
    # own `practitioner` and no `client_id`, so /clinic/?client_id=N showed everyone.
    w = seven

    def names(query):
        html = w.p1.get(f"/clinic/{query}").get_data(as_text=True)
        return [n for n in ("Alice", "Carol") if f">{n}</a></h2>" in html]

    assert names("") == ["Alice", "Carol"]
    assert names(f"?client_id={w.carol['id']}") == ["Carol"]
    one = w.p1.get(f"/clinic/?client_id={w.carol['id']}").get_data(as_text=True)
    assert "Only one client’s recoveries" in one and 'name="client_id"' in one
    me = w.p1.get("/api/me").json["practitioner"]["id"]
    assert names(f"?practitioner_id={me}") == ["Alice", "Carol"]
    assert names("?practitioner_id=999999") == []
    assert names(f"?practitioner={me}&severity=review") == ["Carol"]
    # Another clinic's client is nobody here.
    assert names(f"?client_id={w.client2['id']}") == []


@pytest.mark.parametrize("late", ["resolve", "called", "acknowledge"])
def test_a_colleagues_resolution_stands_against_a_request_that_read_before_it(seven, late):
    # Two practitioners on one recovery at once (two tablets, two workers): the second request
    # read the flags as open, then the first resolved them. The late request overwrote the
    # first resolution's note and author, or ("called", "acknowledge") made the flags active again.
    from types import SimpleNamespace

    from companion.db import connect, get_db, utcnow
    from companion.errors import Conflict
    from companion.review import recoveries

    w = seven
    me = w.p1.get("/api/me").json["practitioner"]
    ids = [f["id"] for f in w.p1.get(f"/api/flags?client_id={w.carol['id']}").json["flags"]]
    db = connect(w.app.config["DATABASE"])
    stale = recoveries.flags_by_id(db, me["clinic_id"], ids)
    db.close()
    assert {f["status"] for f in stale} == {"open"}
    r = w.p1.post(f"/api/queue/{w.carol_session['id']}/resolve", {"note": "First: rang her"})
    assert r.status_code == 200
    actor = SimpleNamespace(
        id=me["id"], clinic_id=me["clinic_id"], kind="practitioner", is_authenticated=True
    )
    with w.app.test_request_context(), pytest.raises(Conflict):
        recoveries.act(get_db(), actor, stale, late, "Second", utcnow())
    flags = w.p1.get(f"/api/flags?client_id={w.carol['id']}&status=all").json["flags"]
    assert {(f["status"], f["note"]) for f in flags} == {("resolved", "First: rang her")}
    assert w.p1.get(f"/api/queue?client_id={w.carol['id']}").json["recoveries"] == []
