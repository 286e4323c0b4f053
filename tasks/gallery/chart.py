"""An inline SVG chart of the weighted loss terms over iterations, or a clip's frames (log scale), with axis titles
and ticks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nst_core import Settings

if TYPE_CHECKING:
    from tasks.storage.records import LossRow

__all__ = ["FRAME_TITLE", "Chart", "loss_chart"]

# Drawn 1:1 across a detail page's main column at 1400 px; the margins hold the ticks and the axis titles.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 900, 320, 76, 16, 14, 48
X_TITLE, FRAME_TITLE, Y_TITLE = "iteration", "frame", "loss, weighted (log scale)"
X_TICKS = 8  # about as many iteration ticks
# Drawn in this order: the total last, on top of the term that dominates it. A term a log lacks (temporal: a
# clip's, from its second frame) draws no line.
SERIES = (
    ("content", "#4fa3ff"),
    ("style", "#ff7a59"),
    ("tv", "#7bd88f"),
    ("temporal", "#d68cff"),
    ("total", "#f2f2f2"),
)
MAX_POINTS = 300


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: list[tuple[str, str, str]]  # name, colour, SVG points "x,y x,y ..."
    y_ticks: list[tuple[float, str]]  # y position, label
    x_ticks: list[tuple[float, str]]
    box: tuple[int, int, int, int]  # left, top, right, bottom of the plot area
    x_title: str = X_TITLE
    y_title: str = Y_TITLE


def loss_chart(losses: list[LossRow], settings: Settings, x_title: str = X_TITLE) -> Chart | None:
    """Chart of the weighted terms (each times its weight, as they enter the total) and the total, over
    ``x_title`` (``FRAME_TITLE`` for a clip's log: one row per frame)."""
    if not losses:
        return None
    step = math.ceil(len(losses) / MAX_POINTS)
    rows = losses[::step] + ([losses[-1]] if (len(losses) - 1) % step else [])
    its = [r.iteration for r in rows]
    weighted = [r.weighted(settings) for r in rows]
    series = {name: [w.get(name, 0.0) for w in weighted] for name, _ in SERIES}
    positive = [v for values in series.values() for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return None
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    hi = max(hi, lo + 1)
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x(it: int) -> float:
        return LEFT + (it - its[0]) / max(1, its[-1] - its[0]) * (right - LEFT)

    def y(value: float) -> float:
        return bottom - (math.log10(value) - lo) / (hi - lo) * (bottom - TOP)

    lines = []
    for name, colour in SERIES:
        points = " ".join(
            f"{x(i):.1f},{y(v):.1f}" for i, v in zip(its, series[name], strict=True) if v > 0 and math.isfinite(v)
        )
        if points:
            lines.append((name, colour, points))
    y_ticks = [(y(value), label) for value, label in _log_ticks(lo, hi)]
    x_ticks = [(x(i), str(i)) for i in _iteration_ticks(its[0], its[-1])]
    return Chart(WIDTH, HEIGHT, lines, y_ticks, x_ticks, (LEFT, TOP, right, bottom), x_title)


def _log_ticks(lo: int, hi: int) -> list[tuple[float, str]]:
    """Ticks from 10^lo to 10^hi: every decade (at most about 7), and 2 and 5 times each when there are fewer
    than three decades, so that there are always more than three."""
    decades = range(lo, hi + 1, max(1, (hi - lo) // 6))
    steps = (1, 2, 5) if hi - lo < 3 else (1,)
    ticks = [(m * 10.0**d, f"{m}e{d}") for d in decades for m in steps]
    return [(value, label) for value, label in ticks if value <= 10.0**hi]


def _iteration_ticks(first: int, last: int) -> list[int]:
    """About ``X_TICKS`` round iterations (multiples of 1, 2 or 5 times a power of ten) from ``first`` to ``last``,
    both included; a round one too close to either end is left out."""
    span = max(1, last - first)
    step = next(m * 10**k for k in range(len(str(span)) + 1) for m in (1, 2, 5) if span / (m * 10**k) <= X_TICKS)
    inner = [i for i in range(first - first % step + step, last, step) if min(i - first, last - i) >= step / 2]
    return sorted({first, *inner, last})
