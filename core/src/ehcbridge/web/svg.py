"""Pictures as SVG text: a review's duties on a date axis, and the figures' bar chart.

Colour never carries meaning alone (WCAG 1.4.1): each marker has its own shape and the status
is written beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from ehcbridge.models import Duty

# GOV.UK Design System colours, with a shape per status.
STYLE = {
    "met": ("#00703c", "circle", "met"),
    "late": ("#f47738", "diamond", "late"),
    "at_risk": ("#ffdd00", "triangle", "at risk"),
    "missed": ("#d4351c", "cross", "missed"),
    "pending": ("#505a5f", "ring", "pending"),
    "not_applicable": ("#b1b4b6", "ring", "not applicable"),
}
WIDTH, LEFT, RIGHT, ROW, TOP = 900, 230, 120, 30, 50


def label(name: str) -> str:
    """A duty name for people: ``report_sent`` -> ``Report sent``."""
    return name.replace("_", " ").capitalize()


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y}" r="7" fill="{colour}"/>'
    if shape == "ring":
        return (f'<circle cx="{x:.1f}" cy="{y}" r="6" fill="#ffffff" stroke="{colour}" '
                'stroke-width="3"/>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f} {y - 8} L{x + 8:.1f} {y} L{x:.1f} {y + 8} L{x - 8:.1f} {y} Z"'
                f' fill="{colour}" stroke="#0b0c0c" stroke-width="1"/>')
    if shape == "triangle":
        return (f'<path d="M{x:.1f} {y - 8} L{x + 8:.1f} {y + 7} L{x - 8:.1f} {y + 7} Z" '
                f'fill="{colour}" stroke="#0b0c0c" stroke-width="1.5"/>')
    return (f'<path d="M{x - 6:.1f} {y - 6} L{x + 6:.1f} {y + 6} M{x + 6:.1f} {y - 6} '
            f'L{x - 6:.1f} {y + 6}" stroke="{colour}" stroke-width="4"/>')


def timeline(case_id: str, duties: Sequence[Duty], today: date) -> str:
    """Every duty with a due date on one date axis, coloured and shaped by its status."""
    dated = [d for d in duties if d.due is not None]
    height = TOP + ROW * max(len(dated), 1) + 40
    title = f"Timeline of review {case_id}"
    desc = "; ".join(f"{label(d.name)}: due {d.due:%d %b %Y}, {STYLE[d.status.value][2]}"
                     for d in dated if d.due is not None) or "No dated duties yet."
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" '
             f'width="100%" aria-labelledby="tl-title tl-desc" class="timeline" '
             f'font-family="Arial, sans-serif" font-size="14">',
             f'<title id="tl-title">{escape(title)}</title><desc id="tl-desc">{escape(desc)}'
             '</desc>', f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>']
    if not dated:
        parts.append(f'<text x="20" y="{TOP}" fill="#0b0c0c">No dated duties yet.</text></svg>')
        return "".join(parts)
    first = min([d.due for d in dated if d.due is not None] + [today]) - timedelta(days=7)
    last = max([d.due for d in dated if d.due is not None] + [today]) + timedelta(days=7)
    span = max((last - first).days, 1)

    def x(day: date) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (day - first).days / span

    axis_y = height - 30
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" '
                 'stroke="#0b0c0c"/>')
    month = date(first.year, first.month, 1)
    while month <= last:
        if month >= first:
            mx = x(month)
            parts.append(f'<line x1="{mx:.1f}" y1="{TOP - 20}" x2="{mx:.1f}" y2="{axis_y + 5}" '
                         'stroke="#dddddd"/>'
                         f'<text x="{mx:.1f}" y="{axis_y + 20}" text-anchor="middle" '
                         f'fill="#0b0c0c">{month:%b %Y}</text>')
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    tx = x(today)
    parts.append(f'<line x1="{tx:.1f}" y1="{TOP - 25}" x2="{tx:.1f}" y2="{axis_y}" '
                 'stroke="#1d70b8" stroke-width="2" stroke-dasharray="4 3"/>'
                 f'<text x="{tx:.1f}" y="{TOP - 30}" text-anchor="middle" fill="#1d70b8">'
                 'today</text>')
    for i, duty in enumerate(dated):
        assert duty.due is not None
        y = TOP + ROW * i
        colour, shape, words = STYLE[duty.status.value]
        dx = x(duty.due)
        parts.append(f'<g class="duty duty-{duty.status.value}" data-duty="{escape(duty.name)}">'
                     f'<text x="10" y="{y + 5}" fill="#0b0c0c">{escape(label(duty.name))}</text>'
                     f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" '
                     'stroke="#f3f2f1"/>' + _marker(shape, dx, y, colour)
                     + f'<text x="{dx + 12:.1f}" y="{y + 5}" fill="#0b0c0c">{words}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def bars(values: dict[str, int], title: str) -> str:
    """A horizontal bar chart of counts by status."""
    keys = [k for k in STYLE if values.get(k)]
    height = 40 + 34 * max(len(keys), 1)
    top = max([values[k] for k in keys] + [1])
    desc = "; ".join(f"{STYLE[k][2]}: {values[k]}" for k in keys) or "No duties yet."
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 600 {height}" '
             f'width="100%" aria-labelledby="fig-title fig-desc" font-family="Arial, sans-serif"'
             f' font-size="14"><title id="fig-title">{escape(title)}</title>'
             f'<desc id="fig-desc">{escape(desc)}</desc>']
    for i, k in enumerate(keys):
        y = 20 + 34 * i
        w = 380 * values[k] / top
        parts.append(f'<text x="0" y="{y + 17}" fill="#0b0c0c">{STYLE[k][2]}</text>'
                     f'<rect x="130" y="{y}" width="{w:.1f}" height="24" fill="{STYLE[k][0]}" '
                     'stroke="#0b0c0c"/>'
                     f'<text x="{136 + w:.1f}" y="{y + 17}" fill="#0b0c0c">{values[k]}</text>')
    parts.append("</svg>")
    return "".join(parts)
