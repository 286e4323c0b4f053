"""The fast path's switches: the prepared network, torch.compile and its fallback; on CUDA (marked gpu):
bf16 against fp32, compile, cuDNN autotuning, tiles' memory and a real out-of-memory failure."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import BatchJob, Settings, render, render_batch
from nst_core.backbones import load_backbone
from nst_core.fastpath import compiled
from nst_core.network import memory_format, prepare_network
from tasks.runs.failures import failure_of

CPU = torch.device("cpu")
LAYERS = ("relu1_1", "relu2_1")


def small_net():
    return load_backbone("vgg19", "random:0", "max", "cpu").cut(LAYERS)


def failing_backend(graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
    raise RuntimeError("no compiler here")


def test_compile_failure_falls_back_to_the_network_itself(caplog: pytest.LogCaptureFixture) -> None:
    net = small_net()
    with caplog.at_level(logging.WARNING, logger="nst_core.fastpath"):
        result = compiled(net, LAYERS, backend=failing_backend)
    assert result is net
    assert "torch.compile failed, running the network eagerly" in caplog.text
    assert "no compiler here" in caplog.text


def test_compiled_network_gives_the_same_features() -> None:
    """The ``eager`` backend runs dynamo's capture without a code generator: quick, and the same values."""
    net = small_net()
    fast = compiled(net, LAYERS, backend="eager")
    assert fast is not net
    assert fast.body is net.body  # attributes pass through to the network
    image = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, expected = fast(image, list(LAYERS)), net(image, list(LAYERS))
    for name in LAYERS:
        torch.testing.assert_close(got[name], expected[name])


def test_prepared_network_is_made_once_per_network_settings() -> None:
    s = Settings(weights="random:0", content_layers="relu2_1", style_layers="relu1_1|relu2_1")
    first = prepare_network(s, CPU, "fp32")
    assert prepare_network(s.model_copy(update={"seed": 3, "image_size": 64}), CPU, "fp32") is first
    other = prepare_network(s.model_copy(update={"content_layers": ["relu3_1"]}), CPU, "fp32")
    assert other is not first
    assert list(first.body._modules)[-1] == "relu2_1"
    assert list(other.body._modules)[-1] == "relu3_1"
    # channels_last applies on CUDA only
    assert memory_format(s.model_copy(update={"channels_last": True}), CPU) == torch.contiguous_format


# --- CUDA ---------------------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cuda_settings(**values: Any) -> Settings:
    return Settings.from_values({"weights": "random:0", "device": "cuda", "iterations": 30, "image_size": 128} | values)


def noise(seed: int, width: int, height: int) -> Image.Image:
    """Without tests/conftest.py's helpers, so that bench/gpu_check.sh can run this file where the suite's
    fixtures cannot import (no moto, s3fs or Prefect)."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def images() -> tuple[Image.Image, Image.Image]:
    return noise(1, 160, 128), noise(2, 128, 128)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_bf16_final_losses_within_two_percent_of_fp32(optimizer: str) -> None:
    """bf16 autocast for the network, Grams and losses in fp32: the same final total within 2 % after 200
    iterations (each term within 5 %: the two may trade a little), no NaN."""
    content, style = images()
    finals = {}
    for precision in ("fp32", "bf16"):
        s = cuda_settings(optimizer=optimizer, precision=precision, channels_last=precision == "bf16", iterations=200)
        result = render(content, [style], s)
        assert result.precision == precision
        assert all(np.isfinite([step.total for step in result.losses]))
        finals[precision] = result.losses[-1]
    for term, tolerance in (("total", 0.02), ("content", 0.05), ("style", 0.05)):
        fp32, bf16 = getattr(finals["fp32"], term), getattr(finals["bf16"], term)
        assert abs(bf16 - fp32) <= tolerance * abs(fp32), (term, fp32, bf16)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("size", [1024, 2048])
def test_bf16_stays_finite_at_large_sizes(size: int) -> None:
    content, style = images()
    result = render(content, [style], cuda_settings(precision="bf16", image_size=size, iterations=5))
    assert all(np.isfinite([step.total for step in result.losses]))


@pytest.mark.gpu
@needs_cuda
def test_compile_and_cudnn_benchmark_on_cuda() -> None:
    """torch.compile really compiles on CUDA (no fallback) and gives the eager render's losses."""
    content, style = images()
    s = cuda_settings(optimizer="adam", iterations=10, cudnn_benchmark=True)
    eager = render(content, [style], s)
    assert torch.backends.cudnn.benchmark
    fast_settings = s.model_copy(update={"compile": True})
    net = prepare_network(fast_settings, torch.device("cuda"), "fp32")
    assert type(net).__name__ == "OptimizedModule"  # compiled, not fallen back to the network itself
    fast = render(content, [style], fast_settings)
    np.testing.assert_allclose([x.total for x in fast.losses], [x.total for x in eager.losses], rtol=1e-3)


@pytest.mark.gpu
@needs_cuda
def test_tiles_lower_peak_memory_and_keep_the_losses() -> None:
    content, style = images()
    s = cuda_settings(optimizer="adam", iterations=3, image_size=1024)
    peaks, finals = {}, {}
    for tile_size in (0, 256):
        torch.cuda.reset_peak_memory_stats()
        result = render(content, [style], s.model_copy(update={"tile_size": tile_size}))
        peaks[tile_size], finals[tile_size] = torch.cuda.max_memory_allocated(), result.losses[-1].total
    assert peaks[256] < 0.6 * peaks[0]
    assert finals[256] == pytest.approx(finals[0], rel=1e-3)


@pytest.mark.gpu
@needs_cuda
def test_cuda_out_of_memory_fails_the_batch_not_the_process() -> None:
    content, style = images()
    large = cuda_settings(image_size=2048, iterations=2)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(0.002)  # a few hundred MiB
    try:
        results = render_batch([BatchJob(content, [style], large)] * 2)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert all(isinstance(r, torch.OutOfMemoryError) for r in results)
    reason = failure_of(results[0], large, "cuda:0", batch_size=2).reason
    assert reason.startswith("out of memory on cuda:0 at 2048 px in a batch of 2: use a smaller image_size")
    assert render(content, [style], cuda_settings(iterations=2)).image.size == (128, 102)


@pytest.mark.gpu
@needs_cuda
def test_adam_waits_for_the_device_once_per_ten_iterations() -> None:
    """CUDA's sync debug mode flags every host sync: 20 more Adam iterations add only their 2 loss-chunk reads."""
    content, style = images()

    def syncs(iterations: int) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                render(content, [style], cuda_settings(optimizer="adam", iterations=iterations))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    render(content, [style], cuda_settings(optimizer="adam", iterations=2))  # warm-up
    assert syncs(40) - syncs(20) <= 2
