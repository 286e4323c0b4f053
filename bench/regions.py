"""Styles placed by masks: does each region take its own style, keep its content, and meet the other without a seam?

A photo from ``../shared/images`` split into two regions (left and right halves), each given its own painting,
rendered with the offline stand-in VGG16 weights (without them it says so and exits 0), side by side in one process
with the baseline that has no masks (both paintings blended over the whole picture, ``style_weights`` equal).
Each region is scored on its own, by a crop of the result, with ``bench/quality.py``'s evaluator (a plain VGG16, not
the engine's loss code):

- style ratio to its own painting, and to the other one: the crop's summed Gram distance to the painting over the
  same distance for the photo's crop (lower: more like that painting). Target: to its own at most half of that to
  the other;
- content ratio of the crop (its own painting as the reference, as ``bench/quality.py``): target <= 0.30;
- seam: the mean colour difference across the border (between the two columns that meet there) over the same
  difference between neighbouring columns within 16 px of it. 1: the border is like any other column; a line
  drawn along the border shows as > 2. Target <= 1.5;
- kept pixels: with ``keep_mask`` (a box in the middle), how many pixels inside it differ from the photo. Target 0.

    uv run python bench/regions.py                        # 128 px, 100 iterations
    uv run python bench/regions.py --size 256 --iterations 300 --content astronaut

Writes the results side by side (with the masks) to ``out/regions/`` to look at.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.quality import WEIGHTS, Evaluator, open_image
from nst_core import InputError, Settings, render
from nst_core.images import resize_long_side

BAND = 16  # px either side of the border that the seam is compared with


@dataclass
class Variant:
    name: str
    image: Image.Image
    seconds: float
    regions: tuple[int, ...]  # the regions it is scored in (0: left, 1: right)


def halves(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """(left, right) masks of an image of ``size`` (width, height), white where each applies."""
    left = Image.new("L", size, 0)
    left.paste(255, (0, 0, size[0] // 2, size[1]))
    return left, Image.eval(left, lambda v: 255 - v)


def seam(image: Image.Image, border: int) -> float:
    """The mean colour difference across column ``border`` over that between neighbouring columns near it."""
    x = np.asarray(image, np.float64)
    steps = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2))  # steps[c]: between columns c and c+1
    near = [c for c in range(border - BAND, border + BAND) if c != border - 1]
    return float(steps[border - 1] / steps[near].mean())


def score(evaluator: Evaluator, out: Image.Image, content: Image.Image, styles: list[Image.Image]) -> list[tuple]:
    """Per region (left, right): style ratio to its own painting and to the other, content ratio, seam."""
    w, h = out.size
    boxes = [(0, 0, w // 2, h), (w // 2, 0, w, h)]
    rows = []
    for r, box in enumerate(boxes):
        crop, photo = out.crop(box), content.crop(box)
        own, own_content = evaluator.ratios(crop, photo, styles[r])
        other, _ = evaluator.ratios(crop, photo, styles[1 - r])
        rows.append((own, other, own_content))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--content", default="tubingen")
    parser.add_argument("--styles", nargs=2, default=["starry_night", "composition_vii"], metavar="STYLE")
    parser.add_argument("--out", type=Path, default=Path("out/regions"))
    args = parser.parse_args()
    if not WEIGHTS.exists():
        print(f"{WEIGHTS} is not there: no pretrained weights to judge pictures with; nothing to do.")
        return
    evaluator = Evaluator(WEIGHTS)
    content, styles = open_image("content", args.content), [open_image("style", name) for name in args.styles]
    base = Settings(backbone="vgg16", weights=str(WEIGHTS), image_size=args.size, iterations=args.iterations)
    photo = resize_long_side(content, args.size)
    masks = halves(content.size)
    with tempfile.TemporaryDirectory() as tmp:
        keep = Image.new("L", content.size, 0)
        keep.paste(255, (content.width // 3, content.height // 3, 2 * content.width // 3, 2 * content.height // 3))
        keep.save(Path(tmp, "keep.png"))
        keeping = base.model_copy(update={"keep_mask": str(Path(tmp, "keep.png"))})
        runs = {  # name: settings, the styles, more arguments, the regions it is scored in
            f"{args.styles[0]} alone (baseline)": (base, styles[:1], {}, (0,)),
            f"{args.styles[1]} alone (baseline)": (base, styles[1:], {}, (1,)),
            "blend, no masks (baseline)": (base, styles, {}, (0, 1)),
            "masks, simple": (base, styles, {"style_masks": masks}, (0, 1)),
            "masks, inside": (base.model_copy(update={"mask_mode": "inside"}), styles, {"style_masks": masks}, (0, 1)),
            "masks, simple + keep_mask": (keeping, styles, {"style_masks": masks}, (0, 1)),
        }
        variants, refused = [], {}
        for name, (settings, used, extra, regions) in runs.items():
            start = time.perf_counter()
            try:
                result = render(content, used, settings, **extra)
            except InputError as exc:  # inside mode at a small size: nothing of a half left at relu5_1
                refused[name] = str(exc)
                continue
            variants.append(Variant(name, result.image, time.perf_counter() - start, regions))
        kept = np.asarray(keep.resize(photo.size, Image.Resampling.BILINEAR)) >= 128
    print(f"{args.content}: left {args.styles[0]}, right {args.styles[1]}; {args.size} px, {args.iterations} it\n")
    print(
        "| render | region | style ratio: own | : other | own / other | content ratio | seam | kept px changed "
        "| seconds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        border = seam(v.image, v.image.width // 2)
        changed = (
            "" if "keep" not in v.name else str(int((np.asarray(v.image) != np.asarray(photo))[kept].any(1).sum()))
        )
        for r, (own, other, content_ratio) in enumerate(score(evaluator, v.image, photo, styles)):
            if r not in v.regions:
                continue
            region = ("left", "right")[r]
            print(
                f"| {v.name} | {region} | {own:.3f} | {other:.3f} | {own / other:.2f} | {content_ratio:.3f} | "
                f"{border:.2f} | {changed} | {v.seconds:.0f} |"
            )
    for name, reason in refused.items():
        print(f"| {name} | refused: {reason} | | | | | | | |")
    write_strip(
        [photo, *[m.resize(photo.size) for m in masks], *[v.image for v in variants]],
        ["photo", "mask left", "mask right", *[v.name for v in variants]],
        args.out / f"{args.content}-{args.size}px.png",
    )


def write_strip(images: list[Image.Image], labels: list[str], path: Path) -> None:
    """The images side by side, each labelled above."""
    w, h = images[0].size
    strip = Image.new("RGB", (len(images) * (w + 4), h + 14), "white")
    draw = ImageDraw.Draw(strip)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        strip.paste(image.convert("RGB"), (i * (w + 4), 14))
        draw.text((i * (w + 4) + 2, 1), label[:24], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)
    print(f"\nstrip: {path}")


if __name__ == "__main__":
    main()
