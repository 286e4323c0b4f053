"""Shared fixtures: tiny images written under ``tmp_path``, and a guard that tests write nowhere else."""

from __future__ import annotations

import logging
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import s3fs
import torch
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.flows.helpers import Tiny
from tests.scale.scale_helpers import BIN, PrefectServer, Processes, base_env, free_port
from tests.support import Bucket, WebFolder, forget_s3_clients, serve_folder, wait_for

pytest_plugins = ["tests.tasks.gallery.small_root"]  # the gallery's output root, also for the gallery command's tests
REPO_ROOT = Path(__file__).resolve().parents[1]
IGNORED_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"}

# The tensors here are tiny, so threads buy nothing; and OpenMP threads spinning on a busy 2-core
# machine (another job, a CI neighbour) make each iteration ~20x slower. The engine is unchanged.
torch.set_num_threads(1)


def _repo_files() -> set[Path]:
    files: set[Path] = set()
    for folder, dirs, names in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
        files.update(Path(folder, name).relative_to(REPO_ROOT) for name in names)
    return files


@pytest.fixture(scope="session", autouse=True)
def no_stray_files() -> Iterator[None]:
    """Fail the session if any test wrote a file into the repository (write under ``tmp_path`` only)."""
    before = _repo_files()
    yield
    new = sorted(str(path) for path in _repo_files() - before)
    if new:
        raise AssertionError(f"tests left files in the repository: {', '.join(new)}")


def make_image(seed: int, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Image.Image:
    """A smooth colour gradient with some seeded noise, so styles and contents differ but resample alike."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([np.sin(2 * np.pi * (x / w + y / h) + p) for p in phase], axis=-1)
    pixels = 0.5 + 0.3 * base + 0.05 * rng.standard_normal((h, w, 3))
    image = Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8), "RGB")
    return image if mode == "RGB" else image.convert(mode)


@pytest.fixture
def pil_image() -> Callable[..., Image.Image]:
    """``pil_image(seed, size=(40, 32), mode="RGB")``: a tiny in-memory image."""
    return make_image


@pytest.fixture
def image_factory(tmp_path: Path) -> Callable[..., Path]:
    """``image_factory(name, seed=0, size=(40, 32), mode="RGB")`` writes a tiny image under ``tmp_path``."""

    def write(name: str, seed: int = 0, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Path:
        path = tmp_path / name
        make_image(seed, size, mode).save(path)
        return path

    return write


@pytest.fixture
def content_path(image_factory: Callable[..., Path]) -> Path:
    return image_factory("content.png", seed=1)


@pytest.fixture
def style_path(image_factory: Callable[..., Path]) -> Path:
    return image_factory("style.png", seed=2, size=(36, 36))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, over real HTTP on a free local port."""
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
    """An empty bucket; the AWS environment points at moto for this test only (monkeypatch restores it)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "foo")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "foo")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    forget_s3_clients()  # instances keep the endpoint they were made with
    fs = s3fs.S3FileSystem()
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    yield Bucket(fs, name)
    forget_s3_clients()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebFolder]:
    """``tmp_path/www`` served over HTTP on 127.0.0.1."""
    yield from serve_folder(tmp_path / "www")


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
    """A real ``prefect server start`` (SQLite under a temporary PREFECT_HOME, scheduler on, no UI), one per test
    process, shared by every test that talks to Prefect.

    In-process flows use it through ``temporary_settings`` (as ``prefect_test_harness`` does); subprocesses get its
    URL in their environment. Schedules need a real server's scheduler service.
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

        wait_for(up, timeout=180, every=0.25, what="prefect server /api/health")  # minutes on a loaded machine
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


@pytest.fixture(scope="session")
def prefect_api(prefect_server: PrefectServer) -> str:
    """The session's Prefect server's API URL (only tests that ask for it start the server)."""
    return prefect_server.url


@pytest.fixture
def tiny(tmp_path: Path, pil_image: Callable[..., Any]) -> Tiny:
    """Tiny images and manifests under ``tmp_path``."""
    return Tiny(tmp_path, pil_image)


@pytest.fixture
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Torch hub cache, and downloads that fail at once (a proxy on a closed port)."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return home
