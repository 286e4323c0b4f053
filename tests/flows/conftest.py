"""Fixtures of the flow tests: one Prefect test server per session, tiny manifests, S3 (moto) and HTTP servers."""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import s3fs
from moto.server import ThreadedMotoServer

from tests.flows.helpers import Bucket, Tiny


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


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server over real HTTP on a free local port."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # moto logs every request through werkzeug
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    werkzeug.setLevel(level)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """A fresh bucket; the AWS environment points at moto for this test only (restored after)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "foo")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "foo")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # instances keep the endpoint they were made with
    fs = s3fs.S3FileSystem()
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    yield Bucket(fs, name)
    s3fs.S3FileSystem.clear_instance_cache()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request otherwise
        pass


class _FlakyHandler(_QuietHandler):
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


def _serve(root: Path, handler: type[SimpleHTTPRequestHandler]) -> Iterator[tuple[Path, str]]:
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``(folder, url)``: ``tmp_path/www`` served over HTTP on 127.0.0.1."""
    yield from _serve(tmp_path / "www", _QuietHandler)


@pytest.fixture
def flaky_web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Like ``web_root``, but the first two requests for each file fail with 503 (a transient server error)."""
    handler = type("Flaky", (_FlakyHandler,), {"failures": {}, "lock": threading.Lock()})
    yield from _serve(tmp_path / "flaky-www", handler)
