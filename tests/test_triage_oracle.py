"""An independent reading of the red-flag rules, compared with the product through the JSON API.

The oracle below is written from the clinical reference (docs/clinical.md, itself from
shared/clinical/aftercare.md) and issue 5/14's text, not from companion's code: rule by rule,
in hours since the session, with the product defaults the reference's "Product defaults in the
code" section names. Hypothesis then posts check-in sequences (boundaries of every rule,
several check-ins a day, late and out-of-order arrivals, replays, a second session) and checks
each answer's flags and status, and the clinic's open flags, against it.
"""

import os
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RANK = {"info": 0, "review": 1, "urgent": 2}
SIGNS = {"spreading_redness": "U1", "fever": "U2", "pus": "U3", "eye_or_breathing": "U4"}


def stretch(depth: float | None) -> float:
    """Vendor downtime by depth / the shallow band's 72 h (docs/clinical.md, Needle depth)."""
    if depth is None or depth <= 0.5:
        days = 72.0
    elif depth < 0.8:
        days = 72.0 + (depth - 0.5) / 0.3 * 48.0
    elif depth <= 1.5:
        days = 120.0
    elif depth < 2.0:
        days = 120.0 + (depth - 1.5) / 0.5 * 48.0
    else:
        days = 168.0
    return days / 72.0


def oracle(h: float, depth: float | None, cur: dict, prev: dict | None, superseded: bool) -> dict:
    """Return {rule: severity} for one check-in taken h hours after the session."""
    f = stretch(depth)
    out: dict[str, str] = {}
    ws, sy = cur["warning_signs"], cur["symptoms"]
    for key, rule in SIGNS.items():  # U1-U4: any time
        if ws.get(key):
            out[rule] = "urgent"
    if ws.get("blisters"):  # U5: urgent (days 1-3 named herpes; later still urgent)
        out["U5"] = "urgent"
    r, s, p = cur["redness"], cur["swelling"], cur["pain"]
    score_rules: dict[str, str] = {}
    # R1: 3+ from 48 h, 2+ from 96 h, any after day 7, stretched; 4 from 72 h (stretched) urgent.
    if (r >= 3 and h >= 48 * f) or (r >= 2 and h >= 96 * f) or (r >= 1 and h >= 168 * f):
        score_rules["R1"] = "urgent" if r == 4 and h >= 72 * f else "review"
    # R2: rising after 48 h, or 3+ from 72 h (stretched); 4/4 from 24 h is urgent.
    rising_s = prev is not None and h >= 48 and s > prev["swelling"]
    if rising_s or (s >= 3 and h >= 72 * f) or (s == 4 and h >= 24):
        score_rules["R2"] = "urgent" if s == 4 and h >= 24 else "review"
    # R4: pain 7+ any time, or rising after day 1; 9+ urgent.
    rising_p = prev is not None and h >= 24 and p > prev["pain"]
    if p >= 7 or rising_p:
        score_rules["R4"] = "urgent" if p >= 9 else "review"
    # R3: any score higher than the previous check-in after day 2, unless another rule of this
    # check-in already says it (issue 14: one check-in breaking R1, R2 and R4 is not four flags).
    if prev is not None and h >= 48:
        rose = [k for k in ("redness", "swelling", "pain") if cur[k] > prev[k]]
        said = {"redness": "R1", "swelling": "R2", "pain": "R4"}
        if any(said[k] not in score_rules for k in rose):
            score_rules["R3"] = "review"
    if not superseded:  # issue 14: an older answer arriving late leaves R1-R4 to the newer one
        out |= score_rules
    if sy.get("bruising") and h >= 168:  # R5, not stretched
        out["R5"] = "review"
    if sy.get("bumps") and h >= 72:  # N1 from day 3
        out["N1"] = "info"
    if sy.get("patches") and h >= 72 * f:  # N2 once redness should have settled
        out["N2"] = "info"
    return out


def status_of(flags: dict) -> str:
    if "urgent" in flags.values():
        return "urgent"
    return "review" if "review" in flags.values() else "expected"


# Hours that sit on and beside every threshold (at 0.5 mm x1, 1.0 mm x5/3, 2.5 mm x7/3).
EDGES = [0, 1, 23.9, 24, 30, 47.9, 48, 60, 71.9, 72, 79.9, 80, 95.9, 96, 111.9, 112, 120, 150]
EDGES += [159.9, 160, 167.9, 168, 200, 223.9, 224, 279.9, 280, 391.9, 392, 400]
SYMPTOMS = ("bruising", "peeling", "itching", "oozing", "bumps", "patches")
WARNINGS = ("spreading_redness", "fever", "pus", "eye_or_breathing", "blisters")


def _flags(keys, weight):
    return st.fixed_dictionaries({k: st.booleans() for k in keys}).filter(
        lambda d: sum(d.values()) <= weight
    )


checkins = st.fixed_dictionaries(
    {
        "h": st.one_of(st.sampled_from(EDGES), st.floats(0, 400).map(lambda x: round(x, 2))),
        "redness": st.integers(0, 4),
        "swelling": st.integers(0, 4),
        "pain": st.integers(0, 10),
        "symptoms": st.one_of(st.just({}), _flags(SYMPTOMS, 2)),
        "warning_signs": st.one_of(st.just({}), _flags(WARNINGS, 1)),
    }
)


def _sign(seq):
    return st.permutations(range(len(seq))).map(lambda order: (seq, order))


scenarios = st.tuples(
    st.sampled_from([0.25, 0.5, 0.65, 1.0, 1.5, 1.75, 2.0, 2.5, 3.0]),
    st.sampled_from(["Europe/London", "Pacific/Kiritimati", "America/Los_Angeles", "UTC"]),
    st.lists(checkins, min_size=1, max_size=5).flatmap(_sign),
    st.booleans(),  # arrive in time order (True) or in the drawn order
)


class Clinic:
    def __init__(self, world):
        self.world, self.n = world, 0

    def client(self, tz):
        self.n += 1
        c = self.world.new_client(self.world.p1, f"Oracle {self.n}", timezone=tz)
        return c, self.world.sign_in_client(self.world.p1, c["id"])

    def open_flags(self, client_id) -> dict:
        r = self.world.p1.get(f"/api/flags?client_id={client_id}&status=active&limit=200")
        assert r.status_code == 200, r.json
        return {(f["session_id"], f["rule"]): f["severity"] for f in r.json["flags"]}


def _body(performed, c):
    return {
        "id": str(uuid.uuid4()),
        "taken_at": (performed + timedelta(hours=c["h"])).isoformat(),
        "redness": c["redness"],
        "swelling": c["swelling"],
        "pain": c["pain"],
        "symptoms": c["symptoms"],
        "warning_signs": c["warning_signs"],
    }


def run_and_compare(clinic, depth, tz, seq, order, in_time_order):
    client, phone = clinic.client(tz)
    session = clinic.world.new_session(
        clinic.world.p1, client["id"], hours_ago=401, needle_depth_mm=depth
    )
    performed = datetime.fromisoformat(session["performed_at"])
    # Distinct times: several a day, but never two at the very same instant.
    seen, items = set(), []
    for c in seq:
        while c["h"] in seen:
            c = c | {"h": round(c["h"] + 0.01, 2)}
        seen.add(c["h"])
        items.append(c | {"body": _body(performed, c)})
    arrival = sorted(range(len(items)), key=lambda i: items[i]["h"]) if in_time_order else order
    posted: list[dict] = []
    expected_open: dict[str, str] = {}
    for i in arrival:
        cur = items[i]
        r = phone.post("/api/checkins", cur["body"])
        assert r.status_code == 201, r.json
        before = [c for c in posted if c["h"] < cur["h"]]
        prev = max(before, key=lambda c: c["h"]) if before else None
        superseded = any(c["h"] > cur["h"] for c in posted)
        want = oracle(cur["h"], depth, cur, prev, superseded)
        got = {f["rule"]: f["severity"] for f in r.json["assessment"]["flags"]}
        context = {"depth": depth, "h": cur["h"], "cur": cur["body"], "prev": prev and prev["h"]}
        assert got == want, context
        assert r.json["assessment"]["status"] == status_of(want), context
        assert r.json["session_id"] == session["id"]
        zone = ZoneInfo(tz)  # Day N: the client's local calendar day, the session's being 0
        taken = performed + timedelta(hours=cur["h"])
        day = (taken.astimezone(zone).date() - performed.astimezone(zone).date()).days
        assert r.json["day"] == day, context
        for rule, severity in want.items():
            if rule not in expected_open or RANK[severity] > RANK[expected_open[rule]]:
                expected_open[rule] = severity  # one flag per rule; never lowered
        posted.append(cur)
        # A replay answers the stored answer and changes nothing.
        again = phone.post("/api/checkins", cur["body"] | {"pain": 0})
        assert again.status_code == 200 and again.json == r.json
    got_open = clinic.open_flags(client["id"])
    assert got_open == {(session["id"], k): v for k, v in expected_open.items()}


@pytest.fixture
def clinic(world):
    return Clinic(world)


@settings(
    max_examples=int(os.environ.get("ORACLE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios)
def test_the_product_answers_what_the_reference_says(clinic, scenario):
    depth, tz, (seq, order), in_time_order = scenario
    run_and_compare(clinic, depth, tz, seq, order, in_time_order)


# Named courses: each boundary of each rule, exactly (0.5 mm unless said).
def c(h, r=0, s=0, p=0, **signs):
    sy = {k: True for k in signs if k in SYMPTOMS}
    ws = {k: True for k in signs if k in WARNINGS}
    return {"h": h, "redness": r, "swelling": s, "pain": p, "symptoms": sy, "warning_signs": ws}


COURSES = {
    "normal shallow": (0.5, [c(24, 2, 2, 3), c(42, 2, 1, 2), c(66, 1, 1, 1), c(114, 1, 0, 0)]),
    "normal 1.5 mm": (1.5, [c(24, 3, 2, 4), c(42, 3, 2, 3), c(66, 2, 1, 2), c(114, 1, 1, 1)]),
    "normal 2.5 mm": (2.5, [c(24, 3, 3, 5), c(66, 3, 2, 3), c(114, 2, 1, 1), c(162, 1, 0, 0)]),
    "R1 3 at 47.9 / 48": (0.5, [c(47.9, 3), c(48, 3)]),
    "R1 2 at 96": (0.5, [c(95.9, 2), c(96, 2)]),
    "R1 any after day 7": (0.5, [c(167.9, 1), c(168, 1)]),
    "R1 4 urgent at 72": (0.5, [c(71.9, 4), c(72, 4)]),
    "R1 stretched 1 mm": (1.0, [c(79.9, 3), c(80, 3)]),
    "R2 rising after 48": (0.5, [c(30, s=1), c(48, s=2)]),
    "R2 3 at 72": (0.5, [c(71.9, s=3), c(72, s=3)]),
    "R2 4 from 24 urgent": (0.5, [c(23.9, s=4), c(24, s=4)]),
    "R3 redness back up": (0.5, [c(50, 1), c(60, 2)]),
    "R3 not before 48": (0.5, [c(30, 1), c(47.9, 2)]),
    "R4 pain 7": (0.5, [c(2, p=6), c(3, p=7)]),
    "R4 rising after day 1": (0.5, [c(20, p=2), c(23.9, p=3), c(24, p=4)]),
    "R4 9 urgent": (0.5, [c(5, p=9)]),
    "R5 bruising day 7": (0.5, [c(167.9, bruising=1), c(168, bruising=1)]),
    "N1 bumps day 3": (0.5, [c(71.9, bumps=1), c(72, bumps=1)]),
    "N2 patches": (1.0, [c(119.9, patches=1), c(120, patches=1)]),
    "U1-U5": (0.5, [c(1, spreading_redness=1), c(2, fever=1), c(3, pus=1), c(4, blisters=1)]),
    "U4 late": (0.5, [c(300, eye_or_breathing=1)]),
    "late, worse, out of order": (0.5, [c(72, 1, 1, 1), c(50, 3, 3, 8, bumps=1)]),
    "escalation": (0.5, [c(100, 2, p=7), c(101, 4, p=9)]),
}


@pytest.mark.parametrize("name", list(COURSES))
def test_named_courses(clinic, name):
    depth, seq = COURSES[name]
    run_and_compare(clinic, depth, "Europe/London", seq, list(range(len(seq))), False)


def test_normal_courses_open_no_flag(clinic):
    for name in ("normal shallow", "normal 1.5 mm", "normal 2.5 mm"):
        depth, seq = COURSES[name]
        client, phone = clinic.client("Europe/London")
        s = clinic.world.new_session(
            clinic.world.p1, client["id"], hours_ago=401, needle_depth_mm=depth
        )
        performed = datetime.fromisoformat(s["performed_at"])
        for item in seq:
            r = phone.post("/api/checkins", _body(performed, item))
            assert r.json["assessment"]["status"] == "expected", (name, r.json["assessment"])
            assert r.json["assessment"]["flags"] == [], name
        assert clinic.open_flags(client["id"]) == {}, name


def test_a_second_session_keeps_its_own_flags(clinic):
    client, phone = clinic.client("Europe/London")
    world = clinic.world
    first = world.new_session(world.p1, client["id"], hours_ago=300)
    second = world.new_session(world.p1, client["id"], hours_ago=50)
    p1 = datetime.fromisoformat(first["performed_at"])
    r = phone.post("/api/checkins", _body(p1, c(100, 3)))  # R1 for the first session
    assert r.json["session_id"] == first["id"]
    r = phone.post("/api/checkins", _body(p1, c(260, 0, p=7)))  # after the second: R4 there
    assert r.json["session_id"] == second["id"]
    assert clinic.open_flags(client["id"]) == {
        (first["id"], "R1"): "review",
        (second["id"], "R4"): "review",
    }
