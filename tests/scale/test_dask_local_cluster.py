"""``render_manifest`` on local Dask clusters: one started here (with a declared GPU resource) and dask-local."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

import flows.render_manifest
from flows.executors import cluster_has_gpus
from flows.render_manifest import render_manifest
from tasks.runs.devices import gpu_count
from tests.scale.scale_helpers import TINY, done_markers, overlaps, render_logs, worker_pids
from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("prefect_server")
timing = logging.getLogger("tests.scale.timing")  # shown with --log-cli-level=INFO


@pytest.fixture
def worker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What Dask's worker processes (spawned from this one) inherit: a temporary PREFECT_HOME, one torch thread.

    PREFECT_API_URL is deliberately not in the environment: prefect-dask sends the flow's settings along with each
    task, so the workers' logs reach the test's server anyway (checked below).
    """
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "dask-worker-home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield


@pytest.mark.usefixtures("worker_env")
def test_gpu_resource_gives_each_worker_one_render_at_a_time(
    manifest: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m, out = manifest(2, 2), tmp_path / "out"
    settings = {**TINY, "iterations": 20}  # ~1 s a render: long enough for two at once to overlap visibly
    start = time.monotonic()
    # Two threads per worker: only the GPU resource annotation can keep two renders off the same worker.
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            resources={"GPU": 1},
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        timing.info("LocalCluster(n_workers=2) started in %.1f s", time.monotonic() - start)
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        assert cluster_has_gpus(cluster.scheduler_address)

        start = time.monotonic()
        state = render_manifest(str(m), settings, out=str(out), executor=cluster.scheduler_address, return_state=True)
        timing.info("flow on the LocalCluster (workers importing torch first): %.1f s", time.monotonic() - start)

        summary = state.result()
        assert (summary.rendered, summary.skipped, summary.failed) == (4, 0, 0)
        markers = done_markers(out)
        assert len(markers) == 4
        assert worker_pids(markers) == pids  # both worker processes rendered, the test process none
        assert os.getpid() not in pids
        assert overlaps(markers) == [], "two renders ran at once on one worker"
        timing.info("renders on Dask: %s s", ", ".join(f"{m.wall_s:.2f}" for m in markers))

        # The loss terms each render task logs reach the API from the worker processes.
        run_id = state.state_details.flow_run_id
        logs = wait_for(
            lambda: (logs := render_logs(run_id)) and len({log.task_run_id for log in logs}) == 4 and logs,
            timeout=30,
            what="render task logs from the Dask workers",
        )
        assert all("style" in log.message and "total" in log.message for log in logs)

        # Control: without the annotation the same cluster runs two renders at once on a worker (two threads each),
        # so the overlap check above would have seen it.
        with monkeypatch.context() as patch:
            patch.setattr(flows.render_manifest, "dask_gpu_annotation", contextlib.nullcontext)
            unpinned = tmp_path / "unpinned"
            render_manifest(str(m), settings, out=str(unpinned), executor=cluster.scheduler_address)
        assert overlaps(done_markers(unpinned)), "without the GPU annotation, renders should have shared a worker"


@pytest.mark.usefixtures("worker_env")
@pytest.mark.skipif(gpu_count() > 0, reason="dask-local starts a LocalCUDACluster on a GPU machine")
def test_dask_local_falls_back_to_a_local_cluster_without_gpus(manifest: Callable[..., Path], tmp_path: Path) -> None:
    assert gpu_count() == 0
    assert not cluster_has_gpus("dask-local")
    m, out = manifest(2, 1), tmp_path / "out"

    summary = render_manifest(str(m), TINY, out=str(out), executor="dask-local")

    assert (summary.rendered, summary.skipped, summary.failed) == (2, 0, 0)
    markers = done_markers(out)
    assert {Path(row.output).parent.name for row in summary.pairs} == {m.pair_id for m in markers}
    assert os.getpid() not in worker_pids(markers)  # rendered in the cluster's worker process
    assert len(worker_pids(markers)) == 1  # the fallback cluster has one worker
