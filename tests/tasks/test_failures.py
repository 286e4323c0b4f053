"""failure_of: one line for people, the traceback kept, for every kind of error a pair can meet."""

from __future__ import annotations

import pytest
import torch

from nst_core import OptimisationError, Settings, StorageError
from tasks.failures import failure_of


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
            "out of memory on cuda:0 at 2048 px: use a smaller image_size, precision bf16, or fewer renders per GPU",
        ),
        (MemoryError(), "out of memory on the CPU: use a smaller image_size"),
        (KeyError("surprise"), "KeyError: 'surprise'"),
        (RuntimeError("two\nlines"), "RuntimeError: two lines"),
    ],
    ids=["storage", "diverged", "timeout", "cuda-oom", "cpu-oom", "bug", "multiline"],
)
def test_reason(exc: BaseException, reason: str) -> None:
    failure = failure_of(raised(exc), Settings(image_size=2048), "cuda:0")
    assert failure.reason == reason
    assert "\n" not in failure.reason
    assert failure.traceback.startswith("Traceback (most recent call last)")
