"""Start-up speed of the ``stylebatch`` command, beside Python's own start and ``import torch``.

Wall times of whole processes, best of N, the cases alternating in each round so that a machine
whose speed drifts affects all alike:

- ``python -c pass`` and ``python -c "import torch"``: the floor, and what the CLI must not pay for help;
- ``stylebatch --help``, ``stylebatch run --help``;
- ``stylebatch validate`` of a 1000-row manifest whose rows share 20 images (20 contents x 50 seeds,
  20 styles among them), beside reading and decoding those 20 images once in a fresh process.

Targets (issue 8): help < 1/3 of ``import torch``; validate <= 2 x ``--help`` + reading the images once.

    uv run python bench/cli.py                   # best of 5
    uv run python bench/cli.py --compare HEAD~3  # the same cases for another revision's CLI, side by side
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = 20


def write_inputs(folder: Path) -> tuple[Path, list[Path]]:
    """20 photo-sized JPEGs (512 x 384, noise) and a 1000-row manifest over them (random weights: no network)."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(IMAGES):
        path = folder / f"image{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 255, (384, 512, 3), dtype=np.uint8)).save(path, quality=90)
        images.append(path)
    rows = [f"{images[i % IMAGES].name},{images[(i * 7 + 3) % IMAGES].name},{i // IMAGES}" for i in range(1000)]
    manifest = folder / "m.csv"
    manifest.write_text("content,style,seed\n" + "\n".join(rows) + "\n")
    return manifest, images


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A worktree of ``rev``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkout"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True
        )
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=True)


def cli(source: Path, *args: str) -> list[str]:
    """The ``stylebatch`` command of the code in ``source`` (this checkout or another)."""
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(source)!r}); from flows.cli import main; main()",
        *args,
    ]


def seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", metavar="REV", help="also time this git revision's CLI")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, checkout(args.compare) if args.compare else _none() as other:
        folder = Path(tmp)
        manifest, images = write_inputs(folder)
        read_once = "from PIL import Image\nfor p in %r: Image.open(p).convert('RGB')" % [str(p) for p in images]
        sources = {"": ROOT} | ({f" ({args.compare})": other} if other else {})
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
        }
        cases["read + decode the 20 images once"] = [sys.executable, "-c", read_once]
        for label, source in sources.items():
            cases[f"stylebatch --help{label}"] = cli(source, "--help")
            cases[f"stylebatch run --help{label}"] = cli(source, "run", "--help")
            cases[f"stylebatch validate, 1000 rows{label}"] = cli(
                source, "validate", str(manifest), "--weights", "random:0"
            )
        best = {name: float("inf") for name in cases}
        for _ in range(args.repeats):
            for name, command in cases.items():
                best[name] = min(best[name], seconds(command, folder))
    print_table(best, args.repeats)


@contextmanager
def _none() -> Iterator[None]:
    yield None


def print_table(best: dict[str, float], repeats: int) -> None:
    torch_s, help_s = best['python -c "import torch"'], best["stylebatch --help"]
    budget = 2 * help_s + best["read + decode the 20 images once"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"wall time of a whole process, best of {repeats}\n")
    print("| command | seconds | / import torch |")
    print("|---|---:|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} | {value / torch_s:.2f} |")
    print(f"\nhelp / import torch: {help_s / torch_s:.2f} (target < 0.33)")
    validate = best["stylebatch validate, 1000 rows"]
    print(f"validate: {validate:.2f} s; 2 x help + reading the images once: {budget:.2f} s (target: validate <= that)")


if __name__ == "__main__":
    main()
