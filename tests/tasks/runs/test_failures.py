"""failure_of: one line for people, the traceback kept, for every kind of error a pair can meet."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nst_core import OptimisationError, Settings, StorageError
from tasks.runs.failures import failure_of
from tests.conftest import REPO_ROOT, make_image


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
import sys
from pathlib import Path

from tasks.manifest.read import read_manifest
from tasks.runs.options import RunOptions
from tasks.runs.pairs import run_batch

folder = Path(sys.argv[1])
small, *large = read_manifest(str(folder / "m.csv"), {"weights": "random:0", "iterations": "1"}).pairs
options = RunOptions(out=str(folder / "out"))
run_batch([small], options, "cpu")  # torch and the network loaded before the limit
with open("/proc/self/statm") as f:
    data = int(f.read().split()[5]) * 4096
resource.setrlimit(resource.RLIMIT_DATA, (data + 256 * 2**20, resource.RLIM_INFINITY))  # 256 MiB more
for outcome in run_batch(large, options, "cpu"):
    print(outcome.pair_id, outcome.status, outcome.reason)
print(run_batch([small], RunOptions(out=options.out, force=True), "cpu")[0].status)
"""


def test_a_real_out_of_memory_fails_the_batchs_pairs_and_the_process_goes_on(tmp_path: Path) -> None:
    """A batch that needs more memory than the process may have: each of its pairs fails with the
    advice (batch size included); the next render works."""
    make_image(0, (48, 48)).save(tmp_path / "c.png")
    rows = ["small,c.png,c.png,32", "a,c.png,c.png,4096", "b,c.png,c.png,4096"]
    (tmp_path / "m.csv").write_text("id,content,style,image_size\n" + "\n".join(rows) + "\n")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OUT_OF_MEMORY), str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    advice = (
        "out of memory on the CPU at 4096 px in a batch of 2: use a smaller image_size, a smaller batch_size "
        "or tile_size 2048"
    )
    assert done.stdout.splitlines() == [f"a failed {advice}", f"b failed {advice}", "rendered"]
