"""Fixtures of the scale-out tests: one real ``prefect server start`` per session, subprocess groups, tiny manifests."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scale.scale_helpers import BIN, PrefectServer, Processes, base_env, free_port, write_manifest
from tests.support import wait_for


def _healthy(url: str) -> bool:
    try:
        # A fresh opener without proxies: urlopen's global one keeps the proxy settings of its first use
        # (the offline-weights test downloads through a dead proxy).
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real ``prefect server start`` (SQLite under a temporary PREFECT_HOME, scheduler on, no UI).

    In-process flows use it through ``temporary_settings`` (as ``prefect_test_harness`` does); subprocesses get its
    URL in their environment. Started once per session (~9 s): schedules need a real server's scheduler service.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = tmp_path_factory.mktemp("prefect-server")
    processes = Processes(root / "logs")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    start = time.monotonic()
    processes.start(
        "server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        base_env(root / "home"),
    )
    try:

        def up() -> bool:
            processes.check_alive()
            return _healthy(url)

        wait_for(up, timeout=90, every=0.25, what="prefect server /api/health")
        server = PrefectServer(url, root / "home", time.monotonic() - start, processes)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield server
            _drain_prefect_workers()
    finally:
        processes.stop()


def _drain_prefect_workers() -> None:
    """Send this process's queued logs and events before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start subprocesses in their own process groups; all of them are killed after the test."""
    procs = Processes(tmp_path / "logs")
    yield procs
    procs.stop()


@pytest.fixture
def manifest(tmp_path: Path, pil_image: Callable[..., Any]) -> Callable[..., Path]:
    """``manifest(contents, styles, name="m.csv")``: tiny images under ``tmp_path/inputs`` and a manifest over them."""

    def make(contents: int, styles: int, name: str = "m.csv") -> Path:
        return write_manifest(tmp_path / "inputs", pil_image, contents, styles, name)

    return make
