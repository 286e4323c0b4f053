"""Gallery build time for a 500-pair output root (25 contents x 20 styles), first build and rebuild.

    uv run python bench/gallery.py            # 25 x 20 pairs
    uv run python bench/gallery.py --contents 40 --styles 12

The pair folders are written as a render task writes them (``tasks.runs.pairs.store_result``: real records,
64 px results, 96 x 64 inputs), without rendering. The rebuild finds every thumbnail made and reads no result.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from nst_core import RenderResult, StepInfo, Timings
from tasks.gallery.build import build_gallery
from tasks.manifest.read import read_manifest
from tasks.runs.pairs import store_result

SETTINGS = {"weights": "random:0", "image_size": "64", "iterations": "3", "device": "cpu"}


def noise(seed: int, size: tuple[int, int]) -> Image.Image:
    """A seeded colour picture: smooth bands plus noise, so that thumbnails are not trivial to encode."""
    w, h = size
    rng = np.random.default_rng(seed)
    bands = np.linspace(0, 255, w)[None, :, None] * rng.uniform(0.3, 1, 3)
    pixels = bands + rng.normal(0, 20, (h, w, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def synthetic_root(root: Path, contents: int, styles: int) -> str:
    """An output root of ``contents`` x ``styles`` rendered pairs, written without rendering."""
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    names = {kind: [f"{kind}{i:02d}.png" for i in range(n)] for kind, n in (("content", contents), ("style", styles))}
    for seed, name in enumerate(names["content"] + names["style"]):
        noise(seed, (96, 64)).save(inputs / name)
    rows = [f"{c},{s}" for c in names["content"] for s in names["style"]]
    (inputs / "m.csv").write_text("\n".join(["content,style", *rows]) + "\n")
    out = str(root / "renders")
    for pair in read_manifest(str(inputs / "m.csv"), SETTINGS).pairs:
        steps = [StepInfo(i, 1.0 / i, 0.5 / i, 0.1 / i, 3.0 / i, 1.0, 0.01 * i) for i in range(1, 4)]
        result = RenderResult(
            noise(pair.row, (64, 64)), steps, Timings(0.1, 0.2, 66.0, 4), "cpu", "fp32", pair.settings
        )
        checksums = dict.fromkeys([pair.content, *pair.styles], "0" * 64)
        store_result(pair, out, result, checksums, datetime.now(UTC), 0.3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contents", type=int, default=25)
    parser.add_argument("--styles", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = synthetic_root(Path(tmp), args.contents, args.styles)
        print("| build | pairs | seconds |\n|---|---:|---:|")
        for name in ("first", "rebuild"):
            start = time.perf_counter()
            built = build_gallery(out)
            print(f"| {name} | {built.pairs} | {time.perf_counter() - start:.2f} |", flush=True)


if __name__ == "__main__":
    main()
