"""failure_of: one line for people, the traceback kept, for every kind of error a pair can meet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from nst_core import OptimisationError, Settings, StorageError
from tasks.failures import failure_of
from tests.conftest import REPO_ROOT


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as the pipeline catches it."""
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (StorageError("output", "s3://b/p", "access denied", transient=False), "output s3://b/p: access denied"),
        (OptimisationError("the loss became nan at iteration 3"), "the loss became nan at iteration 3"),
        (TimeoutError("timed out after 60 s (--timeout)"), "timed out after 60 s (--timeout)"),
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "out of memory on cuda:0 at 2048 px: use a smaller image_size, precision bf16 or tile_size 1024",
        ),
        (MemoryError(), "out of memory on the CPU at 2048 px: use a smaller image_size or tile_size 1024"),
        (
            RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried"),
            "out of memory on the CPU at 2048 px: use a smaller image_size or tile_size 1024",
        ),
        (KeyError("surprise"), "KeyError: 'surprise'"),
        (RuntimeError("two\nlines"), "RuntimeError: two lines"),
    ],
    ids=["storage", "diverged", "timeout", "cuda-oom", "cpu-oom", "cpu-allocator-oom", "bug", "multiline"],
)
def test_reason(exc: BaseException, reason: str) -> None:
    failure = failure_of(raised(exc), Settings(image_size=2048), "cuda:0")
    assert failure.reason == reason
    assert "\n" not in failure.reason
    assert failure.traceback.startswith("Traceback (most recent call last)")


@pytest.mark.parametrize(
    ("settings", "batch_size", "reason"),
    [
        (
            Settings(image_size=4096, precision="bf16"),
            8,
            "out of memory on cuda:0 at 4096 px in a batch of 8: use a smaller image_size, a smaller batch_size "
            "or tile_size 2048",
        ),
        (
            Settings(image_size=4096, tile_size=1024),
            1,
            "out of memory on cuda:0 at 4096 px: use a smaller image_size, precision bf16 or a smaller tile_size",
        ),
        (
            Settings(image_size=256),
            1,
            "out of memory on cuda:0 at 256 px: use a smaller image_size, precision bf16 or tile_size 256",
        ),
    ],
    ids=["batch-bf16", "tiled", "small"],
)
def test_out_of_memory_names_only_what_would_help(settings: Settings, batch_size: int, reason: str) -> None:
    """bf16 only where the render is fp32, batch_size only in a batch, tiles whether or not in use."""
    failure = failure_of(raised(torch.OutOfMemoryError("CUDA out of memory")), settings, "cuda:0", batch_size)
    assert failure.reason == reason


OUT_OF_MEMORY = """
import resource
import numpy as np
from PIL import Image
from nst_core import Settings, render
from tasks.failures import failure_of

image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
small = Settings(image_size=32, iterations=1, weights="random:0", content_layers="relu2_1", style_layers="relu1_1")
render(image, [image], small)  # torch and the network loaded before the limit
with open("/proc/self/statm") as f:
    data = int(f.read().split()[5]) * 4096
resource.setrlimit(resource.RLIMIT_DATA, (data + 256 * 2**20, resource.RLIM_INFINITY))  # 256 MiB more
large = small.model_copy(update={"image_size": 4096})
try:
    render(image, [image], large)
except Exception as exc:
    print(failure_of(exc, large, "cpu").reason)
print("after:", render(image, [image], small).image.size)
"""


def test_a_real_out_of_memory_is_a_failure_the_process_survives() -> None:
    """A render that needs more memory than the process may have fails with the advice; the next one works."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OUT_OF_MEMORY)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "out of memory on the CPU at 4096 px: use a smaller image_size or tile_size 2048",
        "after: (32, 32)",
    ]
