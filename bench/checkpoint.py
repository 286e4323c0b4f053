"""Checkpoints: how big they are, how long they take to write (local disk, S3), what they cost a render.

1. **Size and write time**, by image size (4:3, long side) and optimiser: the state a render saves once L-BFGS's
   history is full (``lbfgs_history`` pairs of image-sized vectors; Adam: two moments): the optimiser's own state
   after a few steps on a cheap objective of the image's shape, its history then filled up (the state's size follows
   the shape and the history alone), with a 500-row loss log.
   Written with the pipeline's ``write_checkpoint`` to a local folder and to S3 (moto's server on 127.0.0.1, as the
   tests use), and read back (``read_checkpoint``). Targets: 1024 px written locally in under 10 s; the SIGTERM
   checkpoint well inside 30 s; at most 2 % of a render's time at the default interval (the last column:
   write time / the interval, which the saver stretches where writes are slow: ``tasks.runs.resume.MAX_OVERHEAD``).
2. **Overhead on a real render** (``run_batch``, the pipeline's code, VGG19 with random weights on this machine):
   checkpoints off, at the default interval, and as often as the 2 % cap allows (``checkpoint_every_s`` 1e-6), side
   by side in one process, alternating; then without the cap, a checkpoint after every iteration.
3. With ``--quality``: what a shorter L-BFGS history costs in picture quality (``bench/quality.py``'s ratios on the
   stand-in VGG16 weights from ``../shared``; skipped without them).

    uv run python bench/checkpoint.py                    # 512 and 1024 px
    uv run python bench/checkpoint.py --sizes 256 512 --render-size 128 --quality
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import s3fs
import torch
from moto.server import ThreadedMotoServer
from PIL import Image

from bench.measure import noise_image
from bench.quality import WEIGHTS, Evaluator, open_image
from nst_core import Settings, StepInfo, StorageError, render
from nst_core.checkpoints import TrackState, to_cpu
from nst_core.settings import CHECKPOINT_EVERY_S, LBFGS_HISTORY
from tasks.manifest.read import read_manifest
from tasks.runs import resume
from tasks.runs.options import RunOptions
from tasks.runs.pairs import run_batch
from tasks.storage.checkpoints import CHECKPOINT, read_checkpoint, write_checkpoint
from tasks.storage.root import OutputRoot

IDENTITY = {"fingerprint": "bench", "torch": torch.__version__}
OPTIMISERS = {  # name -> (optimizer, lbfgs_history)
    f"lbfgs, history {LBFGS_HISTORY} (default)": ("lbfgs", LBFGS_HISTORY),
    "lbfgs, history 20": ("lbfgs", 20),
    "adam": ("adam", 0),
}


def full_state(size: int, optimizer: str, history: int) -> TrackState:
    """A render's state at ``size`` px (4:3) once the optimiser's state is full grown: a few real steps of the
    optimiser, then L-BFGS's history filled up to ``history`` pairs (as a long render fills it)."""
    image = torch.rand(1, 3, size * 3 // 4, size, requires_grad=True)
    target = torch.rand_like(image)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([image], lr=0.01)
    else:
        opt = torch.optim.LBFGS([image], max_iter=1, history_size=history, tolerance_grad=-1, tolerance_change=-1)

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = ((image - target) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(objective)
    state = to_cpu(opt.state_dict())
    if optimizer == "lbfgs":
        lbfgs = state["state"][0]
        for key in ("old_dirs", "old_stps"):
            lbfgs[key] = [torch.rand(image.numel()) for _ in range(history)]
        lbfgs["ro"] = [torch.rand(()) for _ in range(history)]
    log = tuple(StepInfo(i, 1.0, 2.0, 0.1, 3.1, 1.0, 0.5 * i) for i in range(1, 501))
    memo = (image.detach(), image.grad, tuple(torch.tensor(v) for v in (1.0, 2.0, 0.1, 3.1)))
    return TrackState(1, 500, image.detach(), state, 0.5, to_cpu(memo), 0, 620, log)


@contextlib.contextmanager
def moto_bucket() -> Iterator[str]:
    """An S3 bucket on moto's server on 127.0.0.1 (the AWS environment pointed at it): its URI."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request through werkzeug
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ |= {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    name = f"bench-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem().mkdir(name)
    try:
        yield f"s3://{name}"
    finally:
        server.stop()


def timed(op: Callable[[], object]) -> float:
    start = time.perf_counter()
    op()
    return time.perf_counter() - start


def sizes_table(sizes: list[int], local: str, s3: str) -> None:
    print(
        "| size | optimiser | MB | local write s | S3 write s | read s | overhead at "
        f"{CHECKPOINT_EVERY_S:g} s |\n|---:|---|---:|---:|---:|---:|---:|",
        flush=True,
    )
    for size in sizes:
        for name, (optimizer, history) in OPTIMISERS.items():
            mb, local_s, s3_s, read_s = measure(full_state(size, optimizer, history), local, s3)
            overhead = local_s / max(CHECKPOINT_EVERY_S, local_s / resume.MAX_OVERHEAD)
            s3_text = f"{s3_s:.2f}" if isinstance(s3_s, float) else s3_s
            print(
                f"| {size} | {name} | {mb:.0f} | {local_s:.2f} | {s3_text} | {read_s:.2f} | {100 * overhead:.2f} % |",
                flush=True,
            )


def measure(state: TrackState, local: str, s3: str) -> tuple[float, float, float | str, float]:
    """(MB, seconds to write locally (best of 2), to S3 (or why it failed), to read back locally) of ``state``'s
    checkpoint."""
    roots = OutputRoot.open(local), OutputRoot.open(s3)
    local_s = min(timed(lambda: write_checkpoint(roots[0], "pair", state, IDENTITY)) for _ in range(2))
    try:
        s3_s: float | str = timed(lambda: write_checkpoint(roots[1], "pair", state, IDENTITY))
    except StorageError as exc:
        s3_s = f"failed: {exc.cause}"
    read_s = timed(lambda: read_checkpoint(roots[0], "pair", IDENTITY))
    mb = os.path.getsize(roots[0].pair("pair", f"{CHECKPOINT}/{state.iteration:06d}.pt")) / 1e6
    for root in roots:
        if root.fs.exists(root.pair("pair")):
            root.fs.rm(root.pair("pair"), recursive=True)
    return mb, local_s, s3_s, read_s


def render_overhead(size: int, iterations: int, rounds: int) -> None:
    """Real renders through the pipeline, checkpoints off and on, alternating; the median of ``rounds``."""
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        noise_image(size, size * 3 // 4, 1).save(Path(tmp, "content.png"))
        noise_image(size, size, 2).save(Path(tmp, "style.png"))
        Path(tmp, "m.csv").write_text("content,style\ncontent.png,style.png\n")
        variants = {
            "off": (0.0, resume.MAX_OVERHEAD),
            f"every {CHECKPOINT_EVERY_S:g} s (default)": (CHECKPOINT_EVERY_S, resume.MAX_OVERHEAD),
            "every 1e-6 s, 2 % cap": (1e-6, resume.MAX_OVERHEAD),
            "every iteration, no cap": (1e-6, float("inf")),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        saved: dict[str, int] = {}
        for n in range(-1, rounds):  # round -1 warms up (first loads and allocations), uncounted
            for i, (name, (every, cap)) in enumerate(variants.items()):
                settings = {"weights": "random:0", "image_size": size, "iterations": iterations, "device": "cpu"}
                [pair] = read_manifest(str(Path(tmp, "m.csv")), settings | {"checkpoint_every_s": every}).pairs
                out = Path(tmp, f"out-{n}-{i}")
                resume.MAX_OVERHEAD = cap
                counted = _count_writes()
                start = time.perf_counter()
                [outcome] = run_batch([pair], RunOptions(out=str(out)), run_id=f"{name}-{n}")
                if n >= 0:
                    times[name].append(time.perf_counter() - start)
                saved[name] = counted()
                assert outcome.status == "rendered", outcome.reason
        resume.MAX_OVERHEAD = variants["off"][1]
    base = statistics.median(times["off"])
    print(
        f"\n| checkpoints ({size} px, {iterations} L-BFGS iterations) | s (median of {rounds}) | written | overhead |"
    )
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {saved[name]} | {100 * (median / base - 1):+.1f} % |", flush=True)


def _count_writes() -> Callable[[], int]:
    """A function that tells how many checkpoints were written since this call."""
    calls = []
    original = resume.write_checkpoint

    def counting(*args: Any) -> None:
        calls.append(1)
        original(*args)

    resume.write_checkpoint = counting  # type: ignore[assignment]

    def count() -> int:
        resume.write_checkpoint = original
        return len(calls)

    return count


def quality(size: int, iterations: int) -> None:
    """``bench/quality.py``'s ratios for L-BFGS histories, on one pair of ``../shared``'s images."""
    if not WEIGHTS.exists():
        print(f"\n(quality skipped: no stand-in weights at {WEIGHTS})")
        return
    evaluator = Evaluator(WEIGHTS)
    content, style = open_image("content", "tubingen"), open_image("style", "starry_night")
    print(f"\n| lbfgs_history ({size} px, {iterations} iterations) | style ratio | content ratio | final loss | s |")
    print("|---:|---:|---:|---:|---:|")
    for history in (LBFGS_HISTORY, 50, 20, 5):
        settings = Settings(
            image_size=size, iterations=iterations, backbone="vgg16", weights=str(WEIGHTS), lbfgs_history=history
        )
        result = render(content, [style], settings)
        ratios = evaluator.ratios(result.image, content.resize(result.image.size, Image.Resampling.LANCZOS), style)
        print(
            f"| {history} | {ratios[0]:.3f} | {ratios[1]:.3f} | {result.losses[-1].total:.4f} | "
            f"{result.timings.total_s:.0f} |",
            flush=True,
        )
        result.image.save(Path("out", "checkpoint", f"history-{history}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024], help="none: skip the sizes table")
    parser.add_argument("--render-size", type=int, default=128)
    parser.add_argument("--render-iterations", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", action="store_true", help="also the cost of shorter L-BFGS histories")
    parser.add_argument("--quality-size", type=int, default=256)
    parser.add_argument("--quality-iterations", type=int, default=200)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; checkpoints of one image\n")
    if args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as local, moto_bucket() as s3:
            sizes_table(args.sizes, local, f"{s3}/out")
    render_overhead(args.render_size, args.render_iterations, args.rounds)
    if args.quality:
        Path("out", "checkpoint").mkdir(parents=True, exist_ok=True)
        quality(args.quality_size, args.quality_iterations)


if __name__ == "__main__":
    main()
