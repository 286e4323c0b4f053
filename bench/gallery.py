"""Gallery build time for a 500-pair output root (25 contents x 20 styles), first build and rebuild.

    uv run python bench/gallery.py            # 25 x 20 pairs
    uv run python bench/gallery.py --contents 40 --styles 12

The pair folders are written through ``tasks.storage.records`` as ``run_pair`` writes them (64 px results,
96 x 64 inputs), without rendering. The rebuild finds every thumbnail made and reads no result.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tasks.gallery.build import build_gallery
from tests.conftest import make_image
from tests.tasks.gallery.helpers import FakePair, png_bytes


def fake_root(root: Path, contents: int, styles: int) -> str:
    """Pair folders as the tests fake them (``FakePair``: real records, no render), 96 x 64 inputs."""
    out = str(root / "renders")
    (root / "inputs").mkdir(parents=True)
    inputs = {}
    for kind, count in (("content", contents), ("style", styles)):
        for i in range(count):
            inputs[kind, i] = str(root / "inputs" / f"{kind}{i:02d}.png")
            make_image(hash((kind, i)) % 2**32, (96, 64)).save(inputs[kind, i])
    for i in range(contents):
        for j in range(styles):
            pair = FakePair(f"c{i:02d}__s{j:02d}", inputs["content", i], (inputs["style", j],), row=2 + i * styles + j)
            pair.write(out, png_bytes(make_image(pair.row, (64, 64))))
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
