"""What ``stylebatch run`` shows while it runs: live progress bars on stderr, log lines above them (the summary
after it: ``flows.summary``).

A terminal gets one live display, redrawn twice a second, with log lines printed above it: a bar over the
pairs (done / total, and the run's time left from the iterations done so far: ``Eta``), a bar per running
pair (iteration, s/it, time left) and under the bars a line per running pair with its level (multi-scale
renders only) and its weighted loss terms. Elsewhere (a log file, CI) the same news comes as plain lines.
Each failed pair is one line, ``row N <label>: <reason>``; tracebacks only with ``--verbose``. ``--quiet``
keeps failures and the summary. Prefect's own per-task messages and libraries' (asyncio's "Task exception
was never retrieved" during a store outage) reach the terminal only with ``--verbose``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from flows.console import console
from tasks.runs import progress
from tasks.runs.records import Outcome
from tasks.runs.report import step_text
from tasks.storage.records import Status

if TYPE_CHECKING:
    from nst_core import RenderResult, Settings, StepInfo
    from tasks.manifest.read import Pair

__all__ = ["Eta", "RunDisplay", "render_with_progress"]

Verbosity = Literal["quiet", "normal", "verbose"]
REFRESH_PER_SECOND = 2
OWN_LOGGERS = ("tasks", "flows", "nst_core", "stylebatch")  # the packages whose warnings a person reads


class Eta:
    """A run's time left: the iterations still to run at the rate of those run so far. A pair that ended
    counts whole if it rendered (its setup and writing included), else as far as it got; pairs not started
    yet count as many iterations as the manifest's pairs not seen yet, on average. Between news it counts down.
    A step costs the same however long the manifest."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.to_render = 0
        self.unseen: dict[str, int] = {}  # pairs of the manifest not started or ended yet -> their iterations
        self.unseen_iterations = 0  # their sum
        self.running: dict[str, tuple[int, int]] = {}  # pair id -> (iterations done, of how many)
        self.seen = self.seen_iterations = 0  # pairs started or ended, and their iterations
        self.done = 0  # iterations done, of every pair seen
        self.since: float | None = None  # when rendering started: the first pair's start (else the plan)
        self._estimate: tuple[float, float] | None = None  # (when, seconds left then)

    def plan(self, to_render: int, iterations: dict[str, int]) -> None:
        self.to_render, self.since = to_render, self.clock()
        self.unseen = dict(iterations)
        self.unseen_iterations = sum(iterations.values())

    def start(self, pair_id: str, iterations: int) -> None:
        if not self.seen:
            self.since = self.clock()
        self._see(pair_id, iterations)
        self.running[pair_id] = (0, iterations)

    def step(self, pair_id: str, iteration: int) -> None:
        done, iterations = self.running.get(pair_id, (0, iteration))
        self.running[pair_id] = (iteration, iterations)
        self.done += iteration - done
        self._estimate_now()

    def end(self, pair_id: str, rendered: bool) -> None:
        if pair_id in self.running:
            done, iterations = self.running.pop(pair_id)
        else:  # it reports only its end (a render on a Dask worker)
            done, iterations = 0, self.unseen.get(pair_id, 0)
            self._see(pair_id, iterations)
        if rendered:  # whole; a failed one counts what it did
            self.done += iterations - done
        self._estimate_now()

    def left_s(self) -> float | None:
        """Seconds left, or None before any iteration is done."""
        if self._estimate is None:
            return None
        when, left = self._estimate
        return max(left - (self.clock() - when), 0.0)

    def _see(self, pair_id: str, iterations: int) -> None:
        self.seen += 1
        self.seen_iterations += iterations
        self.unseen_iterations -= self.unseen.pop(pair_id, 0)

    def _estimate_now(self) -> None:
        now = self.clock()
        if self.since is None or self.done <= 0 or now <= self.since:
            self._estimate = None
            return
        running = sum(max(of - done, 0) for done, of in self.running.values())
        unseen = self.unseen_iterations / len(self.unseen) if self.unseen else self.seen_iterations / self.seen
        left = running + max(self.to_render - self.seen, 0) * unseen
        self._estimate = (now, left * (now - self.since) / self.done)


class _TimeLeft(TimeRemainingColumn):
    """Time left: the run's (``Eta``) on the pairs' bar, rich's own (from the bar's speed) on a pair's."""

    max_refresh = None  # drawn anew at each refresh (twice a second): the countdown's own pace

    def __init__(self, eta: Eta | None):
        super().__init__()
        self.eta = eta

    def render(self, task: Task) -> Text:
        if self.eta is None or not task.fields.get("overall"):
            return super().render(task)
        left = self.eta.left_s()
        return Text("-:--:--" if left is None else _clock(left), style="progress.remaining")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{secs:02d}"


class _Bars(Progress):
    """Progress bars as one table, then the ``losses`` line of each bar that has one (a running render's)."""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.visible and task.fields.get("losses"):
                yield Text(task.fields["losses"], no_wrap=True, overflow="ellipsis")


def _bars(console: Console, eta: Eta | None = None, disable: bool = False) -> _Bars:
    """Bars as wide as the terminal: label (cut if long), bar, done / total, ``info`` (s/it), time left."""
    return _Bars(
        TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True, max_width=48)),
        BarColumn(bar_width=None, table_column=Column(ratio=1)),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False, table_column=Column(no_wrap=True, min_width=10)),
        _TimeLeft(eta),
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
        expand=True,
        disable=disable,
    )


class RunDisplay(logging.Handler):
    """Shows a run's progress events and log records; use as a context manager around the run.

    ``pairs``: the manifest's pairs (their settings weigh the loss terms and count the levels and iterations)."""

    def __init__(
        self, console: Console, verbosity: Verbosity = "normal", ui_url: bool = False, pairs: Sequence[Pair] = ()
    ):
        super().__init__(level=logging.DEBUG)
        self.console, self.verbosity, self.ui_url = console, verbosity, ui_url
        self.live = console.is_terminal and verbosity != "quiet"
        self.settings: dict[str, Settings] = {pair.pair_id: pair.settings for pair in pairs}
        self.eta = Eta()
        self.bars = _bars(console, self.eta, disable=not self.live)
        self.pairs = self.bars.add_task("pairs", total=None, info="starting", overall=True, visible=self.live)
        self.running: dict[str, tuple[TaskID, int]] = {}  # pair id -> its bar and row
        self.labels: dict[str, str] = {}  # pair id -> its label (``Pair.label``)
        self._saved: list[tuple[logging.Logger, list[logging.Handler], bool, int]] = []

    def __enter__(self) -> RunDisplay:
        root, events = logging.getLogger(), progress.logger
        self._saved = [(log, log.handlers[:], log.propagate, log.level) for log in (root, events)]
        root.handlers = [self]  # in place of Prefect's console handler
        events.handlers, events.propagate = [self], False
        events.setLevel(logging.DEBUG)
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()
        for log, handlers, propagate, level in self._saved:
            log.handlers, log.propagate, log.level = handlers, propagate, level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = getattr(record, "event", None)
            if event is not None:
                self._on_event(event)
            elif self._shows(record):
                self._line(self.format(record), record.levelno)
        except Exception:
            self.handleError(record)

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if self.verbosity == "verbose":  # every source of messages: say which one
            source = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None) or record.name
            text = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {source}: {text}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"

    def _shows(self, record: logging.LogRecord) -> bool:
        if self.verbosity == "verbose":
            return record.levelno >= logging.INFO
        # Prefect's engine reports every task's state (with tracebacks): the summary and the UI say it better.
        # Libraries speak to developers: asyncio's "Task exception was never retrieved" and a future's repr
        # when an S3 connection drops, aiohttp's, Dask's. Our own packages' warnings are for the person here.
        ours = record.name.split(".")[0] in OWN_LOGGERS
        return self.verbosity == "normal" and record.levelno >= logging.WARNING and ours

    def _line(self, text: str, level: int = logging.INFO) -> None:
        style = "red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING else None
        self.console.print(escape(text), style=style, highlight=False, soft_wrap=True)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, progress.RunPlanned):
            self.bars.update(self.pairs, total=event.to_render, info="")
            self.labels = event.labels
            self.eta.plan(event.to_render, {p: s.total_iterations for p, s in self.settings.items()})
            for row, reason in event.bad_rows.items():
                self._line(f"row {row}: {reason}", logging.ERROR)
            if self.ui_url and event.ui_url and self.verbosity != "quiet":
                self._line(f"View at {event.ui_url}")
        elif isinstance(event, progress.PairStarted):
            self.eta.start(event.pair_id, event.iterations)
            if self.live:
                description = f"  row {event.row} {event.label}"
                bar = self.bars.add_task(description, total=event.iterations, info="", losses="")
                self.running[event.pair_id] = bar, event.row
        elif isinstance(event, progress.PairStep):
            self.eta.step(event.pair_id, event.step.iteration)
            if event.pair_id in self.running:
                self._pair_step(event.pair_id, event.step)
        elif isinstance(event, progress.PairEnded):
            self.eta.end(event.outcome.pair_id, event.outcome.status == Status.RENDERED)
            self._pair_ended(event.outcome)

    def _pair_step(self, pair_id: str, step: StepInfo) -> None:
        bar, row = self.running[pair_id]
        settings = self.settings.get(pair_id)
        losses = step_text(step, settings) if settings is not None else f"loss {step.total:.3g}"
        speed = f"{step.elapsed_s / step.iteration:.2f} s/it"
        self.bars.update(bar, completed=step.iteration, info=speed, losses=f"  row {row}: {losses}")

    def _pair_ended(self, outcome: Outcome) -> None:
        bar, _ = self.running.pop(outcome.pair_id, (None, 0))
        if bar is not None:
            self.bars.remove_task(bar)
        self.bars.advance(self.pairs)
        where = f"row {outcome.row} {self.labels.get(outcome.pair_id, outcome.pair_id)}"
        if outcome.status == Status.FAILED:  # with --verbose, the render task's log above held the traceback
            self._line(f"{where}: {outcome.reason}", logging.ERROR)
        elif not self.live and self.verbosity != "quiet":
            detail = f" in {outcome.wall_s:.1f} s" if outcome.status == Status.RENDERED else f": {outcome.reason}"
            detail += "" if outcome.resumed_at is None else f" (resumed at iteration {outcome.resumed_at})"
            self._line(f"{where}: {outcome.status}{detail}")


def render_with_progress(
    content: str, styles: list[str], settings: Settings, **masks: Sequence[str | None]
) -> RenderResult:
    """``nst_core.render`` with a bar (iteration, speed, time left) and the loss terms (``stylebatch render-one``);
    ``masks``: ``render``'s ``style_masks`` and ``style_image_masks``."""
    from nst_core import render

    with _bars(console) as bars:
        task = bars.add_task("rendering", total=settings.total_iterations, info="", losses="")

        def on_step(step: StepInfo) -> None:
            losses = step_text(step, settings)
            speed = f"{step.iteration / step.elapsed_s:.1f} it/s"
            bars.update(task, completed=step.iteration, info=speed, losses=losses)

        return render(content, styles, settings, on_step=on_step, **masks)
