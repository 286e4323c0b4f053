"""Gatys et al.'s optimisation: render one content image in the style of one or more images."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from nst_core.backbones import IMAGENET_MEAN, PIXEL_SCALE, FeatureNet, load_backbone
from nst_core.color import match_color_statistics, transfer_luminance, with_chroma_of
from nst_core.device import autocast, pick_device, pick_precision
from nst_core.errors import InputError, SettingsError
from nst_core.images import load_image, resize_long_side
from nst_core.losses import content_loss, gram_matrix, style_loss, tv_loss
from nst_core.optimize import Objective, diverged, lr_at, make_optimizer
from nst_core.settings import Settings
from nst_core.tensors import to_image, to_tensor

__all__ = ["ImageInput", "RenderResult", "StepInfo", "Timings", "render"]

ImageInput = str | Image.Image  # a path or fsspec URI, or an image already in memory
NOISE_STD = 90 / PIXEL_SCALE  # gordicaleksa's Gaussian init: std 90 on the 0-255 scale


@dataclass(frozen=True)
class StepInfo:
    """Loss terms (unweighted) and total (weighted) of one iteration."""

    iteration: int
    content: float
    style: float
    tv: float
    total: float
    lr: float
    elapsed_s: float  # since the optimisation started


@dataclass(frozen=True)
class Timings:
    setup_s: float  # reading images, loading the backbone, computing targets
    optimise_s: float
    ms_per_iteration: float
    evaluations: int  # forward and backward passes (L-BFGS's line search may add some)

    @property
    def ms_per_evaluation(self) -> float:
        return 1000 * self.optimise_s / self.evaluations

    @property
    def total_s(self) -> float:
        return self.setup_s + self.optimise_s


@dataclass(frozen=True)
class RenderResult:
    image: Image.Image
    losses: list[StepInfo]
    timings: Timings
    device: str
    precision: str
    settings: Settings
    snapshots: dict[int, Image.Image] = field(default_factory=dict)


@dataclass(frozen=True)
class _Targets:
    content: dict[str, Tensor]  # features of the content image
    grams: dict[str, Tensor]  # blended Gram matrices of the style images


def render(
    content: ImageInput,
    styles: Sequence[ImageInput],
    settings: Settings | None = None,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
) -> RenderResult:
    """Optimise an image's pixels to match ``content``'s features and ``styles``' Gram matrices.

    Raises:
        InputError: an image is missing, unreadable, or too small for the chosen layers.
        SettingsError: settings that only the inputs can rule out (blend weights, device).
        WeightsNotFoundError, WeightsError: the backbone's weights are missing or do not fit.
    """
    settings = settings or Settings()
    start = time.perf_counter()
    device = pick_device(settings.device)
    precision = pick_precision(settings.precision, device)
    content_t, style_ts, init_t = _load_inputs(content, styles, settings)
    blend = _blend_weights(settings.style_weights, len(style_ts))
    layers = list(dict.fromkeys(settings.content_layers + settings.style_layers))
    net = load_backbone(settings.backbone, settings.weights, settings.pooling, str(device)).cut(layers)
    memory = torch.channels_last if settings.channels_last and device.type == "cuda" else torch.contiguous_format
    net = net.to(memory_format=memory)
    content_t, init_t = content_t.to(device), init_t.to(device)
    with autocast(device, precision):
        targets = _targets(net, content_t, [s.to(device) for s in style_ts], blend, settings)
    image = init_t.contiguous(memory_format=memory).requires_grad_(True)
    setup_s = time.perf_counter() - start

    def finish(x: Tensor) -> Image.Image:
        return _finish(x, content_t, settings)

    losses, snapshots, evaluations = _optimise(net, image, targets, settings, device, precision, on_step, finish)
    optimise_s = time.perf_counter() - start - setup_s
    timings = Timings(setup_s, optimise_s, 1000 * optimise_s / settings.iterations, evaluations)
    return RenderResult(finish(image), losses, timings, str(device), precision, settings, snapshots)


def _load_inputs(content: ImageInput, styles: Sequence[ImageInput], s: Settings) -> tuple[Tensor, list[Tensor], Tensor]:
    """Content, styles (colour pre-step applied) and initial image as CPU tensors in [0, 1]."""
    if not styles:
        raise InputError("at least one style image is needed")
    content_img = resize_long_side(_open(content, "content image", s), s.image_size)
    style_size = max(1, round(s.image_size * s.style_scale))
    content_t = to_tensor(content_img)
    style_ts = [to_tensor(resize_long_side(_open(style, "style image", s), style_size)) for style in styles]
    if s.preserve_color == "histogram":
        style_ts = [match_color_statistics(style, content_t) for style in style_ts]
    elif s.preserve_color == "yuv_style":
        style_ts = [with_chroma_of(style, content_t) for style in style_ts]
    return content_t, style_ts, _initial_image(s, content_img, content_t, style_ts[0])


def _open(image: ImageInput, role: str, s: Settings) -> Image.Image:
    return load_image(image, role, max_pixels=s.max_pixels) if isinstance(image, str) else image.convert("RGB")


def _initial_image(s: Settings, content_img: Image.Image, content: Tensor, style: Tensor) -> Tensor:
    size = content.shape[-2:]
    if s.init == "content":
        return content.clone()
    if s.init == "style":
        return F.interpolate(style, size=size, mode="bilinear", antialias=True)
    if s.init == "noise":
        generator = torch.Generator().manual_seed(s.seed)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        return mean + NOISE_STD * torch.randn(content.shape, generator=generator)
    init = load_image(s.init, "init image", max_pixels=s.max_pixels).resize(content_img.size, Image.Resampling.LANCZOS)
    return to_tensor(init)


def _blend_weights(weights: list[float] | None, n_styles: int) -> list[float]:
    if weights is None:
        return [1 / n_styles] * n_styles
    if len(weights) != n_styles:
        raise SettingsError([("style_weights", f"{len(weights)} blend weights for {n_styles} style images")])
    return [w / sum(weights) for w in weights]


def _targets(net: FeatureNet, content: Tensor, styles: list[Tensor], blend: list[float], s: Settings) -> _Targets:
    """Content features and blended style Grams, computed once before the loop."""
    with torch.no_grad():
        content_feats = _features(net, content, s.content_layers, "content image")
        grams: dict[str, Tensor] = {}
        for style, weight in zip(styles, blend, strict=True):
            feats = _features(net, style, s.style_layers, "style image")
            for name in s.style_layers:
                gram = weight * gram_matrix(feats[name])
                grams[name] = gram if name not in grams else grams[name] + gram
    return _Targets({name: content_feats[name].float() for name in s.content_layers}, grams)


def _features(net: FeatureNet, image: Tensor, layers: list[str], role: str) -> dict[str, Tensor]:
    try:
        return net(image, layers)
    except RuntimeError as exc:  # pooling or an unpadded convolution ran out of pixels
        if "too small" not in str(exc) and "greater than actual input size" not in str(exc):
            raise
        h, w = image.shape[-2:]
        deepest = list(net.body._modules)[-1]
        raise InputError(
            f"{role} is {w}x{h} px: too small for the layers up to {deepest}; use a larger image_size or style_scale"
        ) from exc


def _optimise(
    net: FeatureNet,
    image: Tensor,
    targets: _Targets,
    s: Settings,
    device: torch.device,
    precision: str,
    on_step: Callable[[StepInfo], None] | None,
    finish: Callable[[Tensor], Image.Image],
) -> tuple[list[StepInfo], dict[int, Image.Image], int]:
    """The optimisation loop; returns the per-iteration loss log and any snapshots."""
    optimizer = make_optimizer(s, image)
    layers = list(dict.fromkeys(s.content_layers + s.style_layers))
    content_w = dict(zip(s.content_layers, s.content_layer_weights, strict=True))
    style_w = dict(zip(s.style_layers, s.style_layer_weights, strict=True))

    def loss_terms() -> Tensor:
        with autocast(device, precision):
            feats = net(image, layers)
        c, st = content_loss(feats, targets.content, content_w), style_loss(feats, targets.grams, style_w)
        tv = tv_loss(image, s.tv_norm)
        total = s.content_weight * c + s.style_weight * st + s.tv_weight * tv
        return torch.stack([c, st, tv, total])

    objective = Objective(image, loss_terms)
    # Reading losses to the host syncs the device: Adam on an accelerator reads them in chunks.
    chunk = 10 if s.optimizer == "adam" and device.type != "cpu" else 1
    log: list[StepInfo] = []
    pending: list[tuple[int, float, float, Tensor]] = []  # iteration, lr, elapsed, terms on the device
    snapshots: dict[int, Image.Image] = {}
    start = time.perf_counter()
    for iteration in range(1, s.iterations + 1):
        lr = lr_at(iteration, s.lr, s.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        objective.start_step()
        optimizer.step(objective)
        pending.append((iteration, lr, time.perf_counter() - start, objective.first_terms))
        if len(pending) == chunk or iteration == s.iterations:
            log += _read_losses(pending)
            if on_step is not None:
                for info in log[-len(pending) :]:
                    on_step(info)
            pending.clear()
        if s.snapshot_every and iteration % s.snapshot_every == 0:
            snapshots[iteration] = finish(image)
    return log, snapshots, objective.evaluations


def _read_losses(pending: list[tuple[int, float, float, Tensor]]) -> list[StepInfo]:
    """Copy a chunk of loss terms to the host (one sync); stop on a non-finite loss."""
    rows = torch.stack([terms for *_, terms in pending]).cpu().tolist()
    for (iteration, *_), row in zip(pending, rows, strict=True):
        if not all(math.isfinite(value) for value in row):
            raise diverged(iteration, row[3])
    return [StepInfo(it, *row, lr, elapsed) for (it, lr, elapsed, _), row in zip(pending, rows, strict=True)]


def _finish(image: Tensor, content: Tensor, s: Settings) -> Image.Image:
    x = image.detach().float().clamp(0, 1)
    if s.preserve_color == "luminance":
        x = transfer_luminance(x, content)
    return to_image(x)
