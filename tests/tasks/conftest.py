"""Fixtures for the pipeline tasks: a real S3 endpoint (moto's server, over HTTP) and a local web server."""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import s3fs
from moto.server import ThreadedMotoServer


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the moto server; app code reaches it with plain ``s3://`` URIs."""

    fs: s3fs.S3FileSystem
    name: str

    @property
    def uri(self) -> str:
        return f"s3://{self.name}"

    def put(self, key: str, data: bytes) -> str:
        self.fs.pipe_file(f"{self.name}/{key}", data)
        return f"{self.uri}/{key}"

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.name}/{key}")

    def keys(self, prefix: str = "") -> set[str]:
        """Every key under ``prefix``, relative to it (listings are read fresh, not from s3fs's cache)."""
        self.fs.invalidate_cache()
        root = f"{self.name}/{prefix}".rstrip("/") + "/"
        return {path.removeprefix(root) for path in self.fs.find(root)}


@dataclass(frozen=True)
class WebFolder:
    """A folder served at ``url`` (http; fsspec reads https:// URIs through the same filesystem)."""

    root: Path
    url: str


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request otherwise
        pass


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, on a free local port."""
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
    """An empty bucket; the AWS environment points at moto for this test only."""
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


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebFolder]:
    """``tmp_path/www`` served over HTTP on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield WebFolder(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    thread.join()
