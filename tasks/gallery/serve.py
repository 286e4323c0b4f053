"""Serve an output root (a local folder or any fsspec store, e.g. S3) over HTTP on 127.0.0.1.

The whole root is served, not only ``gallery/``, so that the pages' relative links to the pairs'
results open. Files are read through fsspec; nothing outside the root is served, and folders are
not listed (``/`` leads to the gallery's index).
"""

from __future__ import annotations

import mimetypes
import posixpath
import shutil
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from nst_core.io_errors import storage_error
from tasks.runs.options import GALLERY_PORT
from tasks.storage.root import INDEX, OutputRoot

__all__ = ["gallery_server"]

_CHUNK = 1 << 20


def gallery_server(out: str, port: int = GALLERY_PORT) -> ThreadingHTTPServer:
    """A server of ``out`` bound to 127.0.0.1:``port`` (0: a free port); run it with ``serve_forever()``.

    Raises:
        OSError: the port cannot be bound (in use ...).
    """
    root = OutputRoot.open(out)
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_Handler, root.fs, root.path, out))
    server.daemon_threads = True  # a browser's open connections do not hold up Ctrl-C
    return server


class _Handler(BaseHTTPRequestHandler):
    server_version = "stylebatch"

    def __init__(self, fs: Any, root: str, out: str, *args: Any) -> None:
        self.fs, self.root, self.out = fs, root, out
        super().__init__(*args)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", f"/{INDEX}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parts = path.strip("/").split("/")
        if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
            self.send_error(HTTPStatus.FORBIDDEN, "path outside the output root")
            return
        if path.endswith("/"):
            parts.append("index.html")
        self._send_file(posixpath.join(self.root, *parts), body)

    def _send_file(self, path: str, body: bool) -> None:
        try:
            info = self.fs.info(path)
        except (FileNotFoundError, NotADirectoryError):
            info = {"type": "missing"}
        except Exception as exc:  # the store is unreachable, access is denied ...
            self.send_error(HTTPStatus.BAD_GATEWAY, explain=str(storage_error(exc, "output", self.out)))
            return
        if info["type"] != "file":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _content_type(path))
        self.send_header("Content-Length", str(info["size"]))
        self.send_header("Cache-Control", "no-cache")  # a rebuilt gallery shows at once
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            try:
                with self.fs.open(path, "rb") as file:
                    shutil.copyfileobj(file, self.wfile, _CHUNK)
            except (BrokenPipeError, ConnectionResetError):  # the browser went away
                pass
            except Exception as exc:  # too late for an error status: the client sees a short body
                self.log_error("%s", storage_error(exc, "output", path))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request would bury the startup line; errors are still logged


def _content_type(path: str) -> str:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
