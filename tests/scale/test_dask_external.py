"""``render_manifest`` on an existing Dask cluster: ``dask scheduler`` and ``dask worker`` subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from distributed import Client

from flows.executors import cluster_has_gpus
from flows.render_manifest import render_manifest
from tests.scale.scale_helpers import (
    BIN,
    TINY,
    PrefectServer,
    Processes,
    done_markers,
    free_port,
    overlaps,
    render_logs,
    worker_pids,
)
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("prefect_server")


@dataclass(frozen=True)
class DaskCluster:
    address: str
    gpu_workers: list[subprocess.Popen[bytes]]
    cpu_workers: list[subprocess.Popen[bytes]]
    processes: Processes


def start_cluster(
    processes: Processes, root: Path, env: dict[str, str], gpu_workers: int, cpu_workers: int
) -> DaskCluster:
    """A scheduler, then workers with one thread each (``--resources GPU=1`` on the GPU ones); waits for them all."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    root.mkdir(parents=True, exist_ok=True)
    processes.start(
        "scheduler",
        # Its HTTP server (metrics, health) listens even without a dashboard: on a free port, not on 8787,
        # where a dask-local cluster of another test process would find it taken.
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--dashboard-address", ":0"],
        env,
        root,
    )
    # --no-nanny: the worker is the process started here, so its pid is the one done.json names.
    worker = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
    worker += ["--local-directory", str(root / "dask-scratch")]
    gpus = [processes.start(f"gpu-worker{i}", [*worker, "--resources", "GPU=1"], env, root) for i in range(gpu_workers)]
    cpus = [processes.start(f"cpu-worker{i}", worker, env, root) for i in range(cpu_workers)]
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(gpu_workers + cpu_workers, timeout=90)
    except Exception as exc:
        raise AssertionError(f"the Dask cluster did not come up:\n{processes.outputs()}") from exc
    return DaskCluster(address, gpus, cpus, processes)


@pytest.fixture(scope="module")
def gpu_cluster(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """Two workers declaring one GPU each and one worker declaring none; PREFECT_API_URL in their environment."""
    root = tmp_path_factory.mktemp("gpu-cluster")
    processes = Processes(root / "logs")
    try:
        yield start_cluster(processes, root, prefect_server.env(root / "home"), gpu_workers=2, cpu_workers=1)
    finally:
        processes.stop()


def test_renders_only_on_gpu_workers_one_at_a_time(
    gpu_cluster: DaskCluster, manifest: Callable[..., Path], tmp_path: Path
) -> None:
    assert cluster_has_gpus(gpu_cluster.address)
    m, out = manifest(2, 2), tmp_path / "out"

    state = render_manifest(
        str(m), {**TINY, "iterations": 10}, out=str(out), executor=gpu_cluster.address, return_state=True
    )

    summary = state.result()
    assert (summary.rendered, summary.skipped, summary.failed) == (4, 0, 0), gpu_cluster.processes.outputs()
    markers = done_markers(out)
    assert len(markers) == 4
    gpu_pids = {p.pid for p in gpu_cluster.gpu_workers}
    assert worker_pids(markers) <= gpu_pids, "a render ran outside the GPU workers"
    assert not worker_pids(markers) & {p.pid for p in gpu_cluster.cpu_workers}
    assert os.getpid() not in worker_pids(markers)
    assert overlaps(markers) == []
    run_id = state.state_details.flow_run_id
    wait_for(
        lambda: len({log.task_run_id for log in render_logs(run_id)}) == 4,
        timeout=30,
        what="render task logs from the external Dask workers",
    )


def test_dask_scheme_is_the_same_scheduler(
    gpu_cluster: DaskCluster, manifest: Callable[..., Path], tmp_path: Path
) -> None:
    executor = gpu_cluster.address.replace("tcp://", "dask://")
    assert cluster_has_gpus(executor)
    m, out = manifest(1, 1, name="one.csv"), tmp_path / "out"

    summary = render_manifest(str(m), TINY, out=str(out), executor=executor)

    assert (summary.rendered, summary.failed) == (1, 0)
    assert worker_pids(done_markers(out)) <= {p.pid for p in gpu_cluster.gpu_workers}


def test_cpu_only_cluster_needs_no_gpu_resources(
    prefect_server: PrefectServer, processes: Processes, manifest: Callable[..., Path], tmp_path: Path
) -> None:
    cluster = start_cluster(processes, tmp_path / "cpu-cluster", prefect_server.env(tmp_path / "home"), 0, 1)
    assert not cluster_has_gpus(cluster.address)
    m, out = manifest(2, 1), tmp_path / "out"

    summary = render_manifest(str(m), TINY, out=str(out), executor=cluster.address)

    assert (summary.rendered, summary.skipped, summary.failed) == (2, 0, 0), processes.outputs()
    assert worker_pids(done_markers(out)) == {cluster.cpu_workers[0].pid}
