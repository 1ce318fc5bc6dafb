"""Triage: compare a client's check-ins with the expected recovery course.

Pure functions over plain dicts: no Flask, no database, no clock (time is an
argument). Every number traces to docs/clinical.md, cited by rule id
(U1-U5, R1-R5, N1-N3), or is marked as a product default a clinic could change.

"After day N" in the rules is read as "24*N hours or more after the session":
the rules see elapsed time. Texts name the day as a person does, "day 3" (the client's
local calendar day, clinical.day_number; the session's `timezone`, UTC when absent).

Past 300 lines on purpose: it is one rule table, read top to bottom beside docs/clinical.md.
"""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from companion.checkins import answers
from companion.clinical import RULES, day_number, severity_rank

# Vendor downtime figures (docs/clinical.md, "Expected recovery course"), not peer-reviewed:
# 0.2-0.5 mm about 2-3 days, 0.8-1.5 mm about 4-5 days, 2.0-3.0 mm about 6-7 days. We take
# each band's upper bound, interpolate linearly in the gaps and clamp outside them.
_DOWNTIME = ((0.5, 72.0), (0.8, 120.0), (1.5, 120.0), (2.0, 168.0))
_SHALLOW_HOURS = _DOWNTIME[0][1]

# Product defaults (no guideline sets these; a clinic could change them):
PAIN_URGENT = 9  # R4 escalates: pain this high is close to needing emergency care
REDNESS_URGENT_FROM_H = 72.0  # R1 escalates for redness 4/4 ("raw") from here, stretched
SWELLING_URGENT_FROM_H = 24.0  # R2 escalates for swelling 4/4 (near U4) from here, not stretched
# U5 names herpes up to 96 h: the reference says days 1-3, and the "day 3, 18:00" check-in
# usually lands past 72 h while reporting blisters that began earlier. Later blisters are
# still urgent (a blister is never part of the normal course) with a plainer reason.
HERPES_WINDOW_H = 96.0

_WARNING_SIGNS = (  # U1-U4 fire at any time
    ("U1", "spreading_redness", "Spreading redness, red streaks or hot skin"),
    ("U2", "fever", "Fever of 38.0 °C / 100.4 °F or more, or chills"),
    ("U3", "pus", "Pus, yellow crusts or discharge"),
    ("U4", "eye_or_breathing", "Swelling around the eye, vision change or trouble breathing"),
)
# The words a U1-U4 reason starts with ("<words> reported on day N"), by rule.
SIGN_WORDS = {rule: what for rule, _, what in _WARNING_SIGNS}
_SCORES = ("redness", "swelling", "pain")


def downtime_hours(needle_depth_mm: float | None) -> float:
    """Return the vendor downtime for a needle depth in hours (None: the shallow band)."""
    if needle_depth_mm is None or needle_depth_mm <= _DOWNTIME[0][0]:
        return _SHALLOW_HOURS
    for (d0, h0), (d1, h1) in pairwise(_DOWNTIME):
        if needle_depth_mm <= d1:
            return h0 + (h1 - h0) * (needle_depth_mm - d0) / (d1 - d0)
    return _DOWNTIME[-1][1]


def _stretch(hours: float, needle_depth_mm: float | None) -> float:
    # The reference's hour thresholds are for the shallow band; deeper needling heals
    # slower in proportion to its vendor downtime (x1 to 0.5 mm, x5/3 at 1 mm, x7/3 at 2.5 mm).
    # Multiply first so whole-hour thresholds stay exact (48 h at 2.5 mm is 112.0 h).
    return hours * downtime_hours(needle_depth_mm) / _SHALLOW_HOURS


def _band(hours: float, needle_depth_mm: float | None) -> dict[str, tuple[int, float]]:
    # Per score: (highest score that fires no level rule, hour from which that limit holds).
    d = needle_depth_mm
    steps = {
        # R1: redness 3+ from 48 h, 2+ from 96 h, any after day 7; all stretched.
        "redness": ((_stretch(48, d), 2), (_stretch(96, d), 1), (_stretch(168, d), 0)),
        # R2: swelling 3+ from 72 h (stretched); 4 from 24 h is the R2 escalation.
        "swelling": ((SWELLING_URGENT_FROM_H, 3), (_stretch(72, d), 2)),
    }
    band = {}
    for score, thresholds in steps.items():
        band[score] = (4, 0.0)
        for start, limit in thresholds:
            if hours >= start:
                band[score] = (limit, start)
    return band


def expected_band(hours_since_session: float, needle_depth_mm: float | None) -> dict:
    """Return the highest redness and swelling of the expected course at that time."""
    band = _band(max(0.0, hours_since_session), needle_depth_mm)
    return {score: limit for score, (limit, _) in band.items()}


def _hours(session: dict, checkin: dict) -> float:
    # A check-in stamped before the session (a phone clock running behind) counts as
    # taken at the session, so the rules never see negative time.
    elapsed = checkin["taken_at"] - session["performed_at"]
    return max(0.0, elapsed.total_seconds() / 3600)


def _order(checkin: dict) -> tuple:
    # Taken at the same moment: the later arrival is the newer answer (the id decides last).
    received = checkin.get("received_at") or checkin["taken_at"]
    return checkin["taken_at"], received, str(checkin.get("id") or "")


def _day(session: dict, checkin: dict) -> int:
    return day_number(session["performed_at"], checkin["taken_at"], session.get("timezone", "UTC"))


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def _findings(
    h: float, depth: float | None, cur: dict, prev: dict | None, days: tuple[int, int]
) -> list[dict]:
    found: dict[str, dict] = {}

    def add(rule: str, reason: str, severity: str | None = None) -> None:
        found[rule] = {
            "rule": rule,
            "severity": severity or RULES[rule]["severity"],
            "reason": reason,
        }

    day, prev_day = days
    at = f"on day {day}"
    before = f"the check-in on day {prev_day}" if prev_day != day else "the earlier check-in"
    signs, symptoms = cur.get("warning_signs") or {}, cur.get("symptoms") or {}
    redness, swelling, pain = (cur[score] for score in _SCORES)
    depth_note = f" at {depth:g} mm" if downtime_hours(depth) > _SHALLOW_HOURS else ""
    rising = prev is not None and h >= 48  # R2 and R3 watch the trend from 48 h
    for rule, key, what in _WARNING_SIGNS:
        if signs.get(key):
            add(rule, f"{what} reported {at}")
    if signs.get("blisters"):  # U5
        if h < HERPES_WINDOW_H:
            add("U5", f"Blisters reported {at}: suspected cold-sore (herpes) reactivation")
        else:
            add("U5", f"Blisters reported {at}: blisters are never part of the normal course")

    band = _band(h, depth)
    limit, since = band["redness"]
    if redness > limit:  # R1
        urgent = redness == 4 and h >= _stretch(REDNESS_URGENT_FROM_H, depth)
        up = (
            f"; up from {prev['redness']}/4 in {before}"
            if rising and redness > prev["redness"]
            else ""
        )
        add(
            "R1",
            f"Redness {redness}/4 {at} (expected ≤{limit} from {since:.0f} h{depth_note}){up}",
            "urgent" if urgent else None,
        )
    parts = []
    limit, since = band["swelling"]
    if swelling > limit:  # R2, level
        parts.append(
            f"Swelling {swelling}/4 {at} (expected ≤{limit} from {since:.0f} h{depth_note})"
        )
    if rising and swelling > prev["swelling"]:  # R2, trend
        parts.append(f"swelling up from {prev['swelling']}/4 in {before} (should fall after 48 h)")
    if parts:
        urgent = swelling == 4 and h >= SWELLING_URGENT_FROM_H
        add("R2", _sentence(parts), "urgent" if urgent else None)

    # R3: any score higher than the previous check-in after day 2, reviewed against the other
    # rules (AFT-39: suppress what another alert already says). A rise in swelling after 48 h
    # is R2's trend, a rise in pain after 24 h is R4's, and a rise in redness above the band
    # is R1 (its reason names the rise): R3 stays for what only it sees, redness climbing
    # back within the band. One check-in breaking R1, R2 and R4 is then three reasons, not four.
    if rising and redness > prev["redness"] and "R1" not in found:
        add("R3", f"Worse than {before}: redness {prev['redness']}→{redness}")

    parts = []
    if pain >= 7:  # R4: 7/10 or more at any time
        parts.append(f"Pain {pain}/10 {at}")
    if prev is not None and h >= 24 and pain > prev["pain"]:  # R4: rising after day 1
        parts.append(f"pain up from {prev['pain']}/10 in {before} (should fall after 24 h)")
    if parts:
        add("R4", _sentence(parts), "urgent" if pain >= PAIN_URGENT else None)

    if symptoms.get("bruising") and h >= 168:  # R5: not stretched, "up to 7 days" (Chu 2021)
        add("R5", f"Bruising still present {at} ({h:.0f} h; expected to fade within 7 days)")
    if symptoms.get("bumps") and h >= 72:  # N1: bumps or spots from day 3 on
        add("N1", f"Bumps or spots {at}: acne flare, milia, infection or granuloma?")
    # N2: patches once the redness should have settled (the reference's "self-resolving
    # within 72 hours", stretched). Deliberately not tied to the latest redness score, so
    # a redder answer can never silence a patch report.
    if symptoms.get("patches") and h >= _stretch(72, depth):
        add("N2", f"Dark or light patches {at}, redness {redness}/4: pigmentation change?")
    return sorted(found.values(), key=lambda f: (-severity_rank(f["severity"]), f["rule"]))


def _reassurance(h: float, depth: float | None, cur: dict, info: list[dict], day: int) -> str:
    settle = _stretch(72, depth)
    symptoms = cur.get("symptoms") or {}
    return answers.reassurance(
        tuple(k for k in ("redness", "swelling") if cur[k]),
        day=day,
        strong=max(cur["redness"], cur["swelling"]) == 4,
        hours_left=settle - h,
        deeper=settle > _SHALLOW_HOURS,  # vendor downtime figures stretch the course
        symptoms=symptoms,
        early=h < 24,
        bruising_young=h < 168,
        noted=bool(info),
    )


# Rules about the scores' level and trend: the newest check-in speaks for them (see assess).
_SCORE_RULES = ("R1", "R2", "R3", "R4")


def assess(
    session: dict,
    checkins: list[dict],
    clinic_phone: str | None = None,
    *,
    checkin_id: str | None = None,
    review_day: answers.ReviewDay = "today",
) -> dict:
    """Assess a check-in (the latest by default) against the expected course and the one before it.

    A check-in that arrives after a later one (an offline phone's queue, posted out of
    order) is assessed in its place, but the score rules (R1-R4) are left to the later
    check-in, which already spoke for the present: an old, worse answer must not open R3 or
    R4 against a newer, better one. Warning signs and symptoms it reports still count.
    `review_day`: when a review answer says the clinic looks (answers.review_day).
    """
    if not checkins:
        raise ValueError("assess needs at least one check-in")
    history = sorted(checkins, key=_order)
    index = len(history) - 1
    if checkin_id is not None:
        index = next(i for i, c in enumerate(history) if str(c.get("id")) == str(checkin_id))
    current, prev = history[index], (history[index - 1] if index > 0 else None)
    later = history[index + 1] if index + 1 < len(history) else None
    depth = session.get("needle_depth_mm")
    h = _hours(session, current)
    day = _day(session, current)
    flags = _findings(h, depth, current, prev, (day, _day(session, prev) if prev else day))
    if later is not None:
        flags = [f for f in flags if f["rule"] not in _SCORE_RULES]
    ranks = {severity_rank(f["severity"]) for f in flags}
    if severity_rank("urgent") in ranks:
        status, message = "urgent", answers.urgent_message(clinic_phone)
    elif severity_rank("review") in ranks:
        rules = [f["rule"] for f in flags]
        status, message = "review", answers.review_message(rules, day, clinic_phone, review_day)
    elif later is not None:
        status = "expected"
        message = answers.superseded_message(day, _day(session, later))
    else:
        status, message = "expected", _reassurance(h, depth, current, flags, day)
    return {
        "status": status,
        "message": message,
        "flags": flags,
        "day": day,
        "hours": round(h, 1),
        "superseded": later is not None,
    }


def course_points(session: dict, checkins: list[dict]) -> list[dict]:
    """Return chart points: each check-in's scores beside the expected band, in time order."""
    depth = session.get("needle_depth_mm")
    points = []
    for checkin in sorted(checkins, key=_order):
        h = _hours(session, checkin)
        point = {"id": checkin.get("id"), "hours": round(h, 1), "day": _day(session, checkin)}
        point |= {score: checkin[score] for score in ("redness", "swelling")}
        point |= {f"band_{score}": v for score, v in expected_band(h, depth).items()}
        points.append(point)
    return points


def missed_checkins(
    due_times: list[datetime],
    checkin_times: list[datetime],
    now: datetime,
    window: timedelta = timedelta(hours=12),
) -> dict | None:
    """Return an N3 finding when the last two or more due check-ins went unanswered."""
    # A due time counts as missed once `now` is past due + window, and only if no answer
    # was taken since due - window (early answers count). Any answer resets the run: a
    # client who answers, even late, is engaged, and a resolved N3 must not reopen from
    # old history.
    last_answer = max((t for t in checkin_times if t <= now), default=None)
    missed = [
        due
        for due in sorted(due_times)
        if now > due + window and (last_answer is None or due - window > last_answer)
    ]
    if len(missed) < 2:
        return None
    first, last = (f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC" for t in (missed[0], missed[-1]))
    return {
        "rule": "N3",
        "severity": RULES["N3"]["severity"],
        "reason": f"No answer to {len(missed)} scheduled check-ins in a row ({first} to {last})",
        "missed": missed,
    }


def reconcile(open_flags: list[dict], findings: list[dict]) -> list[dict]:
    """Return the flag actions (open, escalate, update) that keep one flag per rule."""
    # Acknowledged flags are still open; resolved ones are done. Should old data hold two
    # open flags for one rule, act on the more severe one.
    held = _highest_per_rule(f for f in open_flags if f.get("status") != "resolved")
    actions = []
    for rule, finding in _highest_per_rule(findings).items():
        action = {"rule": rule, "severity": finding["severity"], "reason": finding["reason"]}
        flag = held.get(rule)
        if flag is None:
            actions.append({"action": "open", **action})
            continue
        change = severity_rank(finding["severity"]) - severity_rank(flag["severity"])
        if change > 0:
            action["previous_severity"] = flag["severity"]
        # change < 0: never lower a severity; the open flag already says more.
        if change > 0 or (change == 0 and finding["reason"] != flag.get("reason")):
            actions.append(
                {"action": "escalate" if change else "update", "id": flag["id"], **action}
            )
    return actions


def _highest_per_rule(items) -> dict[str, dict]:
    top: dict[str, dict] = {}
    for item in items:
        other = top.get(item["rule"])
        if other is None or severity_rank(item["severity"]) > severity_rank(other["severity"]):
            top[item["rule"]] = item
    return top
