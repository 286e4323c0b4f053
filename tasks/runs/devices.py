"""GPU placement for renders in one process: one render at a time per GPU, each on its own GPU.

GPUs are counted through NVML, which never initialises CUDA in the calling process.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue
from collections.abc import Iterator

__all__ = ["device_slot", "gpu_count", "render_slots"]


@functools.cache
def gpu_count() -> int:
    """NVIDIA GPUs this process may use (0 without a driver).

    NVML sees every GPU of the machine, so ``CUDA_VISIBLE_DEVICES`` (set per worker by dask-cuda)
    is applied on top, as CUDA would: up to its first invalid entry.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # no library, no driver, no device: NVMLError has many subclasses
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return count
    entries = list(itertools.takewhile(lambda d: d.strip() and not d.strip().startswith("-"), visible.split(",")))
    return min(count, len(entries))


def render_slots() -> int:
    """How many renders may run at once here: one per GPU, or one on the CPU."""
    return max(1, gpu_count())


@functools.cache
def _free_gpus() -> queue.SimpleQueue[int]:
    free: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(gpu_count()):
        free.put(index)
    return free


@contextlib.contextmanager
def device_slot() -> Iterator[str | None]:
    """Hold a GPU (``"cuda:N"``) for the block; ``None`` (the settings decide) when there is none."""
    if gpu_count() == 0:
        yield None
        return
    index = _free_gpus().get()  # blocks while every GPU is busy
    try:
        yield f"cuda:{index}"
    finally:
        _free_gpus().put(index)
