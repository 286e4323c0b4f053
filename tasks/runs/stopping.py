"""Stopping a run early: the first Ctrl-C asks every render to stop at its next iteration; SIGTERM (a preemption
notice) asks the same, after each render has saved its checkpoint (``tasks.runs.resume``).

The flags are process-wide, as signals are. Renders and retry waits check them; the CLI sets them.
"""

from __future__ import annotations

import threading

__all__ = [
    "PREEMPTED_EXIT",
    "STOPPED_EXIT",
    "Preempted",
    "Stopped",
    "check",
    "exit_code",
    "preempted",
    "request_stop",
    "reset",
    "sleep",
    "stop_requested",
]

STOPPED_EXIT = 130  # the shell's code for a process ended by Ctrl-C
PREEMPTED_EXIT = 75  # sysexits.h's EX_TEMPFAIL: a temporary failure, to be tried again

_STOP = threading.Event()
_PREEMPTED = threading.Event()


class Stopped(Exception):
    """The run was asked to stop; the pair was left untouched (but for its snapshots and checkpoints)."""


class Preempted(Stopped):
    """The machine is being taken away (SIGTERM); a rerun resumes the pair from its checkpoint."""


def request_stop(preempt: bool = False) -> None:
    """Ask the run to stop (``preempt``: because of a preemption notice)."""
    if preempt:
        _PREEMPTED.set()
    _STOP.set()


def reset() -> None:
    """Forget a stop request (a new run in the same process)."""
    _STOP.clear()
    _PREEMPTED.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


def preempted() -> bool:
    """True once a preemption notice came."""
    return _PREEMPTED.is_set()


def exit_code() -> int | None:
    """The exit code of a run that was asked to stop, else None."""
    return PREEMPTED_EXIT if _PREEMPTED.is_set() else STOPPED_EXIT if _STOP.is_set() else None


def check() -> None:
    """Raise ``Preempted`` or ``Stopped`` if a stop was asked for."""
    if _PREEMPTED.is_set():
        raise Preempted("preempted before it finished (SIGTERM)")
    if _STOP.is_set():
        raise Stopped("stopped before it finished (Ctrl-C)")


def sleep(seconds: float) -> None:
    """Sleep, but wake and raise ``Stopped`` as soon as a stop is asked for."""
    if _STOP.wait(seconds):
        check()
