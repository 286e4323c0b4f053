"""Test helpers shared by the test folders: an S3 bucket handle, a local HTTP server, polling, Prefect run trees."""

from __future__ import annotations

import functools
import struct
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
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


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: a decompression bomb's header."""
    return _png(width, height, 8, 2, b"")  # 8-bit RGB


def png_file(pixels: np.ndarray) -> bytes:
    """A PNG of uint8 or uint16 ``pixels``, (H, W) grey or (H, W, 2|3|4) grey+alpha, RGB, RGBA; written
    here because Pillow writes no 16-bit colour PNG."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    samples = pixels.astype(f">u{pixels.dtype.itemsize}").reshape(height, -1)
    rows = b"".join(b"\0" + row.tobytes() for row in samples)  # filter type 0 on every row
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    return _png(width, height, 8 * pixels.dtype.itemsize, colour_type, rows)


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def forget_s3_clients() -> None:
    """Drop every cached S3 filesystem (they keep the endpoint they were made with): s3fs's own and the
    pipeline's (``tasks.storage.one_try_s3``), as a new process would start."""
    from tasks.storage.one_try_s3 import S3FileSystem

    s3fs.S3FileSystem.clear_instance_cache()
    S3FileSystem.clear_instance_cache()


def http_get(url: str) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of a GET, as a browser following a link gets them."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.2, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def run_family(client: Any, run_id: UUID) -> list[UUID]:
    """A flow run's id and those of its subflow runs, at any depth."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    runs, todo = [run_id], [run_id]
    while todo:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=todo))
        )
        todo = [child.id for child in children if child.id not in runs]
        runs += todo
    return runs
