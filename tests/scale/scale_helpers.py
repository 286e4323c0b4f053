"""Helpers of the scale-out tests: subprocesses in process groups, free ports, tiny manifests, done markers."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import psutil

from tasks.storage.records import DONE, Completion, read_completion
from tests.support import run_family

timing = logging.getLogger("tests.scale.timing")  # shown with --log-cli-level=INFO
REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's console scripts: dask, prefect
# A random tiny VGG at 32 px: ~0.4 s to build, then ~40 ms per iteration on one CPU thread.
TINY = {"weights": "random:0", "image_size": 32, "iterations": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment: no inherited Prefect or AWS settings, its own PREFECT_HOME, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "OMP_NUM_THREADS": "1",  # tiny tensors: threads buy nothing on a 2-core machine
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


@dataclass(frozen=True)
class PrefectServer:
    url: str  # the API URL, .../api
    home: Path
    start_s: float
    processes: Processes

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """Environment of a subprocess that talks to this server (with its own PREFECT_HOME)."""
        return base_env(home, PREFECT_API_URL=self.url, **extra)


class Processes:
    """Subprocesses, each in its own session (process group), output in ``<logs>/<name>.log``.

    ``stop()`` kills every group and every descendant (Prefect starts flow-run processes in new sessions).
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self._procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append((name, proc, log))
        return proc

    def output(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def outputs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.output(name)[-3000:]}" for name, _, _ in self._procs)

    def check_alive(self) -> None:
        for name, proc, _ in self._procs:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.output(name)[-3000:]}")

    def stop(self) -> None:
        """Newest first (Dask workers before their scheduler): SIGTERM to group and descendants, SIGKILL after 10 s."""
        start = time.monotonic()
        for name, proc, log in reversed(self._procs):
            descendants = _descendants(proc)
            _signal_tree(proc, descendants, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            psutil.wait_procs(descendants, timeout=2)
            _signal_tree(proc, descendants, signal.SIGKILL)
            proc.wait(timeout=10)
            log.close()
            timing.info("%s (pid %d) exited with %s", name, proc.pid, proc.returncode)
        timing.info("stopped %d processes in %.1f s", len(self._procs), time.monotonic() - start)
        self._procs.clear()


_GONE = (ProcessLookupError, PermissionError, psutil.NoSuchProcess)


def _descendants(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal_tree(proc: subprocess.Popen[bytes], descendants: list[psutil.Process], sig: signal.Signals) -> None:
    """``sig`` to the process group (leader gone or not) and to descendants that left it (new sessions)."""
    with contextlib.suppress(*_GONE):
        os.killpg(proc.pid, sig)
    for child in descendants:
        with contextlib.suppress(*_GONE):
            if child.is_running():
                child.send_signal(sig)


def write_manifest(root: Path, make_image: Callable[..., Any], contents: int, styles: int, name: str) -> Path:
    """Tiny images in ``root`` and a manifest of every content x every style (paths relative to it)."""
    root.mkdir(parents=True, exist_ok=True)
    content_names = [f"content{i}.png" for i in range(1, contents + 1)]
    style_names = [f"style{i}.png" for i in range(1, styles + 1)]
    for seed, image in enumerate([*content_names, *style_names], start=1):
        if not (root / image).exists():
            make_image(seed, (40, 32) if image.startswith("content") else (36, 36)).save(root / image)
    rows = [f"{c},{s}" for c in content_names for s in style_names]
    path = root / name
    path.write_text("\n".join(["content,style", *rows]) + "\n")
    return path


def done_markers(out: Path) -> list[Completion]:
    """The completion record of every finished pair under ``out``."""
    return [read_completion(p.read_bytes()) for p in sorted(out.glob(f"*/{DONE}"))]


def worker_pids(markers: Iterable[Completion]) -> set[int]:
    return {int(m.worker.rpartition(":")[2]) for m in markers}


def overlaps(markers: Iterable[Completion]) -> list[tuple[str, str, str]]:
    """(worker, pair, pair) for every two renders that ran at the same time in the same process."""
    by_worker: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for m in markers:
        by_worker.setdefault(m.worker, []).append((m.started_at, m.finished_at, m.pair_id))
    found = []
    for worker, spans in by_worker.items():
        spans.sort()
        found += [(worker, a[2], b[2]) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    return found


def render_logs(run_id: UUID) -> list[Any]:
    """The loss-term logs of the render tasks of a flow run and its subflow runs, as the API has them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        runs = run_family(client, run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)), limit=200)
    return [log for log in logs if log.task_run_id and "iteration" in log.message and "content" in log.message]
