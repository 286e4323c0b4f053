"""Where render tasks run: Prefect's thread pool, a local Dask cluster, or an existing Dask cluster.

``local``: threads in this process, one render at a time per GPU (or one on the CPU).
``dask-local``: a Dask cluster on this machine: dask-cuda's ``LocalCUDACluster`` (one worker process
per GPU, each with its own ``CUDA_VISIBLE_DEVICES``) when there are GPUs and dask-cuda works,
else a plain ``LocalCluster``. ``tcp://host:port`` (or ``dask://host:port``): an existing scheduler.
Workers that declare a ``GPU`` resource get one render at a time each; no render lands elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks.runs.devices import gpu_count, render_slots

__all__ = ["cluster_has_gpus", "dask_gpu_annotation", "task_runner"]

log = logging.getLogger(__name__)
GPU = {"GPU": 1}


def task_runner(executor: str) -> TaskRunner:
    """The Prefect task runner for an ``executor`` choice (see the module docstring)."""
    if executor == "local":
        return ThreadPoolTaskRunner(max_workers=render_slots())
    dask_task_runner = _dask_task_runner_class()
    if executor == "dask-local":
        return dask_task_runner(**_local_cluster())
    if executor.startswith(("tcp://", "dask://")):
        return dask_task_runner(address=_address(executor))
    raise ValueError(f"executor must be local, dask-local or tcp://host:port, got {executor!r}")


def cluster_has_gpus(executor: str) -> bool:
    """Whether render submissions must ask Dask for one ``GPU`` resource each."""
    if executor == "local":
        return False
    if executor == "dask-local":
        return _local_cluster()["cluster_class"].endswith("LocalCUDACluster")
    from distributed import Client

    with Client(_address(executor), timeout="30s") as client:
        return any("GPU" in w.get("resources", {}) for w in client.scheduler_info()["workers"].values())


def dask_gpu_annotation() -> contextlib.AbstractContextManager[None]:
    """Submissions made inside ask Dask for one GPU each (so no two share one, none runs without)."""
    import dask

    return dask.annotate(resources=GPU)


def _local_cluster() -> dict[str, Any]:
    """dask-cuda's LocalCUDACluster on a GPU machine, with a clear fallback to LocalCluster."""
    if gpu_count() > 0:
        try:
            import dask_cuda  # noqa: F401  (fails without its cu12/cu13 extra)

            return {"cluster_class": "dask_cuda.LocalCUDACluster", "cluster_kwargs": {"resources": GPU}}
        except Exception as exc:
            log.warning(
                "dask-cuda is not usable (%s): using a plain LocalCluster; install stylebatch[gpu-cluster]", exc
            )
    # Renders use every core through torch's own threads: one worker with one thread.
    return {"cluster_class": "distributed.LocalCluster", "cluster_kwargs": {"n_workers": 1, "threads_per_worker": 1}}


def _address(executor: str) -> str:
    return "tcp://" + executor.removeprefix("dask://").removeprefix("tcp://")


def _dask_task_runner_class() -> type[TaskRunner]:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ImportError("Dask executors need the dask extra: pip install 'stylebatch[dask]'") from exc
    return DaskTaskRunner
