"""Test helpers shared by the test folders: an S3 bucket handle and a local HTTP server."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import s3fs


@dataclass(frozen=True)
class Bucket:
    """A bucket on the moto server; app code reaches it with plain ``s3://`` URIs."""

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
        root = f"{self.name}/{prefix.strip('/')}".rstrip("/") + "/"
        return {path.removeprefix(root) for path in self.fs.find(root)}


@dataclass(frozen=True)
class WebFolder:
    """A folder served at ``url`` (http; fsspec reads https:// URIs through the same filesystem)."""

    root: Path
    url: str


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request otherwise
        pass


def serve_folder(root: Path, handler: type[SimpleHTTPRequestHandler] = QuietHandler) -> Iterator[WebFolder]:
    """Serve ``root`` (created) on 127.0.0.1 from a thread until the generator is closed."""
    root.mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield WebFolder(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    thread.join()
