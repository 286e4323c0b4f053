"""What a run's terminal shows while it runs (``flows.display``), fed the run's own events on a recorded terminal:
the run's time left, each running pair's level and weighted loss terms, and which log records reach it."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import re

import pytest
from rich.console import Console

from flows.display import Eta, RunDisplay
from nst_core import Settings, StepInfo
from tasks.manifest.read import Pair
from tasks.runs import progress
from tasks.runs.records import Outcome
from tasks.storage.records import Status

TIMES = " \N{MULTIPLICATION SIGN} "


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)


def screen(display: RunDisplay) -> list[str]:
    """The live display as drawn now (bars, then each running pair's line)."""
    shown = terminal()
    shown.print(display.bars.get_renderable())
    return [line.rstrip() for line in shown.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def pairs_3x3(**settings: object) -> list[Pair]:
    """Rows 2-10: 3 contents x 3 styles, labelled as the manifest labels them."""
    made = Settings(**settings)
    return [
        Pair(f"c{c}__s{s}-0000000{c}", 2 + 3 * c + s, f"c{c}.png", (f"s{s}.png",), made, (), f"c{c}{TIMES}s{s}")
        for c in range(3)
        for s in range(3)
    ]


def step(iteration: int, *, level: int = 1, elapsed_s: float = 1.0) -> StepInfo:
    return StepInfo(iteration, content=0.5, style=0.25, tv=0.01, total=1.5, lr=1.0, elapsed_s=elapsed_s, level=level)


def started(pairs: list[Pair]) -> None:
    """The run planned, its first pair started: as the flow and the render task say it."""
    progress.emit(progress.RunPlanned(len(pairs), {p.pair_id: p.label for p in pairs}, {}, None))
    first = pairs[0]
    progress.emit(progress.PairStarted(first.pair_id, first.label, first.row, first.settings.total_iterations))


def pairs_bar(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("pairs "))


def test_a_3x3_run_shows_its_time_left_within_the_first_pair() -> None:
    """40 iterations a pair, 1 s each: after 4 iterations, 36 + 8 x 40 iterations are left at 1 it/s."""
    pairs, clock = pairs_3x3(iterations=40), Clock()
    with RunDisplay(terminal(), pairs=pairs) as display:
        display.eta.clock = clock
        started(pairs)
        assert re.search(r" 0/9 +-:--:--$", pairs_bar(screen(display)))  # nothing done yet: nothing to go by
        for iteration in range(1, 5):
            clock.now += 1
            progress.emit(progress.PairStep(pairs[0].pair_id, step(iteration, elapsed_s=iteration)))
        assert re.search(r" 0/9 +0:05:56$", pairs_bar(screen(display)))
        clock.now += 10  # no news for 10 s: it counts down
        assert re.search(r" 0/9 +0:05:46$", pairs_bar(screen(display)))


def test_the_time_left_follows_the_pairs_that_ended() -> None:
    """A pair rendered in 50 s (its 40 iterations and 10 s of setup and writing), one that failed at once: the
    7 left take 50 s each."""
    pairs, clock = pairs_3x3(iterations=40), Clock()
    eta = Eta(clock)
    eta.plan(9, {p.pair_id: p.settings.total_iterations for p in pairs})
    eta.start(pairs[0].pair_id, 40)
    for iteration in range(1, 41):
        clock.now += 1
        eta.step(pairs[0].pair_id, iteration)
    clock.now += 10
    eta.end(pairs[0].pair_id, rendered=True)
    assert eta.left_s() == pytest.approx(8 * 50)
    eta.start(pairs[1].pair_id, 40)
    eta.end(pairs[1].pair_id, rendered=False)  # its input was missing: no time, no work
    assert eta.left_s() == pytest.approx(7 * 50)
    clock.now += 400
    assert eta.left_s() == 0


def test_pairs_that_report_only_their_end_still_give_a_time_left() -> None:
    """Renders on Dask workers send no steps: the time since the plan over the pairs that ended."""
    clock = Clock()
    eta = Eta(clock)
    eta.plan(4, {"a": 100, "b": 100, "c": 100, "d": 100})
    assert eta.left_s() is None
    clock.now += 30
    eta.end("a", rendered=True)
    assert eta.left_s() == pytest.approx(90)


def test_a_running_pair_shows_weighted_terms_and_the_level_only_when_there_are_levels() -> None:
    """The terms as they enter the total (style_weight 3: style 0.25 shows 0.75), as the gallery shows them."""
    single = pairs_3x3(iterations=40, style_weight=3, content_weight=2, tv_weight=10)
    with RunDisplay(terminal(), pairs=single) as display:
        started(single)
        progress.emit(progress.PairStep(single[0].pair_id, step(3)))
        lines = screen(display)
    assert "  row 2: losses (weighted): content 1 style 0.75 tv 0.1 total 1.5" in lines
    assert not any("level" in line for line in lines)

    multi = pairs_3x3(image_size=64, start_size=32, iterations=40, level_iterations=20)
    with RunDisplay(terminal(), pairs=multi) as display:
        started(multi)
        progress.emit(progress.PairStep(multi[0].pair_id, step(25, level=2)))
        lines = screen(display)
        assert any(line.startswith(f"  row 2 c0{TIMES}s0 ") and " 25/60 " in line for line in lines)
        assert "  row 2: level 2/2 · losses (weighted): content 0.5 style 0.75 tv 0.001 total 1.5" in lines
        assert all(len(line) <= 100 for line in lines)
        progress.emit(progress.PairEnded(Outcome(pair_id=multi[0].pair_id, row=2, status=Status.RENDERED)))
        lines = screen(display)
    assert not any(line.startswith("  row 2") for line in lines)  # its bar and its line are gone
    assert pairs_bar(lines).split()[-2] == "1/9"


def unretrieved_task_exception() -> None:
    """What aiohttp's closing connections left behind in an S3 outage: a task whose exception nobody read, which
    asyncio reports (logger ``asyncio``, ERROR) when the task is collected."""

    async def write() -> None:
        raise ConnectionResetError("Cannot write to closing transport")

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(write())
        loop.run_until_complete(asyncio.sleep(0.01))
        assert task.done()
        del task
        gc.collect()
    finally:
        loop.close()


@pytest.mark.parametrize("verbosity", ["normal", "verbose"])
def test_library_noise_reaches_the_terminal_only_with_verbose(verbosity: str) -> None:
    console = terminal()
    with RunDisplay(console, verbosity):  # type: ignore[arg-type]
        unretrieved_task_exception()
        logging.getLogger("tasks.storage.retries").warning("output s3://b/r: connection lost; trying again in 9 s")
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "output s3://b/r: connection lost; trying again in 9 s" in shown  # our own warnings, always
    noise = ("Task exception was never retrieved", "Cannot write to closing transport")
    if verbosity == "verbose":
        assert all(text in shown for text in noise)  # the record was real, and it reached the display
    else:
        assert not any(text in shown for text in noise)
