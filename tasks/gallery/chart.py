"""A small inline SVG chart of the weighted loss terms over iterations (log scale)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nst_core import Settings

if TYPE_CHECKING:
    from tasks.storage.records import LossRow

__all__ = ["Chart", "loss_chart"]

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 520, 260, 56, 12, 12, 28
# Drawn in this order: the total last, on top of the term that dominates it.
SERIES = (("content", "#4fa3ff"), ("style", "#ff7a59"), ("tv", "#7bd88f"), ("total", "#f2f2f2"))
MAX_POINTS = 300


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: list[tuple[str, str, str]]  # name, colour, SVG points "x,y x,y ..."
    y_ticks: list[tuple[float, str]]  # y position, label
    x_ticks: list[tuple[float, str]]
    box: tuple[int, int, int, int]  # left, top, right, bottom of the plot area


def loss_chart(losses: list[LossRow], settings: Settings) -> Chart | None:
    """Chart of the weighted terms (each times its weight, as they enter the total) and the total."""
    if not losses:
        return None
    step = math.ceil(len(losses) / MAX_POINTS)
    rows = losses[::step] + ([losses[-1]] if (len(losses) - 1) % step else [])
    its = [r.iteration for r in rows]
    weighted = [r.weighted(settings) for r in rows]
    series = {name: [w[name] for w in weighted] for name, _ in SERIES}
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
    decades = range(lo, hi + 1, max(1, (hi - lo) // 6))
    y_ticks = [(y(10.0**d), f"1e{d}") for d in decades]
    x_ticks = [(x(i), str(i)) for i in sorted({its[0], its[len(its) // 2], its[-1]})]
    return Chart(WIDTH, HEIGHT, lines, y_ticks, x_ticks, (LEFT, TOP, right, bottom))
