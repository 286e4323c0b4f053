"""Temporal consistency of styled clips: frames styled on their own against chains (``nst_core.video.chain``).

Two clips made from ``../shared/images`` with the offline stand-in VGG16 weights (without them it says so and exits
0): ``pan`` a photo panned and zoomed, whose true optical flow is known; ``parts`` a panning background with two
pictures moving over it in other directions. Each clip is styled twice in one process: every frame on its own
(``temporal_weight 0``, content init) and as a chain (the defaults). Columns:

- warping error (Lai et al. 2018): the mean over consecutive frames of the squared difference between stylised frame
  t and stylised frame t-1 warped into it along the *input* clip's flow, over the pixels that flow can follow
  (``pan``: the true flow, every pixel that stays in view; ``parts``: OpenCV's DIS flow of the input both ways, with
  a forward-backward check), on the 0-1 scale. Computed here with OpenCV's remap, not with the engine's code;
- style and content ratio of the frames (mean), as ``bench/quality.py`` scores them;
- iterations, evaluations (forward and backward passes: L-BFGS's line search adds some) and optimisation seconds
  per frame after the first (means).

    uv run python bench/video.py                      # 12 frames, 128 px
    uv run python bench/video.py --frames 24 --size 192 --temporal-weights 30 100 --frame-iterations 25 50
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from bench.quality import WEIGHTS, Evaluator, open_image
from nst_core import Settings
from nst_core.results import RenderResult
from nst_core.settings import FRAME_ITERATIONS
from nst_core.video.chain import render_clip
from nst_core.video.encode import encode_preview


@dataclass(frozen=True)
class Clip:
    name: str
    frames: list[Image.Image]
    backward: list[np.ndarray] | None  # true flow(frame t, frame t-1) for t >= 1, if known


def pan_clip(photo: Image.Image, frames: int, size: tuple[int, int]) -> Clip:
    """``photo`` seen through a window that moves right and down and zooms in, with its true flows."""
    w, h = size
    boxes = []
    for t in range(frames):
        scale = photo.width * 0.6 / w * (1 - 0.006 * t)  # source pixels per output pixel
        x0, y0 = photo.width * 0.15 + 2.5 * t * scale, photo.height * 0.2 + 1.0 * t * scale
        boxes.append((x0, y0, scale))
    images = [photo.resize(size, Image.Resampling.LANCZOS, box=(x, y, x + w * s, y + h * s)) for x, y, s in boxes]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flows = []
    for (x1, y1, s1), (x0, y0, s0) in zip(boxes[1:], boxes[:-1], strict=True):
        # pixel centre p of frame t is source point x1 + (p + 0.5) s1; in frame t-1 it is at (that - x0) / s0 - 0.5
        fx = (x1 + (xs + 0.5) * s1 - x0) / s0 - 0.5 - xs
        fy = (y1 + (ys + 0.5) * s1 - y0) / s0 - 0.5 - ys
        flows.append(np.stack([fx, fy], axis=-1))
    return Clip("pan", images, flows)


def parts_clip(background: Image.Image, sprites: list[Image.Image], frames: int, size: tuple[int, int]) -> Clip:
    """A background panning left with two pictures moving over it: one right and down, one up."""
    w, h = size
    wide = background.resize((w * 2, round(w * 2 * background.height / background.width)), Image.Resampling.LANCZOS)
    a, b = (sprite.resize((w // 3, h // 3), Image.Resampling.LANCZOS) for sprite in sprites)
    images = []
    for t in range(frames):
        frame = wide.crop((2 * t, 10, 2 * t + w, 10 + h))
        frame.paste(a, (w // 8 + 2 * t, h // 6 + t))
        frame.paste(b, (w // 2 + t // 2, h // 2 - 2 * t))
        images.append(frame)
    return Clip("parts", images, None)


def followed(backward: np.ndarray, forward: np.ndarray | None) -> np.ndarray:
    """Where frame t's pixels can be followed into frame t-1: in view there, and (with ``forward``) back again."""
    h, w = backward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    mask = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    if forward is not None:
        there = cv2.remap(forward, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask &= (
            np.sum((backward + there) ** 2, axis=-1)
            <= 0.01 * (np.sum(backward**2, axis=-1) + np.sum(there**2, axis=-1)) + 0.5
        )
    return mask


def dis(a: Image.Image, b: Image.Image) -> np.ndarray:
    grey = [cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY) for image in (a, b)]
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(*grey, None)


def warping_error(stylised: list[Image.Image], clip: Clip) -> float:
    """Lai et al.'s warping error of ``stylised`` frames, along ``clip``'s true flow or its DIS flow."""
    errors = []
    for t in range(1, len(stylised)):
        if clip.backward is not None:
            backward, mask = clip.backward[t - 1], followed(clip.backward[t - 1], None)
        else:
            backward = dis(clip.frames[t], clip.frames[t - 1])
            mask = followed(backward, dis(clip.frames[t - 1], clip.frames[t]))
        h, w = backward.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        previous = np.asarray(stylised[t - 1], dtype=np.float32) / 255
        warped = cv2.remap(previous, xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_LINEAR)
        diff = ((np.asarray(stylised[t], dtype=np.float32) / 255 - warped) ** 2).sum(axis=-1)
        errors.append(float(diff[mask].mean()))
    return float(np.mean(errors))


def flow_error(clip: Clip) -> float:
    """Median end-point error of DIS against the true flow, in pixels, over the pixels that stay in view."""
    errors = [
        np.linalg.norm(dis(clip.frames[t], clip.frames[t - 1]) - true, axis=-1)[followed(true, None)]
        for t, true in enumerate(clip.backward, start=1)
    ]
    return float(np.median(np.concatenate(errors)))


def style_clip(clip: Clip, style: Image.Image, s: Settings, evaluator: Evaluator, label: str, out: Path) -> None:
    start = time.perf_counter()
    results: list[RenderResult] = render_clip(clip.frames, [style], s)
    wall = time.perf_counter() - start
    images = [r.image for r in results]
    ratios = [
        evaluator.ratios(r.image, f.resize(r.image.size, Image.Resampling.LANCZOS), style)
        for r, f in zip(results, clip.frames, strict=True)
    ]
    later = results[1:]
    iterations = np.mean([len(r.losses) for r in later])
    evaluations = np.mean([r.timings.evaluations for r in later])
    seconds = np.mean([r.timings.optimise_s for r in later])
    print(
        f"| {clip.name} | {label} | {warping_error(images, clip):.5f} | {np.mean([r[0] for r in ratios]):.4f} | "
        f"{np.mean([r[1] for r in ratios]):.3f} | {iterations:.0f} | {evaluations:.0f} | {seconds:.1f} | {wall:.0f} |",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    encode_preview(
        images,
        str(out / f"{clip.name}-{label.replace(' ', '-')}.webm"),
        fps=Fraction(12),
        max_side=max(s.image_size, 256),
    )
    strip = Image.new("RGB", (images[0].width * 4, images[0].height))
    for i, image in enumerate(images[:: max(1, len(images) // 4)][:4]):
        strip.paste(image, (i * image.width, 0))
    strip.save(out / f"{clip.name}-{label.replace(' ', '-')}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=100, help="of the first frame, and of independent frames")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--clips", nargs="+", default=["pan", "parts"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting")
    parser.add_argument("--temporal-weights", type=float, nargs="+", help="a chain for each (default: the setting's)")
    parser.add_argument(
        "--frame-iterations", type=int, nargs="+", help="and for each of these (default: the setting's share)"
    )
    parser.add_argument("--out", type=Path, default=Path("out/video"))
    args = parser.parse_args()
    if not WEIGHTS.exists():
        print(f"{WEIGHTS} is not there: no pretrained weights to judge pictures with; nothing to do.")
        return
    values = {"backbone": "vgg16", "weights": str(WEIGHTS), "image_size": args.size, "iterations": args.iterations}
    chain = Settings.from_values(values | dict(item.split("=", 1) for item in args.set))
    alone = chain.model_copy(update={"temporal_weight": 0.0})
    chains = [
        chain.model_copy(update={"temporal_weight": w, "frame_iterations": n})
        for w in args.temporal_weights or [chain.temporal_weight]
        for n in args.frame_iterations or [round(args.iterations * FRAME_ITERATIONS / Settings().iterations)]
    ]
    size = (args.size, args.size * 3 // 4)
    clips = {
        "pan": lambda: pan_clip(open_image("content", "tubingen"), args.frames, size),
        "parts": lambda: parts_clip(
            open_image("content", "earthrise"),
            [open_image("content", "chelsea_cat"), open_image("content", "coffee")],
            args.frames,
            size,
        ),
    }
    style = open_image("style", args.style)
    evaluator = Evaluator(WEIGHTS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.frames} frames of {size[0]}x{size[1]}")
    print(f"iterations of the first frame, and of frames alone: {args.iterations}; chain W xN: temporal_weight W, ")
    print("frame_iterations N\n")
    print("| clip | frames | warping error | style ratio | content ratio | iterations | evaluations | s | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.clips:
        clip = clips[name]()
        style_clip(clip, style, alone, evaluator, "alone", args.out)
        for s in chains:
            style_clip(clip, style, s, evaluator, f"chain {s.temporal_weight:g} x{s.frame_iterations}", args.out)
        if clip.backward is not None:
            print(f"|  | DIS flow: median error {flow_error(clip):.2f} px against the true flow |")


if __name__ == "__main__":
    main()
