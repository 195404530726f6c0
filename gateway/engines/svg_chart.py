"""Grouped bar charts as inline SVG, written directly: a dashboard page in milliseconds.

Matplotlib took about half a second for the dashboard's four charts (two layout passes each),
more than the page's whole time budget (docs/kpi.md); these charts need only bars, a y axis
with whole-number ticks, labels and a legend. Pure: numbers in, SVG text out; no scripts, no
external fonts, so the back office needs no network.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 640, 260  # the viewBox; the page scales it to the column's width
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 48, 30  # room for the y ticks, the title and legend, the x labels
CHAR_W = 6.5  # the width of an average character at the legend's 11 px, to lay the legend out
TICKS = 4  # about this many y ticks
FONT = 'font-family="system-ui, sans-serif"'


def _step(top: float) -> int:
    """A whole-number tick step of 1, 2 or 5 times a power of ten giving about TICKS ticks."""
    raw = max(1.0, top / TICKS)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def bar_chart(title: str, labels: list[str], series: dict[str, list[float]], colours: list[str]) -> str:
    """Bars per label, one per series side by side, with a legend when there are several series."""
    peak = max([1.0, *(v for values in series.values() for v in values)])
    step = _step(peak)
    top = step * math.ceil(peak * 1.05 / step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-label="{escape(title)}" {FONT}>',
           f'<text x="{LEFT}" y="18" font-size="15">{escape(title)}</text>']
    for tick in range(0, top + 1, step):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick}</text>')
    slot = plot_w / max(1, len(labels))
    bar = slot * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        x0 = LEFT + i * slot + slot * 0.1
        for j, (values, colour) in enumerate(zip(series.values(), colours, strict=False)):
            v = values[i] if i < len(values) else 0
            out.append(f'<rect x="{x0 + j * bar:.1f}" y="{y(v):.1f}" width="{bar:.1f}" '
                       f'height="{TOP + plot_h - y(v):.1f}" fill="{colour}">'
                       f"<title>{escape(label)}: {v:g}</title></rect>")
        out.append(f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - 10}" font-size="11" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#333"/>')
    if len(series) > 1:  # a line under the title, left to right
        x = float(LEFT)
        for name, colour in zip(series, colours, strict=False):
            out.append(f'<rect x="{x:.1f}" y="26" width="10" height="10" fill="{colour}"/>'
                       f'<text x="{x + 14:.1f}" y="35" font-size="11">{escape(name)}</text>')
            x += 30 + CHAR_W * len(name)
    out.append("</svg>")
    return "".join(out)
