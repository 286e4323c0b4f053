"""Engine speed: one pair's ms per forward and backward pass beside its floor, and peak memory.

The floor is one forward and backward pass of the same cut network alone, on the same image, in
the same process: what any implementation of the method must pay. The engine's figure is its time
per forward and backward pass (evaluation) once set up: two renders that differ only in their
number of iterations, the difference of their times over the difference of their evaluations, so
that what a render pays once (the network, the targets) is left out. overhead = engine / floor - 1
(Gram matrices, losses, optimiser, bookkeeping). L-BFGS's line search sometimes spends more than
one evaluation on an iteration: that ratio is its own column.

    uv run python bench/engine.py                 # CPU: 128, 256, 512 px
    uv run python bench/engine.py --sizes 256     # one size
    uv run python bench/engine.py --cpu-time      # one thread, CPU time: a machine other jobs share
On CUDA it adds 1024 px and a bf16 row per case. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse

import torch

from bench.measure import (
    CLOCK,
    PeakMemory,
    describe,
    engine_run,
    floor_ms,
    noise_jobs,
    overhead,
    restart_with_fixed_mmap_threshold,
)
from nst_core import Settings
from nst_core.device import pick_device


def run_case(size: int, optimizer: str, precision: str, args: argparse.Namespace) -> str:
    settings = Settings(
        image_size=size,
        start_size=0,  # single scale: every iteration at the floor's size
        optimizer=optimizer,
        precision=precision,
        weights="random:0",
        channels_last=precision == "bf16",
    )
    jobs = noise_jobs(settings, 1)
    width, height = jobs[0].content.size
    device = pick_device(settings.device)
    engine_run(jobs, 2)  # warm-up: load, cache, autotune
    with PeakMemory(device) as floor_mem:
        floor_ms(settings, 1, height, width, 2)
    with PeakMemory(device) as engine_mem:
        engine_run(jobs, 2)
    floor, state = overhead(jobs, args.short, args.iterations, args.repeats)
    return (
        f"| {size} | {optimizer} | {precision} | {floor:.1f} | {state.ms_per_evaluation:.1f} | "
        f"{state.ms_per_evaluation / floor - 1:+.1%} | {state.evaluations_per_iteration:.2f} | "
        f"{floor_mem.peak_mib:.0f} | {engine_mem.peak_mib:.0f} |"
    )


def main() -> None:
    restart_with_fixed_mmap_threshold()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--short", type=int, default=3, help="iterations of the shorter render")
    parser.add_argument("--iterations", type=int, default=10, help="iterations the longer render adds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu-time", action="store_true", help="one thread, timed by CPU time (a shared machine)")
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK.use_cpu_time()
    cuda = torch.cuda.is_available()
    sizes = args.sizes or ([128, 256, 512, 1024] if cuda else [128, 256, 512])
    precisions = ["fp32", "bf16"] if cuda else ["fp32"]
    print(f"{describe(pick_device('auto'))}; VGG19, default layers")
    clock = "CPU time of this process" if args.cpu_time else "wall time"
    print(
        f"{clock}; renders of {args.short} and {args.short + args.iterations} iterations, "
        f"median of {args.repeats} rounds\n"
    )
    print(
        "| size | optimizer | precision | floor ms | engine ms | overhead | evaluations/iteration "
        "| floor peak MiB | engine peak MiB |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for optimizer in ("lbfgs", "adam"):
            for precision in precisions:
                print(run_case(size, optimizer, precision, args), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, or bench/gpu_check.sh's time limit
        raise SystemExit("stopped: the table above is partial") from None
