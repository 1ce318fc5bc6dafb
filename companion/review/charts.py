"""Recovery charts: redness and swelling against the expected course, drawn by templates/_chart.html.

This module only computes geometry (numbers in viewBox units); the SVG is a Jinja template.
The x axis is time since the session; its day labels are the client's local calendar days
(clinical.day_number), so "Day 2" on the chart is "Day 2" everywhere else.
"""

import math
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app
from markupsafe import Markup, escape

from companion.checkins import triage
from companion.checkins.store import as_triage, session_for_triage
from companion.i18n import gettext as _

# viewBox units. Narrow on purpose: at 320 px CSS a 16-unit label is still about 12 px.
W, H, LEFT, RIGHT, TOP, BOTTOM = 340, 214, 34, 10, 14, 46
SCORES = ("redness", "swelling")
# Where the expected course comes from (/work/shared/clinical/aftercare.md, "Expected recovery course").
BAND_SOURCE = (
    "Alster & Graham 2018; PMC8008152; Chu et al. 2021. Deeper needles stretch it by the"
    " device makers' downtime figures (not peer-reviewed)."
)


def _x(h: float, span: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * max(0.0, min(h, span)) / span


def _y(v: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - v / 4)


# The score grid and its labels 0-4: the same on every chart, so written once.
GRID = Markup(
    "".join(
        f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{_y(v):.1f}" y2="{_y(v):.1f}"/>\n'
        f'  <text class="ylabel" x="{LEFT - 14}" y="{_y(v) + 5:.1f}" text-anchor="end">{v}</text>\n  '
        for v in range(5)
    )
)


@lru_cache(maxsize=256)
def _bands(depth: float | None, span: float) -> tuple[str, str]:
    """The expected band of each score as a closed polygon from 0 up to its upper edge.

    Most charts share a span (whole days) and one of a few needle depths: cached.
    """
    samples = [(h, triage.expected_band(h, depth)) for h in (i * span / 120 for i in range(121))]
    out = []
    for score in SCORES:
        edge = []
        for i, (h, band) in enumerate(samples):
            if i and band[score] != samples[i - 1][1][score]:  # a step, drawn upright
                edge.append((_x(h, span), _y(samples[i - 1][1][score])))
            edge.append((_x(h, span), _y(band[score])))
        ring = [(_x(0, span), _y(0)), *edge, (_x(span, span), _y(0))]
        out.append(" ".join(f"{px:.1f},{py:.1f}" for px, py in ring))
    return out[0], out[1]


@lru_cache(maxsize=1024)
def _midnights(timezone: str, first: date, days: int) -> tuple[datetime, ...]:
    """The local midnights (in UTC) starting on `first`: the same for every session in that
    zone on that day, so each zone's are worked out once a day, not per chart."""
    zone = ZoneInfo(timezone)
    return tuple(
        datetime.combine(first + timedelta(days=d), time(), zone).astimezone(UTC)
        for d in range(days + 1)
    )


def _day_ticks(performed: datetime, span: float, timezone: str) -> list[dict]:
    """Local midnights after the session (day boundaries) and a label centred on each day."""
    first = performed.astimezone(ZoneInfo(timezone)).date()
    # Enough days to pass the span, even with a short (DST) day among them.
    midnights = _midnights(timezone, first, int(span // 24) + 3)
    step = 1 if span <= 24 * 10 else 7
    # A sliver of a day (the evening of a session at 23:00, the last hours of the span) keeps
    # its tick but not its number: "0" crammed beside "1" read as "01".
    narrow = (_x(24, span) - _x(0, span)) * 0.4
    ticks = []
    for day in range(0, len(midnights) - 1, step):  # only the days labelled
        h0 = max(0.0, (midnights[day] - performed).total_seconds() / 3600)
        if h0 >= span:
            break
        h1 = (midnights[day + 1] - performed).total_seconds() / 3600
        x0, x1 = _x(h0, span), _x(min(h1, span), span)
        label = day if step > 1 or x1 - x0 >= narrow else ""
        ticks.append({"day": label, "x": f"{x0:.1f}", "mid": f"{(x0 + x1) / 2:.1f}"})
    return ticks


def chart(session: dict, points: list[dict], flagged: dict[str, list[str]] | None = None) -> dict:
    """Return the geometry the template draws: band polygons, day ticks, score points.

    Coordinates come formatted (one decimal): formatting them here costs a fraction of
    what a Jinja filter per number does, and the chart draws hundreds of numbers.
    """
    flagged = flagged or {}
    depth = session.get("needle_depth_mm")
    last = max([p["hours"] for p in points] + [168.0])
    span = min(math.ceil(last * 1.05 / 24) * 24, 24 * 60)  # whole days: few spans to cache
    band_r, band_s = _bands(depth, span)
    pts, lines = [], {score: [] for score in SCORES}
    # Translated once per chart, filled in per point (a lookup per point cost ~20 us each).
    point_label = _("Day %(day)s (%(hours)s h): redness %(redness)s, swelling %(swelling)s")
    for p in sorted(points, key=lambda p: p["hours"]):
        x = _x(p["hours"], span)
        rx, sx, ry, sy = x - 3, x + 3, _y(p["redness"]), _y(p["swelling"])
        lines["redness"].append(f"{rx:.1f},{ry:.1f}")
        lines["swelling"].append(f"{sx:.1f},{sy:.1f}")
        reasons = flagged.get(p.get("id"), [])
        label = point_label % {
            "day": p["day"],
            "hours": round(p["hours"]),
            "redness": p["redness"],
            "swelling": p["swelling"],
        }
        pts.append(
            {
                "id": p.get("id"),
                # Redness a little left, swelling a little right: equal scores stay visible.
                "rx": f"{rx:.1f}",
                "ry": f"{ry:.1f}",
                # The swelling square's corner (9 units wide, centred on the score).
                "sx": f"{sx - 4.5:.1f}",
                "sy": f"{sy - 4.5:.1f}",
                "flagged": bool(reasons) or p.get("id") in flagged,
                "label": label + ("; flag raised: " + "; ".join(reasons) if reasons else ""),
            }
        )
    bottom = _y(0)
    return {
        "W": W,
        "H": H,
        "left": LEFT,
        "right": W - RIGHT,
        "bottom": f"{bottom:.1f}",
        "tick_end": f"{bottom + 6:.1f}",
        "label_y": f"{bottom + 20:.1f}",
        "grid": GRID,
        "ticks": _day_ticks(session["performed_at"], span, session.get("timezone", "UTC")),
        "band_redness": band_r,
        "band_swelling": band_s,
        "lines": {score: " ".join(lines[score]) for score in SCORES},
        "points": pts,
        "depth": depth,
        "stretched": triage.downtime_hours(depth) > triage.downtime_hours(None),
        "source": BAND_SOURCE,
    }


def points_svg(points: list[dict], audience: str) -> Markup:
    """The score points as _chart.html drew them with a loop, written here: a Jinja loop spent
    ~10 us a point on lookups and escaping numbers (a year of check-ins is 100 points).
    A practitioner's flagged point is a link to its check-in, ringed."""
    out = []
    for p in points:
        label, rx, ry = escape(p["label"]), p["rx"], p["ry"]
        ring = p["flagged"] and audience == "practitioner"
        if ring:
            out.append(
                f'\n  <a href="#c-{escape(p["id"])}" class="point flagged" aria-label="{label}">'
                f'<title>{label}</title>\n    <circle class="ring" cx="{rx}" cy="{ry}" r="11"/>\n  '
            )
        else:
            out.append(f'\n  <g class="point"><title>{label}</title>')
        out.append(
            f'\n    <circle class="mark redness" cx="{rx}" cy="{ry}" r="5"/>\n    <rect class="mark'
            f' swelling" x="{p["sx"]}" y="{p["sy"]}" width="9" height="9"/>\n  '
            + ("</a>\n  " if ring else "</g>\n  ")
        )
    return Markup("".join(out))


def chart_for(
    session_row: dict,
    checkin_rows: list[dict],
    flagged: dict[str, list[str]] | set[str] | None = None,
    timezone: str = "UTC",
    *,
    audience: str = "practitioner",
) -> Markup:
    """Chart a session from its stored rows (session row with performed_at text; check-in dicts).

    flagged: check-in id -> the flags it raised ("R1: reason"), shown on hover, focus or tap.
    """
    if isinstance(flagged, set):
        flagged = {checkin_id: [] for checkin_id in flagged}
    session = session_for_triage(session_row, timezone)
    points = triage.course_points(session, [as_triage(c) for c in checkin_rows])
    geometry = chart(session, points, flagged)
    # Rendered inside a page's view: straight from the Jinja environment, without Flask's
    # render_template(), which would run the context processors again for every chart (the
    # practitioner's flag counts query, the push banner) for words the chart does not use.
    geometry["points_svg"] = points_svg(geometry["points"], audience)
    template = current_app.jinja_env.get_template("_chart.html")
    uid = f"s{session_row.get('id', 0)}"
    return Markup(template.render(c=geometry, audience=audience, uid=uid))
