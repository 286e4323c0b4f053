"""Retrying transient storage errors (connections, timeouts, throttling) with backoff, within a time budget.

Permanent errors (not found, no access, a read-only or full disk, a host name that does not resolve)
fail at once. The wait between tries grows from 1 s to 30 s, with jitter, and stops early on Ctrl-C.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from nst_core import StorageError
from tasks import stopping
from tasks.options import RETRY_FOR_S

__all__ = ["retry_transient"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


def retry_transient(op: Callable[[], T], retry_for_s: float = RETRY_FOR_S, logger: logging.Logger | Any = log) -> T:
    """``op()``, tried again while it raises a transient ``StorageError``, for up to ``retry_for_s`` seconds.

    Raises:
        StorageError: a permanent one at once; a transient one once the budget is spent, saying how long
            it was tried.
        Stopped: a stop was asked for while waiting.
    """

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        logger.warning("%s; trying again in %.0f s", exc, wait)

    retrying = Retrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_delay(retry_for_s),
        wait=wait_exponential_jitter(initial=1, max=30),
        sleep=stopping.sleep,
        before_sleep=warn,
        reraise=True,
    )
    start = time.monotonic()
    try:
        return retrying(op)
    except StorageError as exc:
        tries = retrying.statistics.get("attempt_number", 1)
        if not exc.transient or tries < 2:
            raise
        cause = f"{exc.cause} (gave up after {tries} tries in {time.monotonic() - start:.0f} s)"
        raise StorageError(exc.what, exc.uri, cause, transient=True) from exc
