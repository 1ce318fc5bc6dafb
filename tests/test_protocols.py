from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.reminders.planning import (
    DEFAULT_QUIET_HOURS,
    SKIP_BEFORE_SESSION,
    SKIP_PAST_VALIDITY,
    local_time,
    plan,
)
from companion.reminders.protocol import DEFAULT_STEPS, describe_at, validate_steps

LONDON = "Europe/London"


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def step(key: str, at: dict, kind: str = "instruction", **extra) -> dict:
    return {"key": key, "title": "Title", "body": "Body", "kind": kind, "at": at, **extra}


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {row["step_key"]: row for row in rows}


def plan_at(session: datetime, steps=DEFAULT_STEPS, tz=LONDON, quiet=DEFAULT_QUIET_HOURS, now=None):
    return plan(session, steps, tz, *quiet, now=now or session)


# docs/clinical.md, "Default protocol", for a session at 10:00 on 10 June 2025.
DEFAULT_TABLE = [
    ("after-session", (2025, 6, 10, 10, 0)),
    ("evening-routine", (2025, 6, 10, 19, 0)),
    ("day1-morning", (2025, 6, 11, 8, 30)),
    ("24h-checkin", (2025, 6, 11, 10, 0)),
    ("day2-checkin", (2025, 6, 12, 18, 0)),
    ("day3-checkin", (2025, 6, 13, 18, 0)),
    ("day5-checkin", (2025, 6, 15, 18, 0)),
    ("day7-checkin", (2025, 6, 17, 18, 0)),
    *((f"day{day}-sunscreen", (2025, 6, 10 + day, 8, 30)) for day in range(2, 8)),
    ("book-next-session", (2025, 7, 8, 10, 0)),
]


@pytest.mark.parametrize(("key", "expected"), DEFAULT_TABLE)
def test_default_protocol_follows_the_reference_table(key, expected):
    rows = by_key(plan_at(local(LONDON, 2025, 6, 10, 10, 0)))
    row = rows[key]
    assert local_time(row["due_at"], LONDON).replace(tzinfo=None) == datetime(*expected)
    assert row["status"] == "pending" and row["skip_reason"] is None
    assert row["due_at"].utcoffset() == timedelta(0)


def test_default_protocol_has_exactly_the_table_steps_in_due_order():
    rows = plan_at(local(LONDON, 2025, 6, 10, 10, 0))
    assert {row["step_key"] for row in rows} == {key for key, _ in DEFAULT_TABLE}
    assert [row["due_at"] for row in rows] == sorted(row["due_at"] for row in rows)
    checkins = [row for row in rows if row["kind"] == "checkin"]
    assert len(checkins) == 5
    assert all("Tap to rate redness and swelling" in row["body"] for row in checkins)


def test_default_steps_are_valid_and_short():
    clean, errors = validate_steps(DEFAULT_STEPS)
    assert errors == {}
    assert clean == DEFAULT_STEPS
    assert all(len(s["title"]) <= 40 for s in DEFAULT_STEPS)


def test_expires_at_adds_the_validity_window():
    rows = by_key(plan_at(local(LONDON, 2025, 6, 10, 10, 0)))
    assert rows["after-session"]["expires_at"] - rows["after-session"]["due_at"] == timedelta(
        hours=12
    )
    assert rows["24h-checkin"]["expires_at"] - rows["24h-checkin"]["due_at"] == timedelta(hours=24)
    recall = rows["book-next-session"]
    assert recall["expires_at"] - recall["due_at"] == timedelta(hours=72)


@pytest.mark.parametrize(
    ("quiet", "key", "expected"),
    [
        (DEFAULT_QUIET_HOURS, "after-session", (2025, 6, 11, 8, 0)),
        (DEFAULT_QUIET_HOURS, "24h-checkin", (2025, 6, 12, 8, 0)),
        (DEFAULT_QUIET_HOURS, "day1-morning", (2025, 6, 11, 8, 30)),
        (("22:00", "07:00"), "after-session", (2025, 6, 11, 7, 0)),
        (("22:00", "07:00"), "24h-checkin", (2025, 6, 12, 7, 0)),
        ((None, None), "after-session", (2025, 6, 10, 22, 30)),
        ((None, None), "24h-checkin", (2025, 6, 11, 22, 30)),
        (("08:00", "08:00"), "24h-checkin", (2025, 6, 11, 22, 30)),
    ],
)
def test_late_session_steps_move_to_the_end_of_quiet_hours(quiet, key, expected):
    rows = by_key(plan_at(local(LONDON, 2025, 6, 10, 22, 30), quiet=quiet))
    row = rows[key]
    assert row["status"] == "pending"
    assert local_time(row["due_at"], LONDON).replace(tzinfo=None) == datetime(*expected)
    # A moved step keeps its whole validity window from its new time.
    assert row["expires_at"] - row["due_at"] == timedelta(
        hours={"checkin": 24}.get(row["kind"], 12)
    )


@pytest.mark.parametrize(
    ("clock", "quiet", "expected"),
    [
        ("07:59", DEFAULT_QUIET_HOURS, (2025, 6, 11, 8, 0)),
        ("08:00", DEFAULT_QUIET_HOURS, (2025, 6, 11, 8, 0)),
        ("20:59", DEFAULT_QUIET_HOURS, (2025, 6, 11, 20, 59)),
        ("21:00", DEFAULT_QUIET_HOURS, (2025, 6, 12, 8, 0)),
        ("00:00", DEFAULT_QUIET_HOURS, (2025, 6, 11, 8, 0)),
        ("13:00", ("12:00", "14:00"), (2025, 6, 11, 14, 0)),
        ("14:00", ("12:00", "14:00"), (2025, 6, 11, 14, 0)),
        ("11:59", ("12:00", "14:00"), (2025, 6, 11, 11, 59)),
    ],
)
def test_quiet_window_is_half_open(clock, quiet, expected):
    steps = [step("custom", {"day": 1, "time": clock})]
    (row,) = plan_at(local(LONDON, 2025, 6, 10, 10, 0), steps=steps, quiet=quiet)
    assert local_time(row["due_at"], LONDON).replace(tzinfo=None) == datetime(*expected)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Sessions the day before each DST change; `custom` is a day-1 step at a time that
# is skipped (gap: lands on the jump) or repeated (ambiguous: first occurrence).
DST_CASES = {
    "london-spring": (LONDON, (2025, 3, 29), "01:30", utc(2025, 3, 30, 1, 0)),  # 02:00 BST
    "london-fall": (LONDON, (2025, 10, 25), "01:30", utc(2025, 10, 26, 0, 30)),  # 01:30 BST
    "ny-spring": ("America/New_York", (2025, 3, 8), "02:30", utc(2025, 3, 9, 7, 0)),  # 03:00 EDT
    "ny-fall": ("America/New_York", (2025, 11, 1), "01:30", utc(2025, 11, 2, 5, 30)),  # EDT
    "sydney-spring": ("Australia/Sydney", (2025, 10, 4), "02:30", utc(2025, 10, 4, 16, 0)),  # AEDT
    "sydney-fall": ("Australia/Sydney", (2025, 4, 5), "02:30", utc(2025, 4, 5, 15, 30)),  # AEDT
}


@pytest.mark.parametrize(
    ("tz", "day", "clock", "custom_utc"), list(DST_CASES.values()), ids=list(DST_CASES)
)
def test_dst_keeps_wall_clock_and_elapsed_time(tz, day, clock, custom_utc):
    session = local(tz, *day, 10, 0)
    steps = [*DEFAULT_STEPS, step("custom", {"day": 1, "time": clock})]
    rows = by_key(plan_at(session, steps=steps, tz=tz, quiet=(None, None)))
    evening = local_time(rows["evening-routine"]["due_at"], tz)
    day2 = local_time(rows["day2-checkin"]["due_at"], tz)
    # Wall-clock steps keep their local time, so their UTC offset changes.
    assert evening.time() == time(19, 0)
    assert day2.time() == time(18, 0)
    assert day2.date() == session.date() + timedelta(days=2)
    assert day2.utcoffset() != evening.utcoffset()
    # Offset steps keep their elapsed time, so their local time shifts by the change.
    assert rows["24h-checkin"]["due_at"] - session == timedelta(hours=24)
    assert local_time(rows["24h-checkin"]["due_at"], tz).time() != time(10, 0)
    # Gap: the first instant after the jump. Repeat: the first occurrence.
    assert rows["custom"]["due_at"] == custom_utc
    assert rows["custom"]["status"] == "pending"


def test_quiet_end_in_a_dst_gap_moves_to_the_jump():
    tz = "America/New_York"
    steps = [step("custom", {"day": 1, "time": "01:00"})]
    (row,) = plan_at(local(tz, 2025, 3, 8, 10, 0), steps=steps, tz=tz, quiet=("00:00", "02:30"))
    assert local_time(row["due_at"], tz).replace(tzinfo=None) == datetime(2025, 3, 9, 3, 0)


def test_quiet_move_in_a_repeated_hour_never_goes_back_in_time():
    # 06:10 UTC is 01:10 EST, the second pass through 01:00-02:00 in New York.
    session = datetime(2025, 11, 2, 6, 10, tzinfo=UTC)
    steps = [step("now", {"offset_hours": 0})]
    (row,) = plan_at(session, steps=steps, tz="America/New_York", quiet=("00:00", "01:30"))
    assert row["due_at"] == datetime(2025, 11, 2, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("session_clock", "reason"),
    [
        ((18, 30), "less than 1 h after the session"),
        ((18, 1), "less than 1 h after the session"),
        ((20, 0), SKIP_BEFORE_SESSION),
        ((18, 0), None),
    ],
)
def test_evening_routine_needs_an_hour_after_the_session(session_clock, reason):
    rows = by_key(plan_at(local(LONDON, 2025, 6, 10, *session_clock)))
    assert rows["evening-routine"]["skip_reason"] == reason
    assert rows["evening-routine"]["status"] == ("pending" if reason is None else "skipped")


def test_same_day_steps_before_the_session_are_skipped():
    steps = [
        step("morning", {"day": 0, "time": "08:30"}),
        step("noon", {"day": 0, "time": "12:00"}),
        step("later", {"day": 0, "time": "16:00"}),
    ]
    rows = by_key(plan_at(local(LONDON, 2025, 6, 10, 14, 0), steps=steps))
    assert rows["morning"]["skip_reason"] == SKIP_BEFORE_SESSION
    assert rows["noon"]["skip_reason"] == SKIP_BEFORE_SESSION
    assert rows["later"]["status"] == "pending"


def test_session_recorded_three_days_late():
    session = local(LONDON, 2025, 6, 10, 10, 0)
    rows = by_key(plan_at(session, now=local(LONDON, 2025, 6, 13, 12, 0)))
    expired = {"after-session", "evening-routine", "day1-morning", "24h-checkin", "day2-sunscreen"}
    for key, row in rows.items():
        if key in expired:
            assert (row["status"], row["skip_reason"]) == ("skipped", SKIP_PAST_VALIDITY), key
        else:
            assert (row["status"], row["skip_reason"]) == ("pending", None), key
    # Past due but still valid: pending, so it goes out now.
    assert rows["day3-sunscreen"]["due_at"] < local(LONDON, 2025, 6, 13, 12, 0)


def test_a_step_expiring_exactly_now_is_skipped():
    session = local(LONDON, 2025, 6, 10, 10, 0)
    steps = [step("now", {"offset_hours": 0}, valid_hours=2)]
    (row,) = plan_at(session, steps=steps, now=session + timedelta(hours=2))
    assert row["skip_reason"] == SKIP_PAST_VALIDITY


def test_plan_rejects_naive_datetimes():
    with pytest.raises(ValueError):
        plan(datetime(2025, 6, 10, 10), DEFAULT_STEPS, LONDON, None, None, datetime.now(UTC))


def good(**changes) -> dict:
    return {**step("good", {"day": 2, "time": "18:00"}, kind="checkin"), **changes}


def without(field: str) -> dict:
    return {k: v for k, v in good().items() if k != field}


BAD_STEPS = [
    ("not a list", "steps", {"key": "x"}),
    ("empty", "steps", []),
    ("too many", "steps", [good(key=f"s{i}") for i in range(101)]),
    ("step not object", "steps[0]", ["x"]),
    ("key with spaces", "steps[0].key", [good(key="Day 2")]),
    ("key too long", "steps[0].key", [good(key="a" * 41)]),
    ("duplicate keys", "steps[1].key", [good(), good()]),
    ("missing title", "steps[0].title", [without("title")]),
    ("title not string", "steps[0].title", [good(title=12)]),
    ("blank title", "steps[0].title", [good(title="   ")]),
    ("title too long", "steps[0].title", [good(title="x" * 61)]),
    ("body too long", "steps[0].body", [good(body="x" * 301)]),
    ("missing body", "steps[0].body", [without("body")]),
    ("unknown kind", "steps[0].kind", [good(kind="email")]),
    ("kind not string", "steps[0].kind", [good(kind=["checkin"])]),
    ("missing at", "steps[0].at", [without("at")]),
    ("at not object", "steps[0].at", [good(at="tomorrow")]),
    ("at words with a bad clock", "steps[0].at.time", [good(at="day 2, 25:00")]),
    ("at words negative", "steps[0].at", [good(at="-3 h")]),
    ("at a number", "steps[0].at", [good(at=24)]),
    ("negative offset", "steps[0].at.offset_hours", [good(at={"offset_hours": -1})]),
    ("bool offset", "steps[0].at.offset_hours", [good(at={"offset_hours": True})]),
    ("string offset", "steps[0].at.offset_hours", [good(at={"offset_hours": "24"})]),
    ("nan offset", "steps[0].at.offset_hours", [good(at={"offset_hours": float("nan")})]),
    ("offset too far", "steps[0].at.offset_hours", [good(at={"offset_hours": 24 * 120 + 1})]),
    ("offset with day", "steps[0].at.day", [good(at={"offset_hours": 1, "day": 2})]),
    ("day too far", "steps[0].at.day", [good(at={"day": 200, "time": "18:00"})]),
    ("negative day", "steps[0].at.day", [good(at={"day": -1, "time": "18:00"})]),
    ("float day", "steps[0].at.day", [good(at={"day": 2.0, "time": "18:00"})]),
    ("bool day", "steps[0].at.day", [good(at={"day": True, "time": "18:00"})]),
    ("missing day", "steps[0].at.day", [good(at={"time": "18:00"})]),
    ("missing time", "steps[0].at.time", [good(at={"day": 2})]),
    ("hour 25", "steps[0].at.time", [good(at={"day": 2, "time": "25:00"})]),
    ("minute 60", "steps[0].at.time", [good(at={"day": 2, "time": "18:60"})]),
    ("no colon", "steps[0].at.time", [good(at={"day": 2, "time": "1800"})]),
    ("one-digit hour", "steps[0].at.time", [good(at={"day": 2, "time": "8:00"})]),
    ("time not string", "steps[0].at.time", [good(at={"day": 2, "time": 1800})]),
    ("unknown at field", "steps[0].at.hour", [good(at={"day": 2, "time": "18:00", "hour": 1})]),
    ("zero validity", "steps[0].valid_hours", [good(valid_hours=0)]),
    ("bool validity", "steps[0].valid_hours", [good(valid_hours=True)]),
    ("negative gap", "steps[0].min_gap_hours", [good(min_gap_hours=-1)]),
    ("string gap", "steps[0].min_gap_hours", [good(min_gap_hours="1")]),
    ("unknown field", "steps[0].colour", [good(colour="red")]),
]


@pytest.mark.parametrize(
    ("path", "steps"), [p[1:] for p in BAD_STEPS], ids=[p[0] for p in BAD_STEPS]
)
def test_validate_steps_rejects_bad_input(path, steps):
    clean, errors = validate_steps(steps)
    assert path in errors
    assert errors[path]
    assert clean == []


def test_validate_steps_explains_errors():
    _, errors = validate_steps([good(), good(at={"day": 2, "time": "25:00"}, colour="red")])
    assert errors == {
        "steps[1].at.time": "must be a time between 00:00 and 23:59",
        "steps[1].colour": "unknown field",
    }
    _, errors = validate_steps([good(), good(key="other"), good()])
    assert errors == {"steps[2].key": "duplicate key 'good' (also steps[0])"}


def test_validate_steps_normalises():
    raw = [
        good(key=" day2 ", title=" Day 2 ", at={"day": 2, "time": " 18:00 "}),
        step("soon", {"offset_hours": 1.5}, kind="recall", min_gap_hours=0),
        step("valid", {"offset_hours": 0}, valid_hours=3),
    ]
    clean, errors = validate_steps(raw)
    assert errors == {}
    assert clean[0] == {
        "key": "day2",
        "title": "Day 2",
        "body": "Body",
        "kind": "checkin",
        "at": {"day": 2, "time": "18:00"},
        "valid_hours": 24,
    }
    assert clean[1]["valid_hours"] == 72 and clean[1]["min_gap_hours"] == 0
    assert clean[2]["valid_hours"] == 3


@pytest.mark.parametrize(
    ("at", "text"),
    [
        ({"offset_hours": 0}, "right after the session"),
        ({"offset_hours": 24}, "24 h after the session"),
        ({"offset_hours": 1.5}, "1.5 h after the session"),
        ({"day": 0, "time": "19:00"}, "same day, 19:00"),
        ({"day": 2, "time": "18:00"}, "day 2, 18:00"),
    ],
)
def test_describe_at(at, text):
    assert describe_at(at) == text


ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "America/St_Johns",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Auckland",
]
clocks = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
wall_ats = st.fixed_dictionaries({"day": st.integers(0, 120), "time": clocks})
offset_ats = st.fixed_dictionaries({"offset_hours": st.floats(0, 24 * 120)})
custom_steps = st.lists(
    st.tuples(
        st.one_of(wall_ats, offset_ats), st.sampled_from(["instruction", "checkin", "recall"])
    ),
    max_size=6,
).map(lambda ats: [step(f"custom-{i}", at, kind) for i, (at, kind) in enumerate(ats)])
offsets = st.sampled_from([UTC, ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")])


def in_window(clock: time, start: time, end: time) -> bool:
    return start <= clock < end if start < end else (clock >= start or clock < end)


@settings(max_examples=300, deadline=None)
@given(
    performed_at=st.datetimes(datetime(2020, 1, 1), datetime(2035, 12, 31), timezones=offsets),
    tz=st.sampled_from(ZONES),
    quiet=st.one_of(st.just((None, None)), st.tuples(clocks, clocks)),
    late_minutes=st.integers(-60, 60 * 24 * 130),
    extra=custom_steps,
)
def test_plan_properties(performed_at, tz, quiet, late_minutes, extra):
    steps = [*DEFAULT_STEPS, *extra]
    now = performed_at + timedelta(minutes=late_minutes)
    rows = plan(performed_at, steps, tz, *quiet, now=now)
    assert len(rows) == len(steps)
    assert [row["due_at"] for row in rows] == sorted(row["due_at"] for row in rows)
    for row in rows:
        assert row["due_at"] <= row["expires_at"]
        if row["status"] == "skipped":
            assert row["skip_reason"]
            continue
        assert row["due_at"] >= performed_at
        assert row["expires_at"] > now
        if quiet[0] is not None and quiet[0] != quiet[1]:
            start, end = (time.fromisoformat(q) for q in quiet)
            assert not in_window(local_time(row["due_at"], tz).time(), start, end)


@pytest.mark.parametrize(
    ("words", "at"),
    [
        ("+24 h", {"offset_hours": 24}),  # the issue's own notation
        ("+1.5h", {"offset_hours": 1.5}),
        ("day 2, 18:00", {"day": 2, "time": "18:00"}),
        ("Day 1 at 8:30", {"day": 1, "time": "08:30"}),
        ("same day, 19:00", {"day": 0, "time": "19:00"}),  # GET's "when" words
        ("right after the session", {"offset_hours": 0}),
        ("24 h after the session", {"offset_hours": 24}),
        ("24 h after", {"offset_hours": 24}),  # the preview's words
        ("right after", {"offset_hours": 0}),
    ],
)
def test_a_step_timed_in_words_is_stored_as_the_object_it_stands_for(words, at):
    bare = {"title": "Check in", "body": "How is it?", "kind": "checkin"}
    for step in ({**bare, "at": words}, {**bare, "when": words}):
        clean, errors = validate_steps([step])
        assert errors == {}
        assert clean[0]["at"] == at


def test_a_step_without_a_key_gets_one_from_its_title_unlike_the_others():
    bare = {"body": "", "kind": "instruction", "at": {"offset_hours": 1}}
    clean, errors = validate_steps(
        [
            {**bare, "title": "Day 2: sunscreen!"},
            {**bare, "title": "Day 2: sunscreen!"},
            {**bare, "title": {"en": "Day 2: sunscreen!", "es": "Día 2"}, "body": {"en": ""}},
            {**bare, "key": "day-2-sunscreen", "title": "Given"},
            {**bare, "title": "¿¡!?"},
        ]
    )
    assert errors == {}
    assert [s["key"] for s in clean] == [
        "day-2-sunscreen-2",
        "day-2-sunscreen-3",
        "day-2-sunscreen-4",
        "day-2-sunscreen",
        "step",
    ]
