"""What ``stylebatch run`` shows: live progress bars on stderr, log lines above them, a summary on stdout.

A terminal gets one live display: a bar over the pairs (done / total, ETA from finished pairs) and a
bar per running pair (iteration, losses, s/it), redrawn twice a second, with log lines printed above
it. Elsewhere (a log file, CI) the same news comes as plain lines. Each failed pair is one line,
``row N <pair id>: <reason>``; tracebacks only with ``--verbose``. ``--quiet`` keeps failures and the
summary. Prefect's own per-task messages reach the terminal only with ``--verbose`` (the UI has them).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Literal

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from flows.console import console
from tasks.runs import progress
from tasks.runs.records import Outcome, RunSummary
from tasks.storage.records import Status

if TYPE_CHECKING:
    from nst_core import RenderResult, Settings, StepInfo

__all__ = ["RunDisplay", "print_summary", "render_with_progress", "step_text"]

Verbosity = Literal["quiet", "normal", "verbose"]
REFRESH_PER_SECOND = 2


class RunDisplay(logging.Handler):
    """Shows a run's progress events and log records; use as a context manager around the run."""

    def __init__(self, console: Console, verbosity: Verbosity = "normal", ui_url: bool = False):
        super().__init__(level=logging.DEBUG)
        self.console, self.verbosity, self.ui_url = console, verbosity, ui_url
        self.live = console.is_terminal and verbosity != "quiet"
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            disable=not self.live,
        )
        self.pairs = self.bars.add_task("pairs", total=None, info="starting", visible=self.live)
        self.running: dict[str, TaskID] = {}  # pair id -> its bar
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
        return (
            self.verbosity == "normal" and record.levelno >= logging.WARNING and not record.name.startswith("prefect")
        )

    def _line(self, text: str, level: int = logging.INFO) -> None:
        style = "red" if level >= logging.ERROR else "yellow" if level >= logging.WARNING else None
        self.console.print(escape(text), style=style, highlight=False, soft_wrap=True)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, progress.RunPlanned):
            self.bars.update(self.pairs, total=event.to_render, info="")
            for row, reason in event.bad_rows.items():
                self._line(f"row {row}: {reason}", logging.ERROR)
            if self.ui_url and event.ui_url and self.verbosity != "quiet":
                self._line(f"View at {event.ui_url}")
        elif isinstance(event, progress.PairStarted) and self.live:
            bar = self.bars.add_task(f"  row {event.row} {event.pair_id}", total=event.iterations, info="")
            self.running[event.pair_id] = bar
        elif isinstance(event, progress.PairStep) and event.pair_id in self.running:
            step = event.step
            speed = step.elapsed_s / step.iteration
            info = f"{step_text(step)}  {speed:.2f} s/it"
            self.bars.update(self.running[event.pair_id], completed=step.iteration, info=info)
        elif isinstance(event, progress.PairEnded):
            self._pair_ended(event.outcome)

    def _pair_ended(self, outcome: Outcome) -> None:
        bar = self.running.pop(outcome.pair_id, None)
        if bar is not None:
            self.bars.remove_task(bar)
        self.bars.advance(self.pairs)
        where = f"row {outcome.row} {outcome.pair_id}"
        if outcome.status == Status.FAILED:  # with --verbose, the render task's log above held the traceback
            self._line(f"{where}: {outcome.reason}", logging.ERROR)
        elif not self.live and self.verbosity != "quiet":
            detail = f" in {outcome.wall_s:.1f} s" if outcome.status == Status.RENDERED else f": {outcome.reason}"
            self._line(f"{where}: {outcome.status}{detail}")


def step_text(step: StepInfo) -> str:
    """An iteration's multi-scale level and unweighted loss terms, in a few words."""
    return f"level {step.level} content {step.content:.3g} style {step.style:.3g} tv {step.tv:.3g}"


def print_summary(summary: RunSummary) -> None:
    """The summary as a table on stdout: one row per pair, paths never wrapped."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column, justify in (
        ("row", "right"),
        ("pair", "left"),
        ("status", "left"),
        ("time", "right"),
        ("reason", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in summary.pairs:
        time_s = f"{row.time_s:.1f} s" if row.time_s is not None else ""
        table.add_row(str(row.row), row.id, str(row.status), time_s, row.reason, style=None)
    wide = Console(width=10_000, color_system=None)  # as wide as the table needs
    with wide.capture() as captured:
        wide.print(table, highlight=False)
    lines = [
        *(line.rstrip() for line in captured.get().splitlines()),
        f"gallery: {summary.gallery.index or summary.gallery.error}",
        f"{summary.totals()}; outputs in {summary.out}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def render_with_progress(content: str, styles: list[str], settings: Settings) -> RenderResult:
    """``nst_core.render`` with a bar: iteration, loss terms, speed (``stylebatch render-one``)."""
    from nst_core import render

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bars:
        task = bars.add_task("rendering", total=settings.total_iterations, losses="", speed="")

        def on_step(step: StepInfo) -> None:
            losses = f"{step_text(step)} total {step.total:.4g}"
            speed = f"{step.iteration / step.elapsed_s:.1f} it/s"
            bars.update(task, completed=step.iteration, losses=losses, speed=speed)

        return render(content, styles, settings, on_step=on_step)
