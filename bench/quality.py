"""Picture quality at the default settings: style and content ratios per pair, and time to quality.

Renders 3 contents x 3 styles from ``../shared/images`` with the offline stand-in VGG16 weights
(``../shared/weights/vgg16_hed_features.pth``; without them it says so and exits 0), and measures
each result with an evaluator of its own (a plain torchvision VGG16 forward, not the engine's
loss code):

- style ratio: sum over relu1_1..relu5_1 of ||G(out) - G(style)||^2 over the same sum for the
  content image (G: Gram matrix / (C*H*W); style resized to the output's long side). Lower is
  more stylised; 1 means no more stylised than the photo itself.
- content ratio: ||F(out) - F(content)||^2 / ||F(style') - F(content)||^2 at relu4_2 (style':
  the style resized to the output's exact shape). Lower keeps more of the photo.

    uv run python bench/quality.py                       # quick: 128 px, 100 iterations
    uv run python bench/quality.py --size 256 --iterations 300
    uv run python bench/quality.py --time-to-quality     # 512 px, single- against multi-scale
    uv run python bench/quality.py --set style_weight=30 --set tv_weight=0   # any setting

Writes a grid (content, style, result per row) to ``out/quality/`` to look at.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision import models
from torchvision.transforms.functional import normalize, pil_to_tensor

from nst_core import Settings, render
from nst_core.images import resize_long_side

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights" / "vgg16_hed_features.pth"
CONTENTS = ("tubingen", "astronaut", "chelsea_cat")
STYLES = ("starry_night", "great_wave", "composition_vii")
# Indices of torchvision's vgg16().features whose outputs the ratios read.
STYLE_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 18, "relu5_1": 25}
CONTENT_LAYER = ("relu4_2", 20)


class Evaluator:
    """Style and content ratios from a plain VGG16 forward (standard ImageNet input)."""

    def __init__(self, weights: Path):
        self.net = models.vgg16().features[: max(STYLE_LAYERS.values()) + 1].eval().requires_grad_(False)
        self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=False)

    @torch.no_grad()
    def _features(self, image: Image.Image) -> dict[int, torch.Tensor]:
        x = normalize(pil_to_tensor(image).float().div(255), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]
        wanted = {*STYLE_LAYERS.values(), CONTENT_LAYER[1]}
        feats = {}
        for index, module in enumerate(self.net):
            x = module(x)
            if index in wanted:
                feats[index] = x.clone()
        return feats

    @staticmethod
    def _gram(f: torch.Tensor) -> torch.Tensor:
        f = f[0].flatten(1).double()
        return f @ f.T / f.numel()

    def ratios(self, out: Image.Image, content: Image.Image, style: Image.Image) -> tuple[float, float]:
        """(style ratio, content ratio) of ``out``; ``content`` at the output's size."""
        f_out, f_content = self._features(out), self._features(content)
        f_style = self._features(resize_long_side(style, max(out.size)))
        f_style_exact = self._features(style.resize(out.size, Image.Resampling.LANCZOS))

        def style_distance(f: dict[int, torch.Tensor]) -> float:
            return sum((self._gram(f[i]) - self._gram(f_style[i])).pow(2).sum().item() for i in STYLE_LAYERS.values())

        i = CONTENT_LAYER[1]
        content_ratio = (f_out[i] - f_content[i]).pow(2).sum() / (f_style_exact[i] - f_content[i]).pow(2).sum()
        return style_distance(f_out) / style_distance(f_content), content_ratio.item()


@dataclass
class Row:
    content: str
    style: str
    style_ratio: float
    content_ratio: float
    seconds: float
    image: Image.Image


def open_image(kind: str, name: str) -> Image.Image:
    return Image.open(SHARED / "images" / kind / f"{name}.jpg").convert("RGB")


def quality_table(evaluator: Evaluator, settings: Settings, contents: list[str], styles: list[str]) -> list[Row]:
    rows = []
    print("| content | style | style ratio | content ratio | seconds |\n|---|---|---:|---:|---:|", flush=True)
    for content in contents:
        for style in styles:
            c, s = open_image("content", content), open_image("style", style)
            result = render(c, [s], settings)
            ratios = evaluator.ratios(result.image, c.resize(result.image.size, Image.Resampling.LANCZOS), s)
            row = Row(content, style, *ratios, result.timings.total_s, result.image)
            print(f"| {content} | {style} | {row.style_ratio:.3f} | {row.content_ratio:.3f} | {row.seconds:.0f} |")
            rows.append(row)
    n = len(rows)
    print(
        f"| **all** (mean; worst) | | {sum(r.style_ratio for r in rows) / n:.3f}; "
        f"{max(r.style_ratio for r in rows):.3f} | {sum(r.content_ratio for r in rows) / n:.3f}; "
        f"{max(r.content_ratio for r in rows):.3f} | {sum(r.seconds for r in rows) / n:.0f} |",
        flush=True,
    )
    return rows


def write_grid(rows: list[Row], path: Path, cell: int = 256) -> None:
    """One row per pair: content, style, result, each fitted in a ``cell`` square, labelled."""
    grid = Image.new("RGB", (3 * cell, len(rows) * (cell + 16)), "white")
    draw = ImageDraw.Draw(grid)
    for y, row in enumerate(rows):
        top = y * (cell + 16)
        images = (open_image("content", row.content), open_image("style", row.style), row.image)
        for x, image in enumerate(images):
            image = resize_long_side(image, cell)
            grid.paste(image, (x * cell + (cell - image.width) // 2, top + 16 + (cell - image.height) // 2))
        label = f"{row.content} x {row.style}: style {row.style_ratio:.3f}, content {row.content_ratio:.3f}"
        draw.text((4, top + 2), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    print(f"\ngrid: {path}")


def time_to_quality(evaluator: Evaluator, base: Settings, contents: list[str], styles: list[str], every: int) -> None:
    """Single- against multi-scale at ``base.image_size``: when does each reach the single-scale
    render's final style ratio, at a content ratio no higher than its final one (+0.02)?"""
    print("\n| pair | render | final style ratio | final content ratio | seconds to quality | total seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for content in contents:
        for style in styles:
            c, s = open_image("content", content), open_image("style", style)
            c_out = c.resize(resize_long_side(c, base.image_size).size, Image.Resampling.LANCZOS)
            traces = {}
            for name, settings in (("single-scale", base.model_copy(update={"start_size": 0})), ("multi-scale", base)):
                settings = settings.model_copy(update={"snapshot_every": every})
                result = render(c, [s], settings)
                elapsed = {step.iteration: step.elapsed_s for step in result.losses}
                last = settings.total_iterations
                points = [
                    (elapsed[it], *evaluator.ratios(image, c_out, s))
                    for it, image in sorted(result.snapshots.items())
                    if image.size == result.image.size and it != last
                ]
                points.append((elapsed[last], *evaluator.ratios(result.image, c_out, s)))
                traces[name] = points, result.timings.optimise_s
            target_style, target_content = traces["single-scale"][0][-1][1:]
            for name, (points, total) in traces.items():
                reached = next((t for t, st, ct in points if st <= target_style and ct <= target_content + 0.02), None)
                final = points[-1]
                shown = f"{reached:.0f}" if reached is not None else "not reached"
                print(f"| {content} x {style} | {name} | {final[1]:.3f} | {final[2]:.3f} | {shown} | {total:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--contents", nargs="+", default=list(CONTENTS))
    parser.add_argument("--styles", nargs="+", default=list(STYLES))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting")
    parser.add_argument("--time-to-quality", action="store_true", help="512 px, single- against multi-scale")
    parser.add_argument("--every", type=int, default=10, help="time to quality: evaluate every N iterations")
    parser.add_argument("--out", type=Path, default=Path("out/quality"))
    args = parser.parse_args()
    if not WEIGHTS.exists():
        print(f"{WEIGHTS} is not there: no pretrained weights to judge pictures with; nothing to do.")
        return
    values = dict(item.split("=", 1) for item in args.set)
    settings = Settings.from_values(
        {"backbone": "vgg16", "weights": str(WEIGHTS), "image_size": args.size, "iterations": args.iterations} | values
    )
    changed = ", ".join(f"{k}={v}" for k, v in settings.model_dump(exclude_unset=True).items() if k != "weights")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings: {changed or 'defaults'}")
    print(f"levels (size, iterations): {settings.levels()}\n")
    evaluator = Evaluator(WEIGHTS)
    start = time.perf_counter()
    if args.time_to_quality:
        time_to_quality(evaluator, settings, args.contents, args.styles, args.every)
    else:
        rows = quality_table(evaluator, settings, args.contents, args.styles)
        write_grid(rows, args.out / f"grid-{args.size}px-{args.iterations}it.png")
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
