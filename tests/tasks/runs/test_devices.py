"""GPU placement: one slot on a machine without GPUs; one slot per GPU otherwise."""

from __future__ import annotations

import pytest
import torch

from tasks.runs.devices import device_slot, gpu_count, render_slots


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPUs")
def test_no_gpu_means_one_cpu_slot() -> None:
    assert gpu_count() == 0
    assert render_slots() == 1
    with device_slot() as outer, device_slot() as inner:  # never blocks: there is nothing to wait for
        assert outer is None
        assert inner is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_slot_per_gpu() -> None:
    count = torch.cuda.device_count()
    assert gpu_count() == count
    assert render_slots() == count
    with device_slot() as first:
        assert first in {f"cuda:{i}" for i in range(count)}
        if count > 1:
            with device_slot() as second:
                assert second not in (None, first)
    with device_slot() as again:  # released slots come back
        assert again is not None
