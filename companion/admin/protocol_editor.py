"""The protocol editor: steps from a form, timing in words, and a sample session's plan.

The preview plans with reminders/planning.py (the code that plans real sessions), so the
page never computes a due time of its own. Keys are made from titles for new steps.
"""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from companion.clinical import day_number
from companion.reminders import planning
from companion.reminders.protocol import hours_text, slug

# The form's repeated fields, one value per step, in page order.
FIELDS = (
    "key",
    "timing",
    "offset_hours",
    "day",
    "time",
    "kind",
    "title",
    "body",
    "title_es",
    "body_es",
    "valid_hours",
)
TEXTS = ("title", "body")
SAMPLE_CLOCK = time(10, 0)  # a sample session at 10:00 local, today


def timing_words(at: dict) -> str:
    """When a step fires, as a person says it: "right after", "24 h after", "day 2 at 18:00"."""
    if "offset_hours" in at:
        hours = at["offset_hours"]
        if isinstance(hours, bool) or not isinstance(hours, int | float):
            return f"{hours} h after"  # as typed, shown again beside "must be a number"
        return "right after" if hours == 0 else f"{hours_text(hours)} after"
    if at["day"] == 0:
        return f"same day at {at['time']}"
    return f"day {at['day']} at {at['time']}"


def _number(text: str) -> float | int | str:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return text  # the validator names it: "must be a number"
    return int(value) if value.is_integer() else value


def steps_from_form(form, kept: dict[str, dict]) -> list[dict]:
    """Read the editor's repeated fields into raw steps for validate_steps.

    `kept` is the current protocol's steps by key: what the form does not show
    (min_gap_hours) is carried over for steps that keep their key.
    """
    columns = {name: form.getlist(name) for name in FIELDS}
    count = max((len(v) for v in columns.values()), default=0)
    raw = [
        {name: (columns[name][i] if i < len(columns[name]) else "") for name in FIELDS}
        for i in range(count)
    ]
    taken = {r["key"].strip() for r in raw if r["key"].strip()}
    steps = []
    for r in raw:
        if (
            not any(r[k].strip() for k in ("title", "body", "title_es", "body_es"))
            and not r["key"].strip()
        ):
            continue  # an empty new step left on the page
        key = r["key"].strip() or slug(r["title"], taken)
        taken.add(key)
        if r["timing"] == "day":
            at = {"day": _number(r["day"]), "time": r["time"].strip()}
        else:
            at = {"offset_hours": _number(r["offset_hours"] or "0")}
        step = {"key": key, "kind": r["kind"], "at": at}
        for name in TEXTS:  # Spanish written: texts by language; else one for everyone
            spanish = r[f"{name}_es"]
            step[name] = {"en": r[name], "es": spanish} if spanish.strip() else r[name]
        if r["valid_hours"].strip():
            step["valid_hours"] = _number(r["valid_hours"])
        if "min_gap_hours" in kept.get(key, {}):
            step["min_gap_hours"] = kept[key]["min_gap_hours"]
        steps.append(step)
    return steps


def for_form(step: dict, when: str) -> dict:
    """A step as the editor shows it: English and Spanish texts in fields of their own."""
    shown = dict(step, when=when)
    for name in TEXTS:
        text = step.get(name)
        by_language = text if isinstance(text, dict) else {"en": text or ""}
        shown[name] = by_language.get("en") or ""
        shown[f"{name}_es"] = by_language.get("es") or ""
    return shown


def sample_start(timezone: str, now: datetime) -> datetime:
    """Today at 10:00 in that zone: the sample session the preview plans."""
    zone = ZoneInfo(timezone)
    return datetime.combine(now.astimezone(zone).date(), SAMPLE_CLOCK, zone)


def preview(
    steps: list[dict],
    timezone: str,
    performed_at: datetime,
    quiet: tuple[str, str] | None = planning.DEFAULT_QUIET_HOURS,
    language: str = "en",
) -> list[dict]:
    """Plan a sample session with these steps; say when each fires, locally, and why it moved.

    Titles are in `language` (a client's), as that client would get them.
    """
    quiet_start, quiet_end = quiet or (None, None)
    # `now` is the session itself: nothing is "already past" in a sample.
    planned = planning.plan(
        performed_at, steps, timezone, quiet_start, quiet_end, performed_at, language
    )
    loud = {
        r["step_key"]: r["due_at"]
        for r in planning.plan(performed_at, steps, timezone, None, None, performed_at)
    }
    zone = ZoneInfo(timezone)
    by_key = {s["key"]: s for s in steps}
    out = []
    for row in planned:
        local = row["due_at"].astimezone(zone)
        moved = loud[row["step_key"]] != row["due_at"] and row["status"] == "pending"
        out.append(
            {
                "key": row["step_key"],
                "kind": row["kind"],
                "title": row["title"],
                "when": timing_words(by_key[row["step_key"]]["at"]),
                "due_at": local.isoformat(),
                "local": f"{local:%a %d %b, %H:%M} {local.tzname()}",
                "day": day_number(performed_at, row["due_at"], timezone),
                "moved_from": (
                    f"{loud[row['step_key']].astimezone(zone):%H:%M} (quiet hours)"
                    if moved
                    else None
                ),
                "status": row["status"],
                "skip_reason": row["skip_reason"],
            }
        )
    return out


def fire_order(steps: list[dict], timezone: str, now: datetime) -> list[dict]:
    """Return the steps sorted by when they fire for a sample session (ties keep their order)."""
    start = sample_start(timezone, now)
    due = {
        r["step_key"]: r["due_at"] for r in planning.plan(start, steps, timezone, None, None, start)
    }
    far = start + timedelta(days=10_000)
    return sorted(steps, key=lambda s: due.get(s["key"], far))


_PATH = re.compile(r"steps\[(\d+)\]\.?(.*)")
_FIELD_NAMES = {
    "at.offset_hours": "hours after",
    "at.day": "day",
    "at.time": "time",
    "valid_hours": "valid for",
    "at": "timing",
    "title.en": "title",
    "body.en": "text",
    "title.es": "Spanish title",
    "body.es": "Spanish text",
}


def error_lines(errors: dict[str, str]) -> list[str]:
    """Say each error by step number and field as the page labels them: "Step 3, time: ..."."""
    out = []
    for path, message in errors.items():
        match = _PATH.fullmatch(path)
        if match:
            field = _FIELD_NAMES.get(match[2], match[2]) or "step"
            out.append(f"Step {int(match[1]) + 1}, {field}: {message}")
        else:
            out.append(message)
    return out
