"""Retrying transient storage errors (connections, timeouts, throttling) with backoff, within a time budget.

Permanent errors (not found, no access, a read-only or full disk, a host name that does not resolve)
fail at once. The wait between tries grows from 1 s to 15 s, with jitter, never past the budget, and
stops early on Ctrl-C; every retry prints a line, so a long outage never looks like a hang.

This is the pipeline's only retry layer: importing this module makes s3fs and botocore try each request
once, with short connection and read timeouts, and HTTP inputs time out likewise (unless fsspec's own
configuration says otherwise). Left to themselves, s3fs's 5 tries of botocore's 5 made one of our tries
last 54 s against an endpoint that drops connections, and the budget overran by as much.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from nst_core import StorageError
from tasks.runs import stopping

__all__ = ["MAX_WAIT_S", "retry_transient"]

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_WAIT_S = 15  # with a try's own time (at most CONNECT_S + READ_S), a line at least every 30 s
CONNECT_S, READ_S = 5, 10  # one try against an endpoint that does not answer
ONE_TRY_S3 = {"retries": {"total_max_attempts": 1}, "connect_timeout": CONNECT_S, "read_timeout": READ_S}


async def _http_client(**options: Any) -> Any:
    """fsspec's HTTP client (an aiohttp session), with timeouts for one try (aiohttp's own: 5 minutes)."""
    import aiohttp

    options.setdefault("timeout", aiohttp.ClientTimeout(sock_connect=CONNECT_S, sock_read=READ_S))
    return aiohttp.ClientSession(**options)


def _only_our_retries() -> None:
    """Stores' clients try once; what fsspec's own configuration sets wins. Nothing is imported here (s3fs
    and aiohttp take a second): ``s3://`` is registered by the name of its class."""
    fsspec.register_implementation("s3", "tasks.storage.one_try_s3.S3FileSystem", clobber=True)
    fsspec.config.conf.setdefault("s3", {}).setdefault("config_kwargs", ONE_TRY_S3)
    for protocol in ("http", "https"):
        fsspec.config.conf.setdefault(protocol, {}).setdefault("get_client", _http_client)


_only_our_retries()


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


def retry_transient(op: Callable[[], T], retry_for_s: float, logger: logging.Logger | Any = log) -> T:
    """``op()``, tried again while it raises a transient ``StorageError``, for up to ``retry_for_s`` seconds
    in all: waits end at the budget, so only the last try's own time (a few seconds at most) can pass it.

    Raises:
        StorageError: a permanent one at once; a transient one once the budget is spent, saying how long
            it was tried.
        Stopped: a stop was asked for while waiting.
    """
    start = time.monotonic()
    backoff = wait_exponential_jitter(initial=1, max=MAX_WAIT_S)

    def wait(state: RetryCallState) -> float:
        return max(0.0, min(backoff(state), start + retry_for_s - time.monotonic()))

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0
        logger.warning(
            "%s; trying again in %.0f s (%.0f s of %.0f s)", exc, pause, time.monotonic() - start, retry_for_s
        )

    retrying = Retrying(
        retry=retry_if_exception(_transient),
        stop=stop_after_delay(retry_for_s),
        wait=wait,
        sleep=stopping.sleep,
        before_sleep=warn,
        reraise=True,
    )
    try:
        return retrying(op)
    except StorageError as exc:
        tries = retrying.statistics.get("attempt_number", 1)
        if not exc.transient or tries < 2:
            raise
        cause = f"{exc.cause} (gave up after {tries} tries in {time.monotonic() - start:.0f} s)"
        raise StorageError(exc.what, exc.uri, cause, transient=True) from exc
