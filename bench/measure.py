"""What the engine benchmarks share: the floor (the bare network's forward and backward), peak memory,
GPU utilisation, noise images and the machine's description."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from nst_core import BatchJob, RenderResult, Settings, render_batch
from nst_core.device import autocast, pick_device, pick_precision
from nst_core.network import memory_format, prepare_network

__all__ = [
    "CLOCK",
    "EngineRun",
    "GpuUtilisation",
    "PeakMemory",
    "SteadyState",
    "describe",
    "engine_run",
    "floor_ms",
    "noise_image",
    "noise_jobs",
    "overhead",
    "restart_with_fixed_mmap_threshold",
    "sync",
]


class Clock:
    """The wall clock, or this process's CPU time: on a shared CPU machine with one thread, time
    other processes take is then left out of floor and engine alike."""

    now: Callable[[], float] = staticmethod(time.perf_counter)

    def use_cpu_time(self) -> None:
        torch.set_num_threads(1)
        self.now = time.process_time


CLOCK = Clock()


def restart_with_fixed_mmap_threshold() -> None:
    """Restart this script once with glibc's mmap threshold fixed, so that freed tensors leave the
    resident set and RSS growth measures live CPU memory."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})


def describe(device: torch.device) -> str:
    """One line: the device, torch, threads."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})"
    return f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; {os.cpu_count()} cores"


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    """Uniform noise: speed does not depend on the picture."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def noise_jobs(settings: Settings, batch: int) -> list[BatchJob]:
    """``batch`` pairs of noise images of one shape (4:3, as photos), each pair its own."""
    size = settings.image_size
    return [
        BatchJob(noise_image(size, size * 3 // 4, 2 * i), [noise_image(size, size, 2 * i + 1)], settings)
        for i in range(batch)
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
            self._base = self._peak = _rss()
            self._sampler = _Sampler(lambda: setattr(self, "_peak", max(self._peak, _rss())), 0.002)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._sampler.stop()
            self.peak_mib = (self._peak - self._base) / 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class GpuUtilisation:
    """Mean GPU utilisation (%) while the block runs, sampled through NVML (or ``nvidia-smi``);
    ``None`` where neither can read it."""

    def __init__(self, device: torch.device):
        self.read = _utilisation_reader(device) if device.type == "cuda" else None
        self.mean: float | None = None

    def __enter__(self) -> GpuUtilisation:
        self._samples: list[float] = []
        if self.read is not None:
            self._sampler = _Sampler(lambda: self._samples.append(self.read()), 0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.read is not None:
            self._sampler.stop()
            self.mean = sum(self._samples) / len(self._samples) if self._samples else None


def _utilisation_reader(device: torch.device) -> Callable[[], float] | None:
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)  # NVML counts every GPU; CUDA_VISIBLE_DEVICES unset here
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # no library or no driver: try the command line
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return None
        query = [smi, f"--id={index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        return lambda: float(subprocess.run(query, capture_output=True, text=True, check=True).stdout)


class _Sampler:
    """Calls ``sample`` every ``period`` seconds in a thread until ``stop``."""

    def __init__(self, sample: Callable[[], None], period: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sample, period), daemon=True)
        self._thread.start()

    def _run(self, sample: Callable[[], None], period: float) -> None:
        while not self._stop.wait(period):
            sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def floor_ms(settings: Settings, batch: int, height: int, width: int, iterations: int) -> float:
    """Mean ms of one forward and backward pass of a batch of ``batch`` (3, height, width) images
    through the network that ``render`` uses (cut, memory format, compiled as the settings say), alone."""
    device = pick_device(settings.device)
    precision = pick_precision(settings.precision, device)
    net = prepare_network(settings, device, precision)
    deepest = list(net.body._modules)[-1]
    x = torch.rand(batch, 3, height, width, device=device).contiguous(memory_format=memory_format(settings, device))
    x.requires_grad_(True)
    sync(device)
    start = CLOCK.now()
    for _ in range(iterations):
        with autocast(device, precision):
            out = net(x, [deepest])[deepest]
        out.float().sum().backward()
        x.grad = None
    sync(device)
    return 1000 * (CLOCK.now() - start) / iterations


@dataclass(frozen=True)
class EngineRun:
    """One ``render_batch`` of a batch: its wall time, iterations and evaluations per image."""

    seconds: float
    iterations: int
    evaluations: float  # forward and backward passes per image (L-BFGS's line search may add some)


def engine_run(jobs: Sequence[BatchJob], iterations: int) -> EngineRun:
    """Render ``jobs`` as one batch with ``iterations`` iterations each; time it, results included."""
    jobs = [BatchJob(j.content, j.styles, j.settings.model_copy(update={"iterations": iterations})) for j in jobs]
    device = pick_device(jobs[0].settings.device)
    sync(device)
    start = CLOCK.now()
    results = render_batch(jobs)
    sync(device)
    seconds = CLOCK.now() - start
    failed = [r for r in results if not isinstance(r, RenderResult)]
    if failed:
        raise failed[0]
    evaluations = sum(r.timings.evaluations for r in results) / len(results)
    return EngineRun(seconds, iterations, evaluations)


@dataclass(frozen=True)
class SteadyState:
    """A batch's cost per iteration once set up, and what it pays once (opening the images, loading
    the network, the targets): from two runs that differ only in their number of iterations."""

    ms_per_iteration: float  # of the whole batch
    evaluations_per_iteration: float
    fixed_s: float

    @classmethod
    def of(cls, short: EngineRun, long: EngineRun) -> SteadyState:
        iterations = long.iterations - short.iterations
        ms = 1000 * (long.seconds - short.seconds) / iterations
        evaluations = (long.evaluations - short.evaluations) / iterations
        return cls(ms, evaluations, short.seconds - short.iterations * ms / 1000)

    @property
    def ms_per_evaluation(self) -> float:
        return self.ms_per_iteration / self.evaluations_per_iteration

    def seconds(self, iterations: int) -> float:
        """A batch's wall time at ``iterations`` iterations."""
        return self.fixed_s + iterations * self.ms_per_iteration / 1000


def overhead(jobs: Sequence[BatchJob], short: int, timed: int, repeats: int) -> tuple[float, SteadyState]:
    """The floor (ms per forward and backward pass of the batch) and the engine's steady state for
    ``jobs`` (one batch), after a warm-up: of ``repeats`` rounds, each a floor and the two renders
    back to back, the round whose engine / floor ratio is the median. Other jobs on the machine
    then slow floor and engine alike, and a round they disturbed is left out."""
    settings = jobs[0].settings
    width, height = jobs[0].content.size
    engine_run(jobs, 1)  # the network, cuDNN's autotuning, compiling
    rounds = []
    for _ in range(repeats):
        floor = floor_ms(settings, len(jobs), height, width, timed)
        state = SteadyState.of(engine_run(jobs, short), engine_run(jobs, short + timed))
        rounds.append((state.ms_per_evaluation / floor, floor, state))
    _, floor, state = sorted(rounds, key=lambda r: r[0])[(len(rounds) - 1) // 2]
    return floor, state
