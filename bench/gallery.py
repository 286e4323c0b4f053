"""Gallery build time for a 500-pair output root (25 contents x 20 styles), first build and rebuild.

    uv run python bench/gallery.py            # 25 x 20 pairs
    uv run python bench/gallery.py --contents 40 --styles 12

The pair folders are written with ``tasks.records`` as ``run_pair`` writes them (64 px results,
96 x 64 inputs), without rendering. The rebuild finds every thumbnail made and reads no result.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from nst_core import Settings
from tasks.gallery import build_gallery
from tasks.manifest import Pair
from tasks.records import InputFile, LossRow, RenderRecord, RenderTimings, pair_files
from tasks.storage import write_pair


def noise(seed: int, size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def fake_root(root: Path, contents: int, styles: int) -> str:
    settings = Settings(weights="random:0", image_size=64, iterations=10, start_size=0)
    losses = [
        LossRow(iteration=i, content=1 / i, style=1 / i, tv=1 / i, total=3 / i, lr=1, elapsed_s=i) for i in range(1, 11)
    ]
    inputs = {}
    for kind, count in (("content", contents), ("style", styles)):
        for i in range(count):
            path = root / "inputs" / f"{kind}{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            noise(hash((kind, i)) % 2**32, (96, 64)).save(path)
            inputs[kind, i] = str(path)
    now = datetime.now(UTC)
    out = str(root / "renders")
    for i in range(contents):
        for j in range(styles):
            pair = Pair(
                f"c{i:02d}__s{j:02d}", 2 + i * styles + j, inputs["content", i], (inputs["style", j],), settings
            )
            record = RenderRecord(
                pair_id=pair.pair_id,
                fingerprint=pair.fingerprint,
                final=losses[-1],
                wall_s=1.0,
                device="cpu",
                worker="bench:1",
                started_at=now,
                finished_at=now,
                row=pair.row,
                content=InputFile(uri=pair.content),
                styles=[InputFile(uri=pair.styles[0])],
                settings=settings,
                precision="fp32",
                timings=RenderTimings(setup_s=0, optimise_s=1, ms_per_iteration=100, evaluations=10, wall_s=1),
            )
            write_pair(out, pair.pair_id, pair_files(record, noise(pair.row, (64, 64)), losses, {}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contents", type=int, default=25)
    parser.add_argument("--styles", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = fake_root(Path(tmp), args.contents, args.styles)
        print("| build | pairs | seconds |\n|---|---:|---:|")
        for name in ("first", "rebuild"):
            start = time.perf_counter()
            built = build_gallery(out)
            print(f"| {name} | {built['pairs']} | {time.perf_counter() - start:.2f} |", flush=True)


if __name__ == "__main__":
    main()
