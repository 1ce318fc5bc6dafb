"""Plan one session's reminders from a protocol's steps: wall clocks, DST and quiet hours.

Pure: time is an argument, and results are plain dicts with aware UTC datetimes. The
rules (quiet hours, validity) come from docs/clinical.md, "Default protocol".
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from companion.reminders.protocol import DEFAULT_VALID_HOURS, hours_text, parse_hhmm, text_in

DEFAULT_QUIET_HOURS = ("21:00", "08:00")

SKIP_BEFORE_SESSION = "before the session"
SKIP_PAST_VALIDITY = "past its validity window when planned"


def local_time(dt_utc: datetime, tz: str) -> datetime:
    """Convert an aware datetime to the wall clock of a time zone."""
    return dt_utc.astimezone(ZoneInfo(tz))


def _wall_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """Return the instant a wall clock shows `clock` on `day`, DST-safe.

    An ambiguous time (the repeated hour when clocks go back) takes its first
    occurrence (fold=0). A nonexistent time (the hour skipped when clocks go
    forward) becomes the first valid instant after the gap, the moment of the
    jump: 02:30 in New York on a spring-forward day is 03:00 EDT.
    """
    local = datetime.combine(day, clock, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # In the gap fold=0 reads the time with the old offset (after the jump) and
    # fold=1 with the new one (before it); the jump lies between: bisect it.
    low = int(local.replace(fold=1).astimezone(UTC).timestamp())
    high = int(instant.timestamp())
    after = instant.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _in_quiet(clock: time, start: time, end: time) -> bool:
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # the window wraps midnight


def out_of_quiet(due: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> datetime:
    """Return due, or the end of the quiet window it falls in (planning and sending both ask)."""
    if quiet is None:
        return due
    start, end = quiet
    # Twice is enough in practice; the third pass covers a window end that falls
    # in a DST gap and lands back inside a near-24 h window.
    for _ in range(3):
        local = due.astimezone(zone)
        if not _in_quiet(local.time(), start, end):
            break
        end_day = local.date()
        if start > end and local.time() >= start:
            end_day += timedelta(days=1)
        moved = _wall_to_utc(end_day, end, zone)
        if moved <= due:
            # Due in the second pass of a repeated hour: the window ends at the
            # second occurrence of `end`, never earlier than the step.
            moved = datetime.combine(end_day, end, zone).replace(fold=1).astimezone(UTC)
        due = moved
    return due


def plan(
    performed_at: datetime,
    steps: list[dict],
    tz: str,
    quiet_start: str | None,
    quiet_end: str | None,
    now: datetime,
    language: str = "en",
) -> list[dict]:
    """Plan one session's notification rows from a protocol's steps, in due order.

    Each row's title and body are the step's in `language` (the client's), else English.

    Wall-clock steps use the client's zone `tz` (see _wall_to_utc for DST gaps and
    repeats). A step due before the session, or sooner than its min_gap_hours after
    it, is skipped; a step inside quiet hours moves to the end of the window; a
    step whose validity has already run out at `now` is skipped, not sent late.
    """
    if performed_at.utcoffset() is None or now.utcoffset() is None:
        raise ValueError("performed_at and now must be timezone-aware")
    zone = ZoneInfo(tz)
    quiet = None
    if quiet_start is not None and quiet_end is not None and quiet_start != quiet_end:
        quiet = (parse_hhmm(quiet_start), parse_hhmm(quiet_end))
    session = performed_at.astimezone(UTC)
    session_day = session.astimezone(zone).date()
    rows = []
    for step in steps:
        at = step["at"]
        if "offset_hours" in at:
            due = session + timedelta(hours=at["offset_hours"])
        else:
            day = session_day + timedelta(days=at["day"])
            due = _wall_to_utc(day, parse_hhmm(at["time"]), zone)
        min_gap = step.get("min_gap_hours") or 0
        reason = None
        if due < session:
            reason = SKIP_BEFORE_SESSION
        elif due - session < timedelta(hours=min_gap):
            reason = f"less than {hours_text(min_gap)} after the session"
        else:
            due = out_of_quiet(due, zone, quiet)
        valid_hours = step.get("valid_hours") or DEFAULT_VALID_HOURS[step["kind"]]
        expires = due + timedelta(hours=valid_hours)
        if reason is None and expires <= now:
            reason = SKIP_PAST_VALIDITY
        rows.append(
            {
                "step_key": step["key"],
                "kind": step["kind"],
                "title": text_in(step["title"], language),
                "body": text_in(step["body"], language),
                "due_at": due,
                "expires_at": expires,
                "status": "pending" if reason is None else "skipped",
                "skip_reason": reason,
            }
        )
    rows.sort(key=lambda row: row["due_at"])  # stable: ties keep protocol order
    return rows
