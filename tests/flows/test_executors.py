"""Executor choice (``flows.executors``), the GPU count behind it, and ``stylebatch serve``: no cluster started."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import dask
import distributed
import pytest
import torch
from click.testing import CliRunner
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows import executors
from flows.cli import main
from flows.executors import _address, cluster_has_gpus, dask_gpu_annotation, task_runner
from tasks.runs import devices
from tasks.runs.devices import gpu_count, render_slots
from tasks.runs.options import RunOptions

CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPUs")


@pytest.mark.parametrize(
    ("executor", "address"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("dask://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("dask://dask-scheduler:8786", "tcp://dask-scheduler:8786"),
        ("tcp://127.0.0.1:45123", "tcp://127.0.0.1:45123"),
    ],
)
def test_scheduler_addresses_connect_to_an_existing_cluster(executor: str, address: str) -> None:
    assert _address(executor) == address
    runner = task_runner(executor)
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address == address
    assert runner.cluster_class is None  # connects, starts nothing


def test_local_is_a_thread_pool_with_one_slot_per_gpu() -> None:
    runner = task_runner("local")
    assert isinstance(runner, ThreadPoolTaskRunner)
    assert runner._max_workers == render_slots()
    assert not cluster_has_gpus("local")


@CPU_ONLY
def test_dask_local_without_gpus_is_a_plain_local_cluster() -> None:
    assert gpu_count() == 0
    runner = task_runner("dask-local")
    assert isinstance(runner, DaskTaskRunner)
    assert runner.address is None
    assert runner.cluster_class == "distributed.LocalCluster"
    assert runner.resolved_cluster_class is distributed.LocalCluster
    assert runner.cluster_kwargs == {"n_workers": 1, "threads_per_worker": 1}
    assert not cluster_has_gpus("dask-local")


@pytest.mark.parametrize("executor", ["bogus", "", "LOCAL", "http://scheduler:8786", "dask-cuda"])
def test_unknown_executor_names_the_choices(executor: str) -> None:
    with pytest.raises(ValueError, match=r"local, dask-local or tcp://host:port") as error:
        task_runner(executor)
    assert repr(executor) in str(error.value)


def test_gpu_annotation_asks_for_one_gpu_per_submission() -> None:
    assert "resources" not in dask.get_annotations()
    with dask_gpu_annotation():
        assert dask.get_annotations()["resources"] == {"GPU": 1}
    assert "resources" not in dask.get_annotations()


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flows.executors`` sees two GPUs (only its own reference to ``gpu_count`` is replaced)."""
    monkeypatch.setattr(executors, "gpu_count", lambda: 2)


@pytest.mark.usefixtures("two_gpus")
def test_dask_local_on_gpus_is_one_cuda_worker_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = type("LocalCUDACluster", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)

    runner = task_runner("dask-local")

    assert runner.cluster_class == "dask_cuda.LocalCUDACluster"
    assert runner.cluster_kwargs == {"resources": {"GPU": 1}}
    assert cluster_has_gpus("dask-local")  # so renders ask for the resource the workers declare


@pytest.mark.usefixtures("two_gpus")
def test_dask_local_falls_back_when_dask_cuda_is_unusable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import fails, as without its cu12/cu13 extra

    with caplog.at_level("WARNING", logger="flows.executors"):
        runner = task_runner("dask-local")

    assert runner.cluster_class == "distributed.LocalCluster"
    assert not cluster_has_gpus("dask-local")
    assert any("dask-cuda is not usable" in r.message and "gpu-cluster" in r.message for r in caplog.records)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """NVML reporting four GPUs; ``gpu_count``'s cache is cleared before and after."""
    nvml = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None  # type: ignore[attr-defined]
    nvml.nvmlDeviceGetCount = lambda: 4  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    devices.gpu_count.cache_clear()
    yield
    devices.gpu_count.cache_clear()


@pytest.mark.usefixtures("fake_nvml")
@pytest.mark.parametrize(
    ("visible", "count"),
    [(None, 4), ("0", 1), ("2,3", 2), ("0,1,2,3,4,5", 4), ("", 0), ("1,-1,2", 1), ("-1", 0), ("GPU-uuid-a,1", 2)],
)
def test_gpu_count_applies_cuda_visible_devices_on_top_of_nvml(
    visible: str | None, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu_count() == count


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_count_matches_cuda_in_a_fresh_process() -> None:
    code = "from tasks.runs.devices import gpu_count; import torch; print(gpu_count(), torch.cuda.device_count())"
    for visible in (None, "0"):
        env = None if visible is None else {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": visible}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        ours, cuda = map(int, out.split())
        assert ours == cuda


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dask_local_on_a_gpu_machine_uses_dask_cuda_when_it_imports() -> None:
    try:
        import dask_cuda  # noqa: F401
    except Exception:
        expected = "distributed.LocalCluster"
    else:
        expected = "dask_cuda.LocalCUDACluster"
    assert task_runner("dask-local").cluster_class == expected
    assert cluster_has_gpus("dask-local") == (expected == "dask_cuda.LocalCUDACluster")


# --- stylebatch serve ----------------------------------------------------------------------------------------------


@pytest.fixture
def no_prefect_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PREFECT_API_URL: neither in the environment nor in Prefect's settings (the scale tests' server sets it)."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``render_manifest.serve`` replaced by a recorder (it would block, serving, until killed)."""
    from flows.render_manifest import render_manifest

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(type(render_manifest), "serve", lambda self, **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.usefixtures("no_prefect_server")
def test_serve_without_a_prefect_server_exits_2(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(main, ["serve", "nightly.csv", "--cron", "0 2 * * *"])
    assert result.exit_code == 2, result.output
    assert "PREFECT_API_URL" in result.stderr
    assert "Traceback" not in result.output
    assert served == []


@pytest.mark.usefixtures("no_prefect_server")
def test_serve_registers_the_schedule(served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    args = ["serve", "s3://studio/nightly.csv", "--cron", "0 2 * * *", "--out", "s3://studio/renders"]
    result = CliRunner().invoke(main, [*args, "--executor", "dask-local", "--iterations", "30", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert served == [
        {
            "name": "serve-nightly",
            "cron": "0 2 * * *",
            "parameters": {
                "manifest": "s3://studio/nightly.csv",
                "defaults": {"iterations": 30},
                **RunOptions(out="s3://studio/renders", executor="dask-local", batch_size=4).model_dump(),
            },
            "tags": ["stylebatch", "serve"],
        }
    ]


def test_serve_accepts_a_server_configured_in_prefect_settings(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server set with ``prefect config set PREFECT_API_URL=...`` (a profile), not an environment variable."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        result = CliRunner().invoke(main, ["serve", "nightly.csv", "--cron", "0 2 * * *"])
    assert result.exit_code == 0, result.output
    assert len(served) == 1
