"""Schedules end to end against a real ``prefect server start``: an interval deployment run by a process worker, and
``prefect deploy --all`` of ``deploy/prefect.yaml``."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType

from flows.render_manifest import render_manifest
from tasks.runs.options import RunOptions
from tests.scale.scale_helpers import (
    BIN,
    REPO_ROOT,
    TINY,
    PrefectServer,
    Processes,
    done_markers,
    worker_pids,
)
from tests.support import wait_for

POOL = "scale-process-pool"
timing = logging.getLogger("tests.scale.timing")  # shown with --log-cli-level=INFO


def prefect(server: PrefectServer, home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the ``prefect`` CLI against the server from the repository root; return its output (fail on non-zero)."""
    result = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        env=server.env(home, **(env or {})),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def finished_run(deployment_id: Any, processes: Processes) -> Any:
    """The first Completed flow run of the deployment, or None; fail at once if one failed or crashed."""
    processes.check_alive()
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    bad = [r for r in runs if r.state_type in (StateType.FAILED, StateType.CRASHED)]
    assert not bad, f"{bad[0].state}\n{processes.outputs()}"
    done = [r for r in runs if r.state_type == StateType.COMPLETED]
    return done[0] if done else None


def test_interval_schedule_runs_on_a_process_worker(
    prefect_server: PrefectServer,
    processes: Processes,
    manifest: Callable[..., Path],
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    prefect(prefect_server, home, "work-pool", "create", POOL, "--type", "process")
    # One run at a time (a new one is due every 10 s); poll every 2 s instead of 10 to keep the test short.
    processes.start(
        "worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "1"],
        prefect_server.env(home, PREFECT_WORKER_QUERY_SECONDS="2"),
        cwd=REPO_ROOT,
    )
    m, out = manifest(2, 1), tmp_path / "out"
    parameters = {"manifest": str(m), "out": str(out), "defaults": TINY}

    start = time.monotonic()
    deployment_id = render_manifest.from_source(
        source=str(REPO_ROOT), entrypoint="flows/render_manifest.py:render_manifest"
    ).deploy(
        name="test-interval",
        work_pool_name=POOL,
        interval=timedelta(seconds=10),
        parameters=parameters,
        print_next_steps=False,
        ignore_warnings=True,
    )
    try:
        run = wait_for(
            lambda: finished_run(deployment_id, processes), timeout=150, every=1, what="a scheduled run to complete"
        )
        waited_s = time.monotonic() - start
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(deployment_id)
            states = client.read_flow_run_states(run.id)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)  # no more scheduled runs

    # Made by the server's scheduler from the deployment's schedule, run by the worker of the pool.
    assert run.auto_scheduled
    assert run.created_by is not None and run.created_by.type == "SCHEDULE"
    assert run.created_by.id == deployment.schedules[0].id
    assert deployment.schedules[0].schedule.interval == timedelta(seconds=10)
    assert min(states, key=lambda s: s.timestamp).type == StateType.SCHEDULED
    assert run.work_pool_name == POOL
    assert run.parameters == parameters
    markers = done_markers(out)
    assert len(markers) == 2
    assert os.getpid() not in worker_pids(markers)  # rendered in the worker's flow-run process
    assert all((out / marker.pair_id / "result.png").is_file() for marker in markers)
    assert (out / "gallery" / "index.html").is_file()
    timing.info("prefect server start: %.1f s", prefect_server.start_s)
    timing.info(
        "deployment created -> first scheduled run Completed: %.1f s (the run itself %.1f s)",
        waited_s,
        run.total_run_time.total_seconds(),
    )


def test_prefect_deploy_all_from_the_deploy_kit(prefect_server: PrefectServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "STYLEBATCH_HOME": str(REPO_ROOT),
        "STYLEBATCH_NIGHTLY_MANIFEST": "s3://studio/manifests/nightly.csv",
        "STYLEBATCH_OUT": "s3://studio/renders",
        "STYLEBATCH_EXECUTOR": "tcp://dask-scheduler:8786",
    }
    prefect(prefect_server, home, "work-pool", "create", "stylebatch-gpu", "--type", "process")

    prefect(prefect_server, home, "deploy", "--all", "--prefect-file", "deploy/prefect.yaml", env=env)

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("render-manifest/nightly")
        rerun = client.read_deployment_by_name("render-manifest/rerun")
        try:
            knobs = RunOptions(out=env["STYLEBATCH_OUT"], executor=env["STYLEBATCH_EXECUTOR"]).model_dump()
            assert nightly.parameters == {"manifest": env["STYLEBATCH_NIGHTLY_MANIFEST"], **knobs}
            assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [
                ("0 2 * * *", "UTC", True)
            ]
            assert rerun.parameters == knobs
            assert rerun.schedules == []
            for deployment in (nightly, rerun):
                assert deployment.entrypoint == "flows/render_manifest.py:render_manifest"
                assert deployment.work_pool_name == "stylebatch-gpu"
                assert "stylebatch" in deployment.tags
                assert deployment.pull_steps == [
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
                ]
        finally:
            for deployment in (nightly, rerun):
                client.delete_deployment(deployment.id)
