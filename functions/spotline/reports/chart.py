"""Line charts as inline SVG, drawn here: a few hundred lines of code instead of a plotting library.

matplotlib would add tens of MB to the Lambda bundle and about a second of cold start for what is
a polyline, two axes and a few ticks. Each curve is one ``<polyline>`` tagged with its attempt and
metric (``data-attempt``, ``data-metric``); each interruption and resume is a vertical line tagged
with its step (``data-interrupted-at``, ``data-resumed-at``), so tests and people read the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from spotline.reports.metrics import Curve
from spotline.reports.page import colour, esc

WIDTH, HEIGHT = 600, 250
LEFT, RIGHT, TOP, BOTTOM = 72, 14, 16, 36
DOTS_UP_TO = 40  # curves with this few points get a dot per point (val mAP: one per evaluation)
INTERRUPT_COLOUR, RESUME_COLOUR = "#cf222e", "#1a7f37"


@dataclass(frozen=True)
class StepMark:
    """A vertical line at ``step``: ``kind`` is ``interrupted`` or ``resumed``."""

    step: int
    kind: str
    attempt: int


def _span(lo: float, hi: float) -> tuple[float, float]:
    """A non-empty range around ``lo..hi`` (a flat curve gets room above and below)."""
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 or 1.0
    return lo - pad, hi + pad


def _scale(value: float, lo: float, hi: float) -> float:
    """``value`` in ``lo..hi`` as 0..1; halves first so that 1e308 - -1e308 cannot overflow."""
    return (value / 2 - lo / 2) / (hi / 2 - lo / 2)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^n apart) covering ``lo..hi``."""
    half_span = hi / 2 - lo / 2
    if not half_span > 0 or not math.isfinite(half_span):
        return [lo]
    raw = math.log10(half_span) + math.log10(2 / count)
    magnitude = 10 ** math.floor(raw)
    fraction = 10 ** (raw - math.floor(raw))
    step = magnitude * next((f for f in (1, 2, 5) if fraction <= f * 1.000001), 10)
    if not math.isfinite(step) or step <= 0:
        return [lo, hi]
    first = math.ceil(lo / step)
    ticks = []
    for i in range(first, first + count * 3):
        value = i * step
        if value > hi + step * 1e-9:
            break
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
    return ticks or [lo, hi]


def _label(value: float) -> str:
    return f"{value:.3g}"


def line_chart(
    title: str,
    curves: Sequence[Curve],
    marks: Sequence[StepMark] = (),
    *,
    x_max: int | None = None,
    y_within: tuple[float, float] | None = None,
) -> str:
    """An SVG chart of ``curves`` over iterations, one colour per attempt, ``marks`` as vertical lines."""
    points = [p for c in curves for p in c.points]
    if not points:
        return f'<p class="note">No {esc(title)} points recorded yet.</p>'
    steps = [s for s, _ in points] + [m.step for m in marks] + ([x_max] if x_max else [])
    values = [v for _, v in points]
    x_lo, x_hi = _span(float(min([*steps, 0])), float(max(steps)))
    y_lo, y_hi = _span(min(values), max(values))
    if y_within is not None:  # a score: its whole scale, unless a value strays out of it
        y_lo, y_hi = min(*values, y_within[0]), max(*values, y_within[1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(step: float) -> float:
        return LEFT + _scale(step, x_lo, x_hi) * plot_w

    def y(value: float) -> float:
        return TOP + (1 - _scale(value, y_lo, y_hi)) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(title)} over iterations" data-chart="{esc(title)}">',
        f"<title>{esc(title)} over iterations</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>',
    ]
    for tick in nice_ticks(y_lo, y_hi):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#eef0f3"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" font-size="13" text-anchor="end" fill="#57606a">'
            f"{esc(_label(tick))}</text>"
        )
    for tick in nice_ticks(x_lo, x_hi, 6):
        tx = x(tick)
        parts.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" '
            'stroke="#8c959f"/>'
            f'<text x="{tx:.1f}" y="{TOP + plot_h + 16}" font-size="13" text-anchor="middle" '
            f'fill="#57606a">{esc(_label(tick))}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" font-size="13" text-anchor="middle" '
        'fill="#57606a">iteration</text>'
    )
    for curve in curves:
        if not curve.points:
            continue
        line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in curve.points)
        hue = colour(curve.attempt)
        parts.append(
            f'<polyline data-attempt="{curve.attempt}" data-metric="{esc(curve.name)}" '
            f'data-points="{len(curve.points)}" points="{line}" fill="none" stroke="{hue}" '
            'stroke-width="2" stroke-linejoin="round"/>'
        )
        if len(curve.points) <= DOTS_UP_TO:
            parts.extend(
                f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{hue}"/>' for s, v in curve.points
            )
    for mark in marks:
        mx = x(mark.step)
        interrupted = mark.kind == "interrupted"
        hue = INTERRUPT_COLOUR if interrupted else RESUME_COLOUR
        anchor = "end" if mx > LEFT + plot_w * 0.6 else "start"
        dx = -4 if anchor == "end" else 4
        ly = TOP + 12 if interrupted else TOP + plot_h - 6
        text = (
            f"attempt {mark.attempt} interrupted at {mark.step}"
            if interrupted
            else (f"attempt {mark.attempt} resumed at {mark.step}")
        )
        parts.append(
            f'<g data-{"interrupted" if interrupted else "resumed"}-at="{mark.step}" '
            f'data-attempt="{mark.attempt}">'
            f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{hue}" '
            f'stroke-width="1.5" stroke-dasharray="{"5 3" if interrupted else "2 3"}"/>'
            f'<text x="{mx + dx:.1f}" y="{ly:.1f}" font-size="13" text-anchor="{anchor}" fill="{hue}">'
            f"{esc(text)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def legend(attempts: Sequence[int]) -> str:
    """Which colour is which attempt, as HTML below the charts."""
    items = "".join(
        f'<span><i style="background:{colour(a)}"></i>attempt {a if a else "?"}</span>' for a in attempts
    )
    marks = (
        f'<span><i style="background:{INTERRUPT_COLOUR}"></i>interrupted</span>'
        f'<span><i style="background:{RESUME_COLOUR}"></i>resumed from its checkpoint</span>'
    )
    return f'<p class="legend">{items}{marks}</p>'
