"""Server-rendered SVG charts: redness and swelling by hours since the session, against the band."""

import math
from functools import lru_cache

from markupsafe import Markup, escape

from companion.checkins import triage
from companion.checkins.store import as_triage, session_for_triage

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 260, 40, 16, 16, 40


def _x(h: float, span: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * max(0.0, min(h, span)) / span


def _y(v: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - v / 4)


@lru_cache(maxsize=256)
def _band_lines(depth: float | None, span: float) -> tuple[str, str]:
    """The expected band's upper edges as polyline points, sampled at 121 hours.

    Most charts share a span (a week and a bit) and one of a few needle depths: cached.
    """
    bands = [
        (_x(h, span), triage.expected_band(h, depth)) for h in (i * span / 120 for i in range(121))
    ]
    return tuple(
        " ".join(f"{px:.1f},{_y(b[score]):.1f}" for px, b in bands)
        for score in ("redness", "swelling")
    )


def recovery_svg(
    session: dict,
    points: list[dict],
    flagged_ids: set[str] | None = None,
    title: str = "Redness and swelling since the session",
) -> Markup:
    """Draw scores (0-4) by hour, the expected band's upper edge, and flagged points."""
    flagged_ids = flagged_ids or set()
    depth = session.get("needle_depth_mm")
    last = max([p["hours"] for p in points] + [168.0])
    span = min(math.ceil(last * 1.05 / 24) * 24, 24 * 60)  # whole days: few spans to cache

    def x(h: float) -> float:
        return _x(h, span)

    y = _y

    band_r, band_s = _band_lines(depth, span)
    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-t chart-d"'
        f' xmlns="http://www.w3.org/2000/svg"><title id="chart-t">{escape(title)}</title>'
        f'<desc id="chart-d">Dashed lines: the upper edge of the expected course (vendor downtime'
        f" figures stretch it for deeper needles). Circles: redness. Squares: swelling."
        f" Points with a ring raised a flag.</desc>"
    ]
    for v in range(5):
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"'
            f' stroke="currentColor" stroke-opacity=".15"/><text x="{LEFT - 8}" y="{y(v) + 4:.1f}"'
            f' text-anchor="end">{v}</text>'
        )
    day = 0
    while day * 24 <= span:
        parts.append(
            f'<text x="{x(day * 24):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">d{day}</text>'
        )
        day += 1 if span <= 24 * 10 else 7
    parts.append(
        f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle">days since the session</text>'
    )
    parts.append(
        f'<polyline points="{band_r}" fill="none" stroke="#b91c1c" stroke-dasharray="6 4" stroke-opacity=".7"/>'
    )
    parts.append(
        f'<polyline points="{band_s}" fill="none" stroke="#1d4ed8" stroke-dasharray="2 4" stroke-opacity=".7"/>'
    )
    pts = sorted(points, key=lambda p: p["hours"])
    if pts:
        parts.append(
            '<polyline fill="none" stroke="#b91c1c" stroke-width="2" points="'
            + " ".join(f"{x(p['hours']):.1f},{y(p['redness']):.1f}" for p in pts)
            + '"/>'
        )
        parts.append(
            '<polyline fill="none" stroke="#1d4ed8" stroke-width="2" points="'
            + " ".join(f"{x(p['hours']):.1f},{y(p['swelling']):.1f}" for p in pts)
            + '"/>'
        )
    for p in pts:
        px, ry, sy = x(p["hours"]), y(p["redness"]), y(p["swelling"])
        label = f"{p['hours']:.0f} h: redness {p['redness']}, swelling {p['swelling']}"
        flagged = p.get("id") in flagged_ids
        parts.append(
            f'<g class="point{" flagged" if flagged else ""}"><title>{escape(label)}'
            f"{' (flag raised)' if flagged else ''}</title>"
            f'<circle cx="{px:.1f}" cy="{ry:.1f}" r="5" fill="#b91c1c"/>'
            f'<rect x="{px - 4:.1f}" y="{sy - 4:.1f}" width="8" height="8" fill="#1d4ed8"/>'
            + (
                f'<circle cx="{px:.1f}" cy="{ry:.1f}" r="10" fill="none" stroke="currentColor"'
                f' stroke-width="2"/>'
                if flagged
                else ""
            )
            + "</g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def chart_for(
    session_row: dict,
    checkin_rows: list[dict],
    flagged_ids: set[str] | None = None,
    timezone: str = "UTC",
) -> Markup:
    """Chart a session from its stored rows (session row with performed_at text; check-in dicts)."""
    session = session_for_triage(session_row, timezone)
    points = triage.course_points(session, [as_triage(c) for c in checkin_rows])
    return recovery_svg(session, points, flagged_ids)
