"""Signals and threads of ``stylebatch run``: the run works in a thread, so that the main thread handles
Ctrl-C and SIGTERM (Prefect then installs no handler of its own).

The first SIGINT or SIGTERM asks the run to stop (``tasks.runs.stopping``): running renders stop at their
next iteration (after SIGTERM, a preemption notice, each saves its checkpoint first) and the summary is
printed. One that comes ``SAME_STOP_S`` or more later quits at once, after releasing the run's leases and
stopping its temporary server. Sooner, it is the same stop delivered
twice: ``uv run`` forwards a signal that its process group got already (a script's ``kill -INT -- -PGID``,
a supervisor's SIGTERM to the group).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from flows.console import say
from tasks.runs import stopping

__all__ = ["SAME_STOP_S", "in_thread", "stop_requests"]

T = TypeVar("T")
SAME_STOP_S = 2.0  # a second SIGINT or SIGTERM sooner than this after the first is the same stop


@contextlib.contextmanager
def stop_requests() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module docstring says, for the block."""
    first: list[float] = []

    def handle(signum: int, frame: object) -> None:
        if not first:
            first.append(time.monotonic())
            preempt = signum == signal.SIGTERM
            stopping.request_stop(preempt)
            saved = "preempted (SIGTERM): running renders save a checkpoint and"
            what = saved if preempt else "stopping: running renders"
            say(
                f"{what} stop at their next iteration "
                f"(Ctrl-C again, {SAME_STOP_S:g} s or more from now, to quit at once)"
            )
        elif time.monotonic() - first[0] >= SAME_STOP_S:
            _quit_now()

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _quit_now() -> None:
    """Release this run's leases, stop its server, exit 130."""
    from flows.temporary_server import kill_all
    from tasks.storage.leases import release_all

    release_all(timeout_s=5)
    kill_all()
    os._exit(130)


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread, so that this (main) thread keeps handling signals."""
    result: list[T] = []
    error: list[BaseException] = []
    context = contextvars.copy_context()  # Prefect's settings and tags live in context variables

    def target() -> None:
        try:
            result.append(context.run(work))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="stylebatch run")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if error:
        raise error[0]
    return result[0]
