"""A run's progress as records on the ``stylebatch.progress`` logger, for a display to follow.

Nothing listens by default (the records are DEBUG, dropped unformatted); ``stylebatch run`` attaches a
handler that draws the progress bars. Each record's ``event`` attribute is one of the events below.
Records reach handlers in this process only: renders on Dask workers report only their end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nst_core import StepInfo
    from tasks.runs.records import Outcome

__all__ = ["PairEnded", "PairStarted", "PairStep", "RunPlanned", "emit", "logger"]

logger = logging.getLogger("stylebatch.progress")


@dataclass(frozen=True)
class RunPlanned:
    to_render: int  # pairs handed to render tasks
    labels: dict[str, str]  # pair id -> its label (``Pair.label``), for every pair of the manifest
    bad_rows: dict[int, str]  # manifest line -> its problems
    ui_url: str | None  # the run in the Prefect UI


@dataclass(frozen=True)
class PairStarted:
    pair_id: str
    label: str
    row: int
    iterations: int


@dataclass(frozen=True)
class PairStep:
    pair_id: str
    step: StepInfo


@dataclass(frozen=True)
class PairEnded:
    outcome: Outcome


def emit(event: RunPlanned | PairStarted | PairStep | PairEnded) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", event, extra={"event": event})
