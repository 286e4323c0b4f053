"""loss_chart: weighted loss terms and the total as SVG polylines on a log scale inside the plot box."""

from __future__ import annotations

import itertools
import math

import pytest

from nst_core import Settings
from tasks.gallery.chart import FRAME_TITLE, MAX_POINTS, loss_chart
from tasks.storage.records import LossRow

ONES = Settings(content_weight=1, style_weight=1, tv_weight=1)
NAMES = ["content", "style", "tv", "total"]


def losses(rows: list[tuple[float, ...]]) -> list[LossRow]:
    """Rows of (iteration, content, style, tv, total)."""
    fields = ("iteration", *NAMES)
    return [LossRow(**dict(zip(fields, row, strict=True)), lr=1.0, elapsed_s=0.1) for row in rows]


def points(chart_line: tuple[str, str, str]) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in chart_line[2].split()]


def assert_inside(chart: object) -> None:
    left, top, right, bottom = chart.box
    for line in chart.lines:
        for x, y in points(line):
            assert math.isfinite(x) and math.isfinite(y), (line[0], x, y)
            assert left <= x <= right and top <= y <= bottom, (line[0], x, y)


def test_every_point_lies_in_the_plot_box() -> None:
    rows = [(i, 10.0 / i, 1e-3 * i, 5.0, 100.0 / i) for i in range(1, 51)]
    chart = loss_chart(losses(rows), Settings(content_weight=1e5, style_weight=3e4, tv_weight=1))

    assert [name for name, _, _ in chart.lines] == NAMES  # the total drawn last, on top
    assert all(len(points(line)) == 50 for line in chart.lines)
    assert_inside(chart)
    left, _, right, _ = chart.box
    assert points(chart.lines[-1])[0][0] == left  # the first iteration at the left edge
    assert points(chart.lines[-1])[-1][0] == right  # the last at the right edge


def test_the_scale_is_logarithmic_in_decades() -> None:
    rows = [(i, 10.0**i, 10.0**i, 10.0**i, 10.0**i) for i in range(4)]  # 1, 10, 100, 1000
    chart = loss_chart(losses(rows), ONES)

    ys = [y for _, y in points(chart.lines[-1])]
    steps = [a - b for a, b in itertools.pairwise(ys)]
    assert steps == pytest.approx([steps[0]] * 3, abs=0.15)  # equal steps per decade (points are rounded to 0.1)
    assert steps[0] > 0  # larger losses are higher up
    _, top, _, bottom = chart.box
    assert ys[0] == pytest.approx(bottom) and ys[-1] == pytest.approx(top)
    assert [label for _, label in chart.y_ticks] == ["1e0", "1e1", "1e2", "1e3"]
    assert [y for y, _ in chart.y_ticks] == pytest.approx(ys, abs=0.15)


def test_terms_are_weighted_as_in_the_total() -> None:
    rows = [(1, 1.0, 1.0, 1.0, 1.0), (2, 1.0, 1.0, 1.0, 1.0)]
    chart = loss_chart(losses(rows), Settings(content_weight=1e4, style_weight=1, tv_weight=1e2))
    lines = {name: points(line) for name, line in zip(NAMES, chart.lines, strict=True)}

    assert (chart.y_ticks[0][1], chart.y_ticks[-1][1]) == ("1e0", "1e4")
    assert lines["content"][0][1] == pytest.approx(chart.box[1])  # 1e4 at the top
    assert lines["style"][0][1] == pytest.approx(chart.box[3])  # 1 at the bottom
    assert lines["tv"][0][1] == pytest.approx((chart.box[1] + chart.box[3]) / 2, abs=0.1)  # 1e2 half way


@pytest.mark.parametrize("rows", [[], [(1, 0, 0, 0, 0), (2, 0, 0, 0, 0)]])
def test_no_chart_without_positive_values(rows: list[tuple[float, ...]]) -> None:
    assert loss_chart(losses(rows), ONES) is None


def test_zero_terms_are_left_out_of_their_line() -> None:
    rows = [(1, 0.0, 2.0, 3.0, 5.0), (2, 1.0, 2.0, 3.0, 6.0), (3, 0.5, 1.0, 1.0, 2.5)]  # content 0 at init=content
    chart = loss_chart(losses(rows), ONES)

    lengths = {line[0]: len(points(line)) for line in chart.lines}
    assert lengths == {"total": 3, "content": 2, "style": 3, "tv": 3}
    assert_inside(chart)


def test_long_runs_are_thinned_but_keep_their_last_iteration() -> None:
    rows = [(i, 1.0 / i, 2.0, 3.0, 4.0) for i in range(1, 1001)]
    chart = loss_chart(losses(rows), ONES)

    line = points(chart.lines[0])
    assert len(line) <= 2 * MAX_POINTS  # every (1000 // MAX_POINTS)th row: "about" MAX_POINTS, up to twice as many
    assert line[-1][0] == chart.box[2]
    assert [label for _, label in chart.x_ticks][-1] == "1000"
    assert_inside(chart)


def test_a_diverged_run_keeps_the_chart_inside_the_box() -> None:
    """An overflowing (inf) or NaN loss must not put non-finite coordinates into the SVG."""
    rows = [(1, 1.0, 2.0, 3.0, 6.0), (2, 1.0, math.inf, 3.0, math.inf), (3, math.nan, 1.0, 1.0, 2.0)]
    chart = loss_chart(losses(rows), ONES)

    assert chart is not None
    assert_inside(chart)


@pytest.mark.parametrize(
    ("last", "expected"),
    [(30, ["1", "5", "10", "15", "20", "25", "30"]), (500, ["1", "100", "200", "300", "400", "500"]), (37, None)],
)
def test_iteration_ticks_are_round_numbers_between_the_first_and_last(last: int, expected: list[str] | None) -> None:
    chart = loss_chart(losses([(i, 1.0, 1.0, 1.0, 3.0 + 1 / i) for i in range(1, last + 1)]), ONES)

    labels = [label for _, label in chart.x_ticks]
    assert 3 < len(labels) <= 10
    assert (labels[0], labels[-1]) == ("1", str(last))
    if expected is not None:
        assert labels == expected
    xs = [x for x, _ in chart.x_ticks]
    assert xs == sorted(xs) and min(b - a for a, b in itertools.pairwise(xs)) > 30  # readable: apart
    assert (chart.x_title, chart.y_title) == ("iteration", "loss, weighted (log scale)")


def test_a_narrow_loss_range_still_gets_more_than_three_ticks() -> None:
    chart = loss_chart(losses([(1, 2.0, 2.0, 2.0, 6.0), (2, 1.5, 1.5, 1.5, 4.5)]), ONES)  # within one decade

    assert [label for _, label in chart.y_ticks] == ["1e0", "2e0", "5e0", "1e1"]
    ys = [y for y, _ in chart.y_ticks]
    assert ys == sorted(ys, reverse=True)  # larger values higher up
    _, top, _, bottom = chart.box
    assert (ys[0], ys[-1]) == pytest.approx((bottom, top))


def test_a_clips_chart_is_over_frames_with_its_temporal_term_weighted() -> None:
    """A clip's log: one row per frame, the temporal term from the second frame on (0, and left out, for the first)."""
    rows = [LossRow(iteration=f, content=1.0, style=1.0, tv=1.0, total=3.0, lr=1.0, elapsed_s=0.1) for f in range(4)]
    rows = [row.model_copy(update={"temporal": 0.1 * row.iteration}) for row in rows]
    chart = loss_chart(rows, Settings(content_weight=1, style_weight=1, tv_weight=1, temporal_weight=10), FRAME_TITLE)

    assert [name for name, _, _ in chart.lines] == ["content", "style", "tv", "temporal", "total"]
    temporal = points(chart.lines[3])
    assert len(temporal) == 3  # frames 1 to 3
    assert temporal[-1][1] == pytest.approx(points(chart.lines[-1])[-1][1], abs=0.2)  # weighted, 10 x 0.3: the total
    assert [label for _, label in chart.x_ticks] == ["0", "1", "2", "3"]
    assert chart.x_title == "frame"
    assert_inside(chart)
