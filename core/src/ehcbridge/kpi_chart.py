"""The annual-review figures month by month, drawn as a small SVG line chart (no library needed:
a few lines and labels)."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ehcbridge.store import Store

SERIES = (("decision_in_4_weeks", "Decisions within 4 weeks", "#1d70b8"),
          ("concluded_in_12_months", "Concluded within 12 months", "#00703c"),
          ("report_in_2_weeks", "Reports within 2 weeks", "#d4351c"))
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 360, 50, 20, 40, 80


def monthly_svg(store: Store, start: date, end: date, as_of: date) -> str:
    """An SVG of the percentage figures by month of due date (months with no data are gaps)."""
    from ehcbridge.kpis import OVERALL, compute

    kpis = compute(store, start, end, as_of, by="month")
    months = sorted(k for k in kpis.schools if k != OVERALL)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(months) - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t">',
             f'<title id="t">Annual-review figures by month, {start.isoformat()} to '
             f'{end.isoformat()}</title>',
             '<rect width="100%" height="100%" fill="#fff"/>',
             f'<text x="{LEFT}" y="24" font-family="Arial" font-size="16">Annual-review figures '
             'by month of due date (%)</text>']
    for pct in (0, 25, 50, 75, 100):
        y = TOP + plot_h * (1 - pct / 100)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" font-family="Arial" font-size="11" '
                     f'text-anchor="end">{pct}</text>')
    for i, month in enumerate(months):
        x = LEFT + i * step
        parts.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" font-family="Arial" '
                     f'font-size="11" text-anchor="middle">{escape(month)}</text>')
    for n, (measure, label, colour) in enumerate(SERIES):
        points = []
        for i, month in enumerate(months):
            share = kpis.schools[month][measure].percent
            if share is not None:
                points.append(f"{LEFT + i * step:.1f},{TOP + plot_h * (1 - share / 100):.1f}")
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" '
                         f'points="{" ".join(points)}"/>')
            parts += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" '
                      f'fill="{colour}"/>' for p in points]
        ly = HEIGHT - BOTTOM + 36 + 14 * n
        parts.append(f'<rect x="{LEFT}" y="{ly - 9}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{LEFT + 18}" y="{ly - 4}" font-family="Arial" font-size="12">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
