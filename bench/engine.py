"""Engine speed: ms per iteration and peak memory of ``nst_core.render`` beside its floor.

The floor is one forward and backward pass of the same cut network alone, on the same image, in
the same process: what any implementation of the method must pay. The engine's figure is its time
per forward and backward pass (evaluation); overhead = engine / floor - 1 (losses, Gram matrices,
optimiser, bookkeeping). L-BFGS's line search sometimes spends more than one evaluation on an
iteration: that ratio is its own column.

    uv run python bench/engine.py                 # CPU: 128, 256, 512 px
    uv run python bench/engine.py --sizes 256     # one size
On CUDA it adds 1024 px and a bf16 row per case. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time

import torch
from PIL import Image

from nst_core import Settings, render
from nst_core.backbones import load_backbone
from nst_core.device import autocast, pick_device


class PeakMemory:
    """Peak memory while the block runs: the CUDA allocator's peak, or sampled RSS growth on CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mib = device, 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base, self._stop = _rss(), threading.Event()
            self._peak = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (self._peak - self._base) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def floor_ms(settings: Settings, image: torch.Tensor, iterations: int) -> float:
    """Mean ms of forward + backward through the cut network alone (what render() uses)."""
    device = image.device
    layers = list(dict.fromkeys(settings.content_layers + settings.style_layers))
    net = load_backbone(settings.backbone, settings.weights, settings.pooling, str(device))
    net = net.cut(layers, settings.normalization)
    deepest = list(net.body._modules)[-1]
    x = image.clone().requires_grad_(True)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        with autocast(device, settings.precision):
            out = net(x, [deepest])[deepest]
        out.float().sum().backward()
        x.grad = None
    _sync(device)
    return 1000 * (time.perf_counter() - start) / iterations


def engine_ms(settings: Settings, content: Image.Image, style: Image.Image) -> tuple[float, float]:
    """ms per forward and backward pass (evaluation) of the whole engine, and evaluations per iteration."""
    timings = render(content, [style], settings).timings
    return timings.ms_per_evaluation, timings.evaluations / settings.iterations


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_case(size: int, optimizer: str, precision: str, iterations: int, repeats: int) -> dict[str, object]:
    generator = torch.Generator().manual_seed(size)
    content, style = (
        Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8).numpy())
        for _ in range(2)
    )
    settings = Settings(
        image_size=size,
        iterations=iterations,
        start_size=0,  # single scale: every iteration at the floor's size
        optimizer=optimizer,
        precision=precision,
        weights="random:0",
        channels_last=precision == "bf16",
    )
    device = pick_device(settings.device)
    image = torch.rand(1, 3, size, size, generator=generator).to(device)
    render(content, [style], settings.model_copy(update={"iterations": 2}))  # warm-up: load, cache, autotune
    # Floor and engine alternate, so that a machine whose speed drifts affects both alike.
    with PeakMemory(device) as floor_mem:
        floors = [floor_ms(settings, image, iterations)]
    with PeakMemory(device) as engine_mem:
        engines = [engine_ms(settings, content, style)]
    for _ in range(repeats - 1):
        floors.append(floor_ms(settings, image, iterations))
        engines.append(engine_ms(settings, content, style))
    floor, (engine, evals_per_it) = min(floors), min(engines)
    return {
        "size": size,
        "optimizer": optimizer,
        "precision": precision,
        "floor_ms": floor,
        "engine_ms": engine,
        "overhead": engine / floor - 1,
        "evals_per_it": evals_per_it,
        "floor_mib": floor_mem.peak_mib,
        "engine_mib": engine_mem.peak_mib,
    }


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # A fixed mmap threshold stops glibc from keeping freed tensors resident, so that RSS
        # growth measures live CPU memory. Restart once with it set.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    sizes = args.sizes or ([128, 256, 512, 1024] if cuda else [128, 256, 512])
    precisions = ["fp32", "bf16"] if cuda else ["fp32"]
    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {device}; torch {torch.__version__}; threads {torch.get_num_threads()}; VGG19, default layers")
    print(f"{args.iterations} iterations, best of {args.repeats}\n")
    print(
        "| size | optimizer | precision | floor ms | engine ms | overhead | evaluations/iteration "
        "| floor peak MiB | engine peak MiB |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for optimizer in ("lbfgs", "adam"):
            for precision in precisions:
                r = run_case(size, optimizer, precision, args.iterations, args.repeats)
                print(
                    f"| {r['size']} | {r['optimizer']} | {r['precision']} | {r['floor_ms']:.1f} | "
                    f"{r['engine_ms']:.1f} | {r['overhead']:+.1%} | {r['evals_per_it']:.2f} | "
                    f"{r['floor_mib']:.0f} | {r['engine_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
