"""Fixtures of the flow tests: an HTTP server that fails for a moment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import QuietHandler, WebFolder, serve_folder


class _FlakyHandler(QuietHandler):
    """Answers the first ``fail_first`` requests for each path with 503, later ones normally; counts requests."""

    failures: dict[str, int]
    lock: threading.Lock
    fail_first = 2  # fsspec's HEAD, then its GET

    def _fail(self) -> bool:
        with self.lock:
            self.failures[self.path] = self.failures.get(self.path, 0) + 1
            fail = self.failures[self.path] <= self.fail_first
        if fail:
            self.send_error(503, "try again")
        return fail

    def do_GET(self) -> None:
        if not self._fail():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._fail():
            super().do_HEAD()


@pytest.fixture
def flaky_web(tmp_path: Path) -> Iterator[WebFolder]:
    """Like ``web``, but the first two requests for each file fail with 503 (a transient server error)."""
    handler = type("Flaky", (_FlakyHandler,), {"failures": {}, "lock": threading.Lock()})
    yield from serve_folder(tmp_path / "flaky-www", handler)


@pytest.fixture
def down_web(tmp_path: Path) -> Iterator[tuple[WebFolder, dict[str, int]]]:
    """A server that answers every request with 503 (down for good), and its count of requests per path."""
    counts: dict[str, int] = {}
    handler = type("Down", (_FlakyHandler,), {"failures": counts, "lock": threading.Lock(), "fail_first": 10**9})
    for folder in serve_folder(tmp_path / "down-www", handler):
        yield folder, counts
