"""Pairs per hour per device: batches of pairs rendered together, beside the bare network's floor.

For each image size, precision and batch size, in one process, with random weights (speed does
not depend on them) and noise images:

- **floor ms**: one forward and backward pass of the whole batch through the cut network alone;
- **ms/it**: ``render_batch``'s time per iteration of the whole batch once set up: two renders that
  differ only in their number of iterations, the difference of their times (``measure.overhead``:
  rounds of floor and engine back to back, the round with the median engine / floor ratio);
- **overhead**: ms per forward and backward pass (ms/it over evaluations per iteration) / floor - 1;
- **switches**: the fast-path settings turned on (``--switches`` adds rows with each, one after another);
- **fixed s**: what a batch pays once: opening the images, the network, the targets;
- **pairs/h**: batch x 3600 / (fixed + ``--iterations`` x ms/it): a full render (500 iterations by
  default) from the timed ones;
- **peak MiB** and **GPU %**: the CUDA allocator's peak (RSS growth on the CPU) and NVML's mean
  utilisation during the longer render (blank without a GPU).

Then the engine's overhead over the floor for a single pair at ``--overhead-size`` (256 px), Adam
and L-BFGS, the median of ``--overhead-repeats`` rounds (target: at most 5 %).

    uv run python bench/throughput.py            # CPU: 64 and 128 px, batches 1, 2, 4 (a few minutes)
    python3 bench/throughput.py                  # CUDA: 256, 512, 1024 px, batches 1-16, fp32 and bf16
    python3 bench/throughput.py --sizes 512 --batches 1 8 --switches channels_last cudnn_benchmark compile
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bench.measure import (
    CLOCK,
    GpuUtilisation,
    PeakMemory,
    describe,
    engine_run,
    noise_jobs,
    overhead,
    restart_with_fixed_mmap_threshold,
)
from nst_core import Settings
from nst_core.device import pick_device

SWITCHES = ("channels_last", "cudnn_benchmark", "compile")
COLUMNS = (
    "| size | precision | switches | batch | floor ms | ms/it | ms/it per pair | overhead | evaluations/it | fixed s "
    "| pairs/h | peak MiB | GPU % |"
)


def with_values(base: Settings, **values: Any) -> Settings:
    """``base`` with ``values``, validated again (defaults that depend on them, such as lr, follow)."""
    return Settings.from_values(base.model_dump(exclude_unset=True) | values)


def switched(settings: Settings) -> str:
    return "+".join(name for name in SWITCHES if getattr(settings, name)) or "-"


def variants(base: Settings, switches: list[str]) -> list[Settings]:
    """``base``, then with each of ``switches`` turned on as well, one after another."""
    result = [base]
    for name in switches:
        result.append(result[-1].model_copy(update={name: True}))
    return result


def throughput_row(settings: Settings, batch: int, args: argparse.Namespace) -> str:
    jobs = noise_jobs(settings, batch)
    device = pick_device(settings.device)
    with PeakMemory(device) as memory, GpuUtilisation(device) as gpu:
        engine_run(jobs, args.short + args.timed)
    floor, state = overhead(jobs, args.short, args.timed, args.repeats)
    pairs_per_hour = batch * 3600 / state.seconds(args.iterations)
    gpu_text = "" if gpu.mean is None else f"{gpu.mean:.0f}"
    return (
        f"| {settings.image_size} | {settings.precision} | {switched(settings)} | {batch} | {floor:.1f} | "
        f"{state.ms_per_iteration:.1f} | {state.ms_per_iteration / batch:.1f} | "
        f"{state.ms_per_evaluation / floor - 1:+.1%} | {state.evaluations_per_iteration:.2f} | {state.fixed_s:.2f} | "
        f"{pairs_per_hour:,.0f} | {memory.peak_mib:.0f} | {gpu_text} |"
    )


def overhead_row(settings: Settings, args: argparse.Namespace) -> str:
    """One pair's engine against the floor."""
    floor, state = overhead(noise_jobs(settings, 1), args.short, args.timed, args.overhead_repeats)
    return (
        f"| {settings.image_size} | {settings.optimizer} | {floor:.1f} | {state.ms_per_evaluation:.1f} | "
        f"{state.ms_per_evaluation / floor - 1:+.1%} | {state.evaluations_per_iteration:.2f} | {state.fixed_s:.2f} |"
    )


def parse_args() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024] if cuda else [64, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16] if cuda else [1, 2, 4])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"] if cuda else ["fp32"])
    parser.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    parser.add_argument("--iterations", type=int, default=500, help="iterations of the render pairs/h is for")
    parser.add_argument("--short", type=int, default=5, help="iterations of the shorter timed render")
    parser.add_argument("--timed", type=int, default=20 if cuda else 6, help="iterations the longer one adds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-size", type=int, default=256, help="0: no overhead table")
    parser.add_argument("--overhead-repeats", type=int, default=5)
    parser.add_argument(
        "--switches",
        nargs="*",
        default=[],
        choices=SWITCHES,
        help="rows with each of these fast-path settings turned on as well, one after another",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--cpu-time", action="store_true", help="one thread, timed by CPU time (a shared machine)")
    return parser.parse_args()


def main() -> None:
    restart_with_fixed_mmap_threshold()
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK.use_cpu_time()
    base = Settings.from_values(
        {"weights": "random:0", "start_size": 0, "optimizer": args.optimizer}
        | dict(item.split("=", 1) for item in args.set)
    )
    device = pick_device(base.device)
    changed = ", ".join(f"{k}={v}" for k, v in base.model_dump(exclude_unset=True).items() if k != "weights")
    print(f"{describe(device)}; {base.backbone}, default layers; {changed}")
    clock = "CPU time of this process" if args.cpu_time else "wall time"
    print(
        f"{clock}; ms/it from {args.short} and {args.short + args.timed} iterations "
        f"(median of {args.repeats} rounds); "
        f"pairs/h for {args.iterations} iterations\n"
    )
    print(COLUMNS)
    print("|" + "---:|" * (COLUMNS.count("|") - 1))
    for size in args.sizes:
        for precision in args.precisions:
            for settings in variants(with_values(base, image_size=size, precision=precision), args.switches):
                for batch in args.batches:
                    try:
                        print(throughput_row(settings, batch, args), flush=True)
                    except torch.OutOfMemoryError:
                        print(f"| {size} | {precision} | {switched(settings)} | {batch} | out of memory |" + " |" * 8)
                        torch.cuda.empty_cache()
    if args.overhead_size:
        print(f"\nOne pair at {args.overhead_size} px, {base.precision}: median of {args.overhead_repeats} rounds\n")
        print("| size | optimizer | floor ms | engine ms/evaluation | overhead | evaluations/it | fixed s |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for optimizer in ("adam", "lbfgs"):
            settings = with_values(base, image_size=args.overhead_size, optimizer=optimizer)
            print(overhead_row(settings, args), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C, or bench/gpu_check.sh's time limit
        raise SystemExit("stopped: the table above is partial") from None
