"""Triage rules against recovery scenarios built from docs/clinical.md."""

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion import clinical
from companion.checkins import triage

pytestmark = pytest.mark.filterwarnings("error")

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
SYMPTOMS = ("bruising", "peeling", "itching", "oozing", "bumps", "patches")
SIGNS = ("spreading_redness", "fever", "pus", "eye_or_breathing", "blisters")
SCORE_MAX = {"redness": 4, "swelling": 4, "pain": 10}
STATUS_RANK = {"expected": 0, "review": 1, "urgent": 2}  # "info" findings leave it "expected"


def session(depth=None):
    return {"performed_at": T0, "needle_depth_mm": depth}


def ci(hours, redness=0, swelling=0, pain=0, marks="", id=None):
    """Make a check-in `hours` after T0; marks names the symptoms and warning signs ticked."""
    ticked = set(marks.split())
    assert ticked <= set(SYMPTOMS + SIGNS), ticked
    return {
        "id": id or f"c{hours}",
        "taken_at": T0 + timedelta(hours=hours),
        "redness": redness,
        "swelling": swelling,
        "pain": pain,
        "symptoms": {k: True for k in SYMPTOMS if k in ticked},
        "warning_signs": {k: True for k in SIGNS if k in ticked},
        "note": None,
    }


def at(h):
    return T0 + timedelta(hours=h)


def found(result):
    return {(f["rule"], f["severity"]) for f in result["flags"]}


NONE = set()
U = "urgent"
R = "review"
N = "info"

# Normal courses: redness 2-3 and swelling 1-2 early, falling; peeling, itching and
# bruising in the first week; pain at most 4 on day 0 and falling. None may alert.
NORMAL = [
    ("0.25 classic", 0.25, [(2, 3, 2, 4, "oozing"), (24, 2, 1, 2), (56, 1, 1, 1, "peeling"),
                            (80, 1, 0, 0, "peeling itching"), (128, 0, 0, 0, "peeling"), (176, 0, 0, 0)]),
    ("0.25 bruised", 0.25, [(24, 2, 1, 2, "bruising"), (56, 1, 0, 1, "bruising peeling"),
                            (80, 0, 0, 0, "bruising itching"), (128, 0, 0, 0, "bruising")]),
    ("0.25 day 0 only", 0.25, [(5, 2, 2, 3, "oozing")]),
    ("no depth recorded", None, [(24, 2, 1, 2), (56, 2, 1, 1, "peeling"), (80, 1, 0, 0, "itching")]),
    ("0.5 classic", 0.5, [(24, 3, 2, 3), (56, 2, 1, 2, "peeling"), (80, 1, 1, 1, "peeling itching"),
                          (128, 1, 0, 0, "peeling"), (176, 0, 0, 0)]),
    ("0.5 bruised", 0.5, [(24, 2, 2, 2, "bruising"), (56, 2, 1, 1, "bruising"),
                          (80, 1, 0, 0, "bruising peeling")]),
    ("0.5 steady scores", 0.5, [(24, 2, 1, 1), (56, 1, 1, 1), (80, 1, 1, 1, "peeling")]),
    ("1.0 classic", 1.0, [(24, 3, 2, 3), (56, 3, 2, 2), (80, 2, 1, 1, "peeling"),
                          (128, 2, 1, 0, "peeling itching"), (176, 1, 0, 0, "peeling"), (300, 0, 0, 0)]),
    ("1.0 swollen", 1.0, [(24, 3, 3, 4, "oozing"), (56, 2, 2, 3, "bruising"),
                          (80, 2, 2, 2, "bruising peeling"), (128, 1, 1, 1, "bruising itching")]),
    ("1.5 classic", 1.5, [(24, 3, 2, 4), (56, 3, 2, 3, "bruising"), (80, 2, 2, 2, "bruising peeling"),
                          (128, 2, 1, 1, "peeling itching"), (176, 1, 1, 0, "peeling")]),
    ("1.5 first day", 1.5, [(3, 3, 3, 4, "oozing"), (30, 3, 2, 3)]),
    ("2.0 classic", 2.0, [(24, 3, 3, 4), (56, 3, 2, 3), (80, 3, 2, 2, "peeling"),
                          (128, 2, 2, 1, "peeling bruising"), (176, 1, 1, 0, "peeling itching")]),
    ("2.0 red on day 4", 2.0, [(24, 3, 2, 3, "bruising"), (100, 3, 2, 2, "bruising peeling")]),
    ("2.5 slow", 2.5, [(24, 3, 3, 4), (56, 3, 3, 3, "bruising"), (100, 2, 2, 2, "bruising peeling"),
                       (150, 2, 1, 1, "peeling itching"), (200, 1, 1, 0, "peeling"), (300, 1, 0, 0)]),
    ("2.5 bruised", 2.5, [(6, 3, 2, 3, "oozing"), (24, 3, 2, 2), (56, 3, 2, 1, "bruising"),
                          (80, 2, 1, 1, "bruising peeling itching")]),
]  # fmt: skip

# Each rule fires, next to a near miss that must not.
RULES_TABLE = [
    ("U1 spreading redness", 0.25, [(24, 2, 1, 2, "spreading_redness")], {("U1", U)}, U),
    ("U1 near: deep red only", 0.25, [(24, 3, 1, 2)], NONE, "expected"),
    ("U2 fever", 0.25, [(24, 2, 1, 2), (40, 2, 1, 2, "fever")], {("U2", U)}, U),
    ("U2 near: itching", 0.25, [(24, 2, 1, 2), (40, 2, 1, 2, "itching")], NONE, "expected"),
    ("U3 pus", 0.25, [(56, 1, 1, 1, "pus")], {("U3", U)}, U),
    ("U3 near: pinpoint oozing", 0.25, [(3, 3, 2, 3, "oozing")], NONE, "expected"),
    ("U4 eye or breathing", 0.25, [(5, 2, 2, 3, "eye_or_breathing")], {("U4", U)}, U),
    ("U4 near: swollen day 0", 0.25, [(5, 2, 3, 3)], NONE, "expected"),
    ("U5 blisters day 2", 0.25, [(40, 2, 1, 2, "blisters")], {("U5", U)}, U),
    ("U5 blisters day 8", 0.25, [(200, 0, 0, 0, "blisters")], {("U5", U)}, U),
    ("U5 near: peeling", 0.25, [(60, 1, 1, 1, "peeling itching")], NONE, "expected"),
    ("R1 redness 3 at 50 h", 0.25, [(24, 3, 2, 3), (50, 3, 1, 2)], {("R1", R)}, R),
    ("R1 near: 3 at 47 h", 0.25, [(24, 3, 2, 3), (47, 3, 1, 2)], NONE, "expected"),
    ("R1 redness 2 at 100 h", 0.25, [(24, 2, 1, 1), (56, 2, 1, 1), (100, 2, 0, 0)], {("R1", R)}, R),
    ("R1 near: 2 at 90 h", 0.25, [(24, 2, 1, 1), (56, 2, 1, 1), (90, 2, 0, 0)], NONE, "expected"),
    ("R1 near: 2 at 100 h, 2.5 mm", 2.5, [(24, 2, 1, 1), (56, 2, 1, 1), (100, 2, 0, 0)], NONE, "expected"),
    ("R1 redness 1 after day 7", 0.25, [(176, 1, 0, 0)], {("R1", R)}, R),
    ("R1 near: 1 on day 6", 0.25, [(165, 1, 0, 0)], NONE, "expected"),
    ("R1 near: 1 after day 7, 1.0 mm", 1.0, [(176, 1, 0, 0)], NONE, "expected"),
    ("R1 redness 3 at 85 h, 1.0 mm", 1.0, [(85, 3, 1, 1)], {("R1", R)}, R),
    ("R1 near: 3 at 75 h, 1.0 mm", 1.0, [(75, 3, 1, 1)], NONE, "expected"),
    ("R1 escalates: raw at 75 h", 0.25, [(75, 4, 1, 2)], {("R1", U)}, U),
    ("R1 raw at 75 h and rising", 0.25, [(24, 3, 2, 3), (75, 4, 1, 2)], {("R1", U)}, U),  # R1 names the rise
    ("R1 near: raw on day 0", 0.25, [(6, 4, 2, 3)], NONE, "expected"),
    ("R2 swelling 3 at 75 h", 0.25, [(75, 1, 3, 1)], {("R2", R)}, R),
    ("R2 near: 3 at 70 h", 0.25, [(70, 1, 3, 1)], NONE, "expected"),
    ("R2 near: 3 at 100 h, 2.5 mm", 2.5, [(100, 1, 3, 1)], NONE, "expected"),
    ("R2 swelling rising", 0.25, [(24, 2, 1, 2), (56, 2, 2, 2)], {("R2", R)}, R),  # R2's trend, not R3 too
    ("R2 near: rising on day 1", 0.25, [(10, 2, 1, 2), (40, 2, 2, 2)], NONE, "expected"),
    ("R2 escalates: swelling 4 at 30 h", 0.25, [(30, 2, 4, 3)], {("R2", U)}, U),
    ("R2 near: swelling 4 at 20 h", 0.25, [(20, 2, 4, 3)], NONE, "expected"),
    ("R3 redness back up", 0.25, [(24, 2, 1, 2), (56, 1, 1, 1), (80, 2, 0, 0)], {("R3", R)}, R),
    ("R3 near: up on day 1", 0.25, [(10, 1, 1, 2), (40, 2, 1, 2)], NONE, "expected"),
    ("R4 pain 7", 0.25, [(2, 3, 2, 7)], {("R4", R)}, R),
    ("R4 near: pain 6", 0.25, [(2, 3, 2, 6)], NONE, "expected"),
    ("R4 escalates: pain 9", 0.25, [(2, 3, 2, 9)], {("R4", U)}, U),
    ("R4 pain rising on day 1", 0.25, [(24, 2, 1, 2), (30, 2, 1, 3)], {("R4", R)}, R),
    ("R4 near: rising on day 0", 0.25, [(5, 2, 1, 2), (20, 2, 1, 3)], NONE, "expected"),
    ("R4 rising on day 3, not R3 too", 0.25, [(56, 1, 1, 1), (80, 1, 1, 2)], {("R4", R)}, R),
    ("R5 bruising on day 7", 0.25, [(170, 0, 0, 0, "bruising")], {("R5", R)}, R),
    ("R5 near: bruising on day 6", 0.25, [(160, 0, 0, 0, "bruising")], NONE, "expected"),
    ("N1 bumps on day 3", 0.25, [(80, 1, 0, 0, "bumps")], {("N1", N)}, "expected"),
    ("N1 near: bumps on day 2", 0.25, [(60, 1, 0, 0, "bumps")], NONE, "expected"),
    ("N2 patches on day 3", 0.25, [(80, 1, 0, 0, "patches")], {("N2", N)}, "expected"),
    ("N2 near: patches on day 2", 0.25, [(60, 1, 0, 0, "patches")], NONE, "expected"),
    ("N2 near: patches on day 3, 2.5 mm", 2.5, [(80, 1, 0, 0, "patches")], NONE, "expected"),
    ("N2 patches on day 7, 2.5 mm", 2.5, [(170, 1, 0, 0, "patches")], {("N2", N)}, "expected"),
    ("many at once", 0.25, [(56, 2, 2, 3), (80, 3, 3, 9, "pus fever")],
     {("U2", U), ("U3", U), ("R1", R), ("R2", R), ("R4", U)}, U),
    ("clock skew before session", 0.25, [(-0.5, 2, 1, 2)], NONE, "expected"),
]  # fmt: skip


@pytest.mark.parametrize(("depth", "steps"), [pytest.param(d, s, id=n) for n, d, s in NORMAL])
def test_normal_course_never_alerts(depth, steps):
    # Every prefix of a normal course is itself a normal course.
    for end in range(1, len(steps) + 1):
        result = triage.assess(session(depth), [ci(*step) for step in steps[:end]])
        assert result["flags"] == [], (steps[end - 1], result["flags"])
        assert result["status"] == "expected"


@pytest.mark.parametrize(
    ("depth", "steps", "expected", "status"),
    [pytest.param(d, s, e, st_, id=n) for n, d, s, e, st_ in RULES_TABLE],
)
def test_rule_scenarios(depth, steps, expected, status):
    checkins = [ci(*step) for step in steps]
    random.Random(len(steps)).shuffle(checkins)  # history arrives in any order
    result = triage.assess(session(depth), checkins)
    assert found(result) == expected
    assert result["status"] == status
    assert all(f["reason"] for f in result["flags"])


def test_every_rule_has_a_scenario_that_fires_it():
    fired = {rule for *_, expected, _ in RULES_TABLE for rule, _ in expected}
    assert fired == set(clinical.RULES) - {"N3"}


@pytest.mark.parametrize(
    ("steps", "depth", "rule", "reason"),
    [
        ([(52, 3, 1, 1)], None, "R1", "Redness 3/4 on day 2 (expected ≤2 from 48 h)"),
        ([(120, 3, 1, 1)], 2.5, "R1", "Redness 3/4 on day 5 (expected ≤2 from 112 h at 2.5 mm)"),
        ([(75, 1, 3, 1)], 0.5, "R2", "Swelling 3/4 on day 3 (expected ≤2 from 72 h)"),
        (
            [(24, 1, 1, 1), (56, 2, 1, 1)],
            0.5,
            "R3",
            "Worse than the check-in on day 1: redness 1→2",
        ),
        ([(2, 1, 1, 8)], 0.5, "R4", "Pain 8/10 on day 0"),
        ([(40, 1, 1, 1, "blisters")], 0.5, "U5", "Blisters reported on day 2: suspected cold-sore"),
        ([(80, 1, 1, 1, "blisters")], 0.5, "U5", "Blisters reported on day 3: suspected cold-sore"),
        ([(100, 1, 1, 1, "blisters")], 0.5, "U5", "Blisters reported on day 4: blisters are never"),
        ([(168.5, 0, 0, 0, "bruising")], 0.5, "R5", "Bruising still present on day 7 (168 h;"),
    ],
)
def test_reasons_give_the_numbers(steps, depth, rule, reason):
    flags = triage.assess(session(depth), [ci(*s) for s in steps])["flags"]
    assert [f["reason"] for f in flags if f["rule"] == rule][0].startswith(reason)


def test_messages_follow_the_status():
    urgent = triage.assess(
        session(0.5), [ci(30, 2, 1, 2, "fever")], clinic_phone="+44 20 7946 0000"
    )
    assert urgent["message"].startswith("Contact your clinic now on +44 20 7946 0000.")
    assert "seek emergency care" in urgent["message"]
    assert "on +" not in triage.assess(session(0.5), [ci(30, 2, 1, 2, "fever")])["message"]
    review = triage.assess(session(0.5), [ci(2, 2, 1, 7)])
    assert "Your clinic will review this today" in review["message"]
    day2 = triage.assess(session(0.5), [ci(56, 2, 0, 1)])
    assert (
        day2["message"]
        == "Redness like yours is normal on day 2. It usually fades over the next day."
    )
    assert (day2["day"], day2["hours"]) == (2, 56.0)


def test_expected_message_explains_depth_and_symptoms():
    deep = triage.assess(session(2.5), [ci(100, 2, 2, 2, "peeling bruising")])["message"]
    assert deep.startswith("Redness and swelling like yours are normal on day 4 after a deeper")
    assert "They usually fade over the next two to three days." in deep
    assert "peeling" in deep and "Bruising can take up to a week to fade" in deep
    # Client words: no hours, no scores out of 4, no vendor or study citations.
    for machine in ("hour", "/4", " mm", "device maker", "clinical stud"):
        assert machine not in deep
    early = triage.assess(session(0.5), [ci(5, 1, 1, 1)])["message"]
    assert "over the next two to three days" in early and "day of your session" in early
    bumps = triage.assess(session(0.5), [ci(80, 0, 0, 0, "bumps")])["message"]
    assert "calm" in bumps and "practitioner will take a look" in bumps
    raw = triage.assess(session(0.5), [ci(5, 4, 2, 3)])["message"]
    assert "strong end" in raw and "expected" not in raw


def test_assess_needs_a_checkin():
    with pytest.raises(ValueError):
        triage.assess(session(), [])


@pytest.mark.parametrize(
    ("depth", "hours"),
    [(None, 72), (0.1, 72), (0.25, 72), (0.5, 72), (0.65, 96), (0.8, 120), (1.0, 120),
     (1.5, 120), (1.75, 144), (2.0, 168), (2.5, 168), (3.0, 168), (4.0, 168)],
)  # fmt: skip
def test_downtime_hours_uses_vendor_upper_bounds(depth, hours):
    assert triage.downtime_hours(depth) == pytest.approx(hours)


@pytest.mark.parametrize(
    ("hours", "depth", "redness", "swelling"),
    [(0, 0.5, 4, 4), (23, 0.5, 4, 4), (24, 0.5, 4, 3), (47, 0.5, 4, 3), (48, 0.5, 2, 3),
     (72, 0.5, 2, 2), (96, 0.5, 1, 2), (168, 0.5, 0, 2), (100, 2.5, 4, 3), (112, 2.5, 2, 3), (168, 2.5, 2, 2),
     (224, 2.5, 1, 2), (392, 2.5, 0, 2), (80, 1.0, 2, 3), (-1, 0.5, 4, 4)],
)  # fmt: skip
def test_expected_band(hours, depth, redness, swelling):
    assert triage.expected_band(hours, depth) == {"redness": redness, "swelling": swelling}


@given(st.floats(0, 60 * 24), st.one_of(st.none(), st.floats(0.1, 3.0)))
def test_band_matches_r1_and_r2(hours, depth):
    band = triage.expected_band(hours, depth)
    inside = triage.assess(session(depth), [ci(hours, band["redness"], band["swelling"])])
    assert not {"R1", "R2"} & {f["rule"] for f in inside["flags"]}
    if band["redness"] < 4:
        above = triage.assess(session(depth), [ci(hours, band["redness"] + 1)])
        assert "R1" in {f["rule"] for f in above["flags"]}
    if band["swelling"] < 4:
        above = triage.assess(session(depth), [ci(hours, 0, band["swelling"] + 1)])
        assert "R2" in {f["rule"] for f in above["flags"]}


def test_course_points_sorted_with_band():
    elsewhere = timezone(timedelta(hours=-5))  # any offset: only elapsed time matters
    later = {**ci(100, 1, 0), "taken_at": at(100).astimezone(elsewhere)}
    points = triage.course_points(session(0.5), [later, ci(24, 2, 1), ci(56, 2, 1)])
    assert [p["hours"] for p in points] == [24.0, 56.0, 100.0]
    assert [p["day"] for p in points] == [1, 2, 4]
    assert [(p["band_redness"], p["band_swelling"]) for p in points] == [(4, 3), (2, 3), (1, 2)]
    assert points[-1]["redness"] == 1 and points[0]["swelling"] == 1


# --- N3: missed check-ins --------------------------------------------------------------

DUE = [24, 56, 80, 128, 176]  # hours after T0, as in the default protocol


@pytest.mark.parametrize(
    ("answers", "now", "missed"),
    [
        pytest.param([24, 56, 80], 100, None, id="all answered"),
        pytest.param([], 60, None, id="second not yet overdue"),
        pytest.param([], 68, None, id="second exactly at its window"),
        pytest.param([], 69, [24, 56], id="first two missed"),
        pytest.param([24], 100, [56, 80], id="answered then two missed"),
        pytest.param([50], 100, None, id="early answer counts for the next due"),
        pytest.param([44], 100, None, id="answer at due minus window counts"),
        pytest.param([43], 100, [56, 80], id="answer just before the window"),
        pytest.param([90], 75, [24, 56], id="answer after now ignored"),
        pytest.param([75], 100, None, id="client came back late"),
        pytest.param([24], 200, [56, 80, 128, 176], id="long silence"),
    ],
)
def test_missed_checkins(answers, now, missed):
    due = [at(h) for h in reversed(DUE)]  # unordered on purpose
    result = triage.missed_checkins(due, [at(h) for h in answers], at(now))
    if missed is None:
        assert result is None
    else:
        assert (result["rule"], result["severity"]) == ("N3", "info")
        assert result["missed"] == [at(h) for h in missed]
        assert f"No answer to {len(missed)} scheduled check-ins in a row" in result["reason"]


def test_missed_checkins_custom_window_and_no_schedule():
    assert triage.missed_checkins([], [], at(500)) is None
    tight = triage.missed_checkins([at(24), at(56)], [], at(58), window=timedelta(hours=1))
    assert tight["missed"] == [at(24), at(56)]


# --- reconcile ---------------------------------------------------------------------------


def flag(id, rule, severity, status="open", reason="r"):
    return {"id": id, "rule": rule, "severity": severity, "status": status, "reason": reason}


def finding(rule, severity, reason="r"):
    return {"rule": rule, "severity": severity, "reason": reason}


@pytest.mark.parametrize(
    ("open_flags", "findings", "actions"),
    [
        pytest.param([], [finding("R1", R)], [{"action": "open", "rule": "R1", "severity": R, "reason": "r"}], id="open"),
        pytest.param([flag(1, "R1", R)], [finding("R1", R)], [], id="no duplicate"),
        pytest.param([flag(1, "R1", R, "acknowledged")], [finding("R1", R)], [], id="acknowledged counts"),
        pytest.param([flag(1, "R1", R, "resolved")], [finding("R1", R)],
                     [{"action": "open", "rule": "R1", "severity": R, "reason": "r"}], id="resolved reopens"),
        pytest.param([flag(1, "R1", R)], [finding("R1", U, "worse")],
                     [{"action": "escalate", "id": 1, "rule": "R1", "severity": U, "reason": "worse",
                       "previous_severity": R}], id="escalate"),
        pytest.param([flag(1, "R1", R)], [finding("R1", R, "Redness 3/4")],
                     [{"action": "update", "id": 1, "rule": "R1", "severity": R, "reason": "Redness 3/4"}],
                     id="update"),
        pytest.param([flag(1, "R4", U)], [finding("R4", R, "pain 7")], [], id="never lower"),
        pytest.param([flag(1, "R1", R), flag(2, "R1", U)], [finding("R1", U)], [], id="legacy duplicates"),
        pytest.param([], [finding("R4", R), finding("R4", U, "x")],
                     [{"action": "open", "rule": "R4", "severity": U, "reason": "x"}], id="highest finding"),
        pytest.param([flag(1, "U3", U)], [], [], id="nothing found"),
    ],
)  # fmt: skip
def test_reconcile(open_flags, findings, actions):
    assert triage.reconcile(open_flags, findings) == actions


# --- properties ------------------------------------------------------------------------


def booleans_of(keys):
    return st.fixed_dictionaries({}, optional={k: st.booleans() for k in keys})


checkin_st = st.builds(
    lambda h, r, s, p, sym, ws, i: {**ci(h, r, s, p, id=i), "symptoms": sym, "warning_signs": ws},
    st.floats(-1, 60 * 24),
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(0, 10),
    booleans_of(SYMPTOMS),
    booleans_of(SIGNS),
    st.uuids().map(str),
)
history_st = st.lists(checkin_st, min_size=1, max_size=6, unique_by=lambda c: c["id"])
depth_st = st.one_of(st.none(), st.floats(0.1, 3.0))


@given(history_st, depth_st, st.one_of(st.none(), st.text(max_size=20)))
def test_assess_never_crashes(history, depth, phone):
    result = triage.assess(session(depth), history, clinic_phone=phone)
    assert result["message"]
    assert result["day"] >= 0 and result["hours"] >= 0
    ranks = [clinical.severity_rank(f["severity"]) for f in result["flags"]]
    assert len({f["rule"] for f in result["flags"]}) == len(ranks)
    assert all(f["rule"] in clinical.RULES and f["reason"] for f in result["flags"])
    assert STATUS_RANK[result["status"]] == max(ranks, default=0)
    if phone and result["status"] == "urgent":
        assert f"Contact your clinic now on {phone}." in result["message"]
    assert len(triage.course_points(session(depth), history)) == len(history)


def per_rule(result):
    return {f["rule"]: clinical.severity_rank(f["severity"]) for f in result["flags"]}


@given(
    history_st,
    depth_st,
    st.lists(st.sampled_from(("redness", "swelling", "pain") + SYMPTOMS + SIGNS), min_size=1),
    st.integers(1, 10),
)
def test_worse_latest_answer_never_lowers_severity(history, depth, changes, step):
    latest = max(history, key=lambda c: (c["taken_at"], c["id"]))
    worse = {
        **latest,
        "symptoms": dict(latest["symptoms"]),
        "warning_signs": dict(latest["warning_signs"]),
    }
    for change in changes:
        if change in SCORE_MAX:
            worse[change] = min(SCORE_MAX[change], worse[change] + step)
        else:
            worse["symptoms" if change in SYMPTOMS else "warning_signs"][change] = True
    before = triage.assess(session(depth), history)
    after = triage.assess(session(depth), [worse if c is latest else c for c in history])
    assert STATUS_RANK[after["status"]] >= STATUS_RANK[before["status"]]
    later = per_rule(after)
    # A redder answer may move a rise in redness from R3 to R1 (R1 then names the rise).
    if "R3" not in later and "R1" in later:
        later["R3"] = later["R1"]
    for rule, rank in per_rule(before).items():
        assert later.get(rule, -1) >= rank, (rule, before["flags"], after["flags"])


# --- courses the issue names: one worse check-in, late check-ins ---------------------------


def test_one_check_in_breaking_r1_r2_and_r4_is_three_reasons_and_one_message():
    result = triage.assess(session(0.5), [ci(24, 2, 1, 2), ci(56, 3, 2, 5)], "+44 20 7946 0000")
    assert found(result) == {("R1", R), ("R2", R), ("R4", R)}  # R3 says nothing they do not
    reasons = {f["rule"]: f["reason"] for f in result["flags"]}
    assert reasons["R1"].endswith("up from 2/4 in the check-in on day 1")
    assert reasons["R2"].startswith("Swelling up from 1/4") and reasons["R4"].startswith("Pain up")
    message = result["message"]
    assert message.startswith("What you reported on day 2 needs a look: redness higher than")
    assert "swelling" in message and "pain" in message and message.count("Your clinic") == 1
    assert "contact your clinic now on +44 20 7946 0000." in message


def test_r3_still_fires_for_redness_back_up_within_the_band():
    result = triage.assess(session(0.25), [ci(24, 2, 1, 2), ci(56, 1, 1, 1), ci(80, 2, 0, 0)])
    assert found(result) == {("R3", R)}
    assert "redness worse than at your last check-in" in result["message"]


LATE_COURSE = [ci(24, 2, 1, 2), ci(80, 1, 0, 1), ci(56, 3, 3, 6, id="late")]


@pytest.mark.parametrize("order", [[0, 1, 2], [1, 0, 2]])
def test_a_late_worse_check_in_opens_no_score_rule_against_a_later_better_one(order):
    history = [LATE_COURSE[i] for i in order]
    result = triage.assess(session(0.25), history, checkin_id="late")
    assert result["flags"] == [] and result["status"] == "expected"
    assert "arrived after your answer from day 3" in result["message"]
    assert (result["day"], result["superseded"]) == (2, True)
    # The same answer in its place (nothing later yet) is R1, R2 and R4.
    in_time = triage.assess(session(0.25), [LATE_COURSE[0], LATE_COURSE[2]])
    assert {f["rule"] for f in in_time["flags"]} == {"R1", "R2", "R4"}
    assert in_time["superseded"] is False


def test_a_late_check_in_from_the_same_day_says_so_plainly():
    later, late = ci(57, 1, 0, 1, id="later"), ci(56, 3, 3, 6, id="late")
    result = triage.assess(session(0.25), [later, late], checkin_id="late")
    assert result["superseded"] and result["day"] == triage.assess(session(0.25), [later])["day"]
    assert result["message"] == (
        f"Saved. You had already sent a newer answer for day {result['day']}, so your clinic"
        " goes by that one."
    )


def test_a_late_check_in_still_raises_its_warning_signs_and_symptoms():
    late = ci(56, 3, 3, 8, "pus bruising", id="late")
    result = triage.assess(
        session(0.25), [ci(24, 2, 1, 2), ci(80, 1, 0, 1), late], checkin_id="late"
    )
    assert found(result) == {("U3", U)} and result["status"] == "urgent"


def test_assess_defaults_to_the_latest_check_in():
    history = [ci(24, 2, 1, 2), ci(56, 3, 2, 5)]
    assert triage.assess(session(0.5), history) == triage.assess(
        session(0.5), history, checkin_id="c56"
    )


flag_st = st.fixed_dictionaries(
    {
        "rule": st.sampled_from(sorted(clinical.RULES)),
        "severity": st.sampled_from(clinical.SEVERITIES),
        "status": st.sampled_from(("open", "acknowledged", "resolved")),
        "reason": st.sampled_from(("a", "b")),
    }
)
finding_st = st.builds(
    finding,
    st.sampled_from(sorted(clinical.RULES)),
    st.sampled_from(clinical.SEVERITIES),
    st.sampled_from(("a", "b")),
)


@settings(max_examples=300)
@given(st.lists(flag_st, max_size=8), st.lists(finding_st, max_size=8))
def test_reconcile_never_lowers_and_never_duplicates(open_flags, findings):
    flags = {i: {**f, "id": i} for i, f in enumerate(open_flags)}
    actions = triage.reconcile(list(flags.values()), findings)
    rank = clinical.severity_rank
    assert len({a["rule"] for a in actions}) == len(actions)  # one action per rule

    def live(rule):
        return [f for f in flags.values() if f["rule"] == rule and f["status"] != "resolved"]

    before = {rule: len(live(rule)) for rule in clinical.RULES}
    for action in actions:
        if action["action"] == "open":
            assert not live(action["rule"])
            flags[len(flags)] = {**action, "id": len(flags), "status": "open"}
        else:
            target = flags[action["id"]]
            assert target["rule"] == action["rule"] and target["status"] != "resolved"
            assert rank(action["severity"]) >= rank(target["severity"])
            if action["action"] == "escalate":
                assert rank(action["severity"]) > rank(action["previous_severity"])
                assert action["previous_severity"] == target["severity"]
            target.update(severity=action["severity"], reason=action["reason"])
    for rule in clinical.RULES:  # no new duplicates; every finding is covered at its severity
        assert len(live(rule)) == max(
            before[rule], min(1, sum(f["rule"] == rule for f in findings))
        )
        wanted = [rank(f["severity"]) for f in findings if f["rule"] == rule]
        if wanted:
            assert max(rank(f["severity"]) for f in live(rule)) >= max(wanted)


# --- "Day N": one definition (clinical.day_number) ---------------------------------------


@pytest.mark.parametrize(
    ("performed", "taken", "tz", "day"),
    [
        # A 20:00 session; a check-in at 02:00 the next morning is day 1, though only 6 h later.
        ("2025-06-10T18:00:00+00:00", "2025-06-11T00:00:00+00:00", "Europe/Paris", 1),
        # The same instants in New York are still the session's day.
        ("2025-06-10T18:00:00+00:00", "2025-06-11T00:00:00+00:00", "America/New_York", 0),
        # 47 h later, across the spring-forward night (2025-03-09 in New York): day 2.
        ("2025-03-08T15:00:00+00:00", "2025-03-10T14:00:00+00:00", "America/New_York", 2),
        # Before the session (a phone clock behind) counts as day 0.
        ("2025-06-10T18:00:00+00:00", "2025-06-09T18:00:00+00:00", "UTC", 0),
    ],
)
def test_day_is_the_clients_local_calendar_day(performed, taken, tz, day):
    performed, taken = datetime.fromisoformat(performed), datetime.fromisoformat(taken)
    assert clinical.day_number(performed, taken, tz) == day
    checkin = {**ci(0), "taken_at": max(taken, performed)}
    result = triage.assess({**session(), "performed_at": performed, "timezone": tz}, [checkin])
    assert result["day"] == day


def test_rule_texts_name_the_day_as_a_person_does():
    # 22:00 in Paris; the next check-in at 19:00 two days later, 45 h on: "day 2", not "at 45 h".
    performed = datetime(2025, 6, 10, 20, 0, tzinfo=UTC)
    paris = {"performed_at": performed, "needle_depth_mm": None, "timezone": "Europe/Paris"}
    first = {**ci(0, 1, 1, 2), "taken_at": performed + timedelta(hours=20)}
    second = {**ci(0, 1, 1, 8, id="later"), "taken_at": performed + timedelta(hours=45)}
    [flag] = triage.assess(paris, [first, second])["flags"]
    assert flag["rule"] == "R4"
    assert flag["reason"] == (
        "Pain 8/10 on day 2; pain up from 2/10 in the check-in on day 1 (should fall after 24 h)"
    )
