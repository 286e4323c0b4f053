"""Fixtures of the flow tests: one Prefect test server per session, tiny manifests, S3 (moto) and HTTP servers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows.helpers import Tiny
from tests.support import QuietHandler, WebFolder, serve_folder


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect server (SQLite) for the whole session; yields its API URL.

    Only tests that ask for it (the flow tests, through ``pytestmark``) start it: it takes ~10-15 s.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline hosts log telemetry failures otherwise
        with prefect_test_harness(server_startup_timeout=60):
            yield str(PREFECT_API_URL.value())


@pytest.fixture
def tiny(tmp_path: Path, pil_image: Callable[..., Any]) -> Tiny:
    """Tiny images and manifests under ``tmp_path``."""
    return Tiny(tmp_path, pil_image)


class _FlakyHandler(QuietHandler):
    """Answers the first two requests for each path (fsspec's HEAD, then its GET) with 503, later ones normally."""

    failures: dict[str, int]
    lock: threading.Lock

    def _fail(self) -> bool:
        with self.lock:
            self.failures[self.path] = self.failures.get(self.path, 0) + 1
            fail = self.failures[self.path] <= 2
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
