"""Stopping a run early: the first Ctrl-C (or SIGTERM) asks every render to stop at its next iteration.

The flag is process-wide, as signals are. Renders and retry waits check it; the CLI sets it.
"""

from __future__ import annotations

import threading

__all__ = ["Stopped", "check", "request_stop", "reset", "sleep", "stop_requested"]

_STOP = threading.Event()


class Stopped(Exception):
    """The run was asked to stop; the pair was left untouched."""


def request_stop() -> None:
    _STOP.set()


def reset() -> None:
    """Forget a stop request (a new run in the same process)."""
    _STOP.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


def check() -> None:
    """Raise ``Stopped`` if a stop was asked for."""
    if _STOP.is_set():
        raise Stopped("stopped before it finished (Ctrl-C)")


def sleep(seconds: float) -> None:
    """Sleep, but wake and raise ``Stopped`` as soon as a stop is asked for."""
    if _STOP.wait(seconds):
        check()
