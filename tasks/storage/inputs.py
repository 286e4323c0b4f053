"""Input images fetched once per run per distinct URI: a run-local cache of bytes and of failures.

Forty photos in twelve styles read each photo once, not twelve times; six pairs sharing an
unreachable URL fail after one fetch (with its retries), not six. Concurrent renders asking for the
same URI wait for the one fetch in progress. The cache belongs to one run (a key the flow passes on):
a new run starts empty. Successful reads are kept up to ``MAX_BYTES`` (least recently used first out);
failures always are. Under Dask each worker process keeps its own cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

from nst_core import StorageError

__all__ = ["MAX_BYTES", "fetch", "forget_run"]

MAX_BYTES = 1 << 30
_lock = threading.Lock()
_run: str | None = None
_entries: OrderedDict[str, Future[bytes]] = OrderedDict()


def fetch(uri: str, role: str, run: str, read: Callable[[], bytes]) -> bytes:
    """The bytes at ``uri`` (a ``role`` such as "content image"), ``read()`` at most once in run ``run``.

    Raises:
        StorageError: as ``read`` raised it (once for every caller); reported for ``role``.
    """
    future, owner = _claim(uri, run)
    if owner:
        try:
            future.set_result(read())
        except StorageError as exc:
            future.set_exception(exc)
        except BaseException as exc:  # stopped, or a bug: not a fact about the URI, so not kept
            _drop(uri, future)
            future.set_exception(exc)
            raise
        _evict()
    try:
        return future.result()
    except StorageError as exc:
        raise exc.as_(role) from None


def forget_run(run: str) -> None:
    """Free run ``run``'s entries (the flow calls it when the run ends)."""
    global _run
    with _lock:
        if _run == run:
            _entries.clear()
            _run = None


def _claim(uri: str, run: str) -> tuple[Future[bytes], bool]:
    """The future holding ``uri``'s bytes, and whether the caller must fill it."""
    global _run
    with _lock:
        if _run != run:
            _entries.clear()
            _run = run
        if uri in _entries:
            _entries.move_to_end(uri)
            return _entries[uri], False
        _entries[uri] = Future()
        return _entries[uri], True


def _drop(uri: str, future: Future[bytes]) -> None:
    with _lock:
        if _entries.get(uri) is future:
            del _entries[uri]


def _evict() -> None:
    with _lock:
        done = [(uri, f) for uri, f in _entries.items() if f.done() and f.exception() is None]
        total = sum(len(f.result()) for _, f in done)
        for uri, future in done:  # oldest first
            if total <= MAX_BYTES:
                break
            total -= len(future.result())
            del _entries[uri]
