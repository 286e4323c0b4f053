"""Serving an output root's gallery over HTTP (tasks.gallery.serve, ``stylebatch gallery --serve``)."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

import fsspec
import pytest
from click.testing import CliRunner

from flows.cli import main
from tasks.gallery.build import build_gallery
from tasks.gallery.serve import gallery_server
from tests.conftest import make_image
from tests.support import wait_for
from tests.tasks.gallery.helpers import FakePair, _Links, png_bytes

if TYPE_CHECKING:
    from tests.support import Bucket
    from tests.tasks.gallery.small_root import SmallRoot

STYLEBATCH = str(Path(sys.executable).parent / "stylebatch")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


@contextlib.contextmanager
def serving(out: str) -> Iterator[str]:
    """``out`` served from a thread on a free port; yields the base URL."""
    server = gallery_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def request(base: str, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request with ``path`` sent exactly as given (``..`` and all): status, headers, body."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def links(html: bytes) -> list[str]:
    parser = _Links()
    parser.feed(html.decode())
    return [value for _, _, value in parser.links]


def crawl(base: str) -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body) of the index and everything it and the pages it links to link to."""
    fetched: dict[str, tuple[str, bytes]] = {}
    todo, depth = ["/gallery/index.html"], 0
    while todo and depth < 3:
        found = []
        for path in todo:
            if path in fetched:
                continue
            status, headers, body = request(base, "GET", path)
            assert status == 200, path
            fetched[path] = (headers["Content-Type"], body)
            if path.endswith(".html"):
                found += [unquote(urlsplit(urljoin(path, link)).path) for link in links(body)]
        todo, depth = found, depth + 1
    return fetched


def assert_serves_the_root(out: str, base: str, rendered: list[str]) -> None:
    """Every page and image reachable from the index answers with the file's bytes and its content type."""
    fs, root = fsspec.url_to_fs(out)
    fetched = crawl(base)
    for path, (kind, body) in fetched.items():
        assert kind == TYPES[Path(path).suffix], path
        assert body == fs.cat_file(root.rstrip("/") + path), path
    assert {f"/{pair_id}/result.png" for pair_id in rendered} <= set(fetched)  # the detail pages' links open
    assert any(path.startswith("/gallery/thumbs/") for path in fetched)


def test_a_local_root_is_served(small_root: SmallRoot) -> None:
    out = str(small_root.out)
    build_gallery(out)
    with serving(out) as base:
        assert_serves_the_root(out, base, [pair.pair_id for pair in small_root.rendered])
        with urllib.request.urlopen(f"{base}/") as response:  # the root leads to the gallery
            assert response.url == f"{base}/gallery/index.html"
            assert b"<html" in response.read()


def test_head_answers_without_a_body(small_root: SmallRoot) -> None:
    out = str(small_root.out)
    with serving(out) as base:
        status, headers, body = request(base, "HEAD", f"/{small_root.pairs[0].pair_id}/result.png")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert (
        int(headers["Content-Length"]) == (small_root.out / small_root.pairs[0].pair_id / "result.png").stat().st_size
    )
    assert body == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_missing_files_and_folders_are_not_found(small_root: SmallRoot, method: str) -> None:
    with serving(str(small_root.out)) as base:
        for path in ["/nope.png", f"/{small_root.pairs[0].pair_id}", f"/{small_root.pairs[0].pair_id}/"]:
            assert request(base, method, path)[0] == 404, path


def test_paths_outside_the_root_are_refused(small_root: SmallRoot) -> None:
    (small_root.out.parent / "secret.txt").write_text("secret")
    paths = ["/../secret.txt", "/gallery/../../secret.txt", "/%2e%2e/secret.txt", "/gallery/..%2F..%2Fsecret.txt"]
    with serving(str(small_root.out)) as base:
        for path in paths:
            status, _, body = request(base, "GET", path)
            assert status == 403, path
            assert b"secret" not in body.replace(b"secret.txt", b"")


def test_an_s3_root_is_served(s3: Bucket, tmp_path: Path) -> None:
    for seed, name in enumerate(["c.png", "s.png"], start=1):
        make_image(seed).save(tmp_path / name)
    out = f"{s3.uri}/renders"
    fake = FakePair("c__s", str(tmp_path / "c.png"), (str(tmp_path / "s.png"),))
    fake.write(out, png_bytes(make_image(7, (32, 26))))
    build_gallery(out)
    with serving(out) as base:
        assert_serves_the_root(out, base, ["c__s"])
        assert request(base, "GET", "/c__s/nope.png")[0] == 404
        assert request(base, "GET", "/../renders/c__s/result.png")[0] == 403


def test_the_cli_builds_then_serves_until_ctrl_c(small_root: SmallRoot, tmp_path: Path) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [STYLEBATCH, "gallery", str(small_root.out), "--serve", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        lines = wait_for(lambda: stdout.read_text().splitlines()[1:], timeout=120, what="the URL line")
        assert stdout.read_text().splitlines()[0] == str(small_root.gallery / "index.html")
        url = lines[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/gallery/index.html")
        with urllib.request.urlopen(url) as response:
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        result = small_root.out / small_root.pairs[0].pair_id / "result.png"
        with urllib.request.urlopen(urljoin(url, f"../{result.parent.name}/result.png")) as response:
            assert response.read() == result.read_bytes()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped" in stderr.read_text()


def test_the_cli_names_a_port_in_use(small_root: SmallRoot) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["gallery", str(small_root.out), "--serve", "--port", str(port)])
    assert result.exit_code == 2
    assert f"error: cannot serve on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "--port 0 picks a free port" in result.stderr
