"""Gatys et al.'s optimisation: render one content image in the style of one or more images.

Multi-scale (``Settings.levels``): the first level is optimised at a small size from the chosen
start image; each next level starts from the previous result upscaled, with content and style
targets recomputed at its own size. A single level is the classic single-scale render.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from nst_core.backbones import IMAGENET_MEAN, FeatureNet, load_backbone
from nst_core.color import match_color_statistics, transfer_luminance, with_chroma_of
from nst_core.device import autocast, pick_device, pick_precision
from nst_core.errors import InputError, SettingsError
from nst_core.images import load_image, resize_long_side
from nst_core.losses import LossTerms, content_loss, gram_matrix, layer_weights, style_loss, tv_loss
from nst_core.optimize import Objective, diverged, lr_at, make_optimizer
from nst_core.settings import Settings
from nst_core.tensors import to_image, to_tensor

__all__ = ["ImageInput", "RenderResult", "StepInfo", "Timings", "render"]

ImageInput = str | Image.Image  # a path or fsspec URI, or an image already in memory
NOISE_STD = 90 / 255  # gordicaleksa's Gaussian init: std 90 on the 0-255 scale


@dataclass(frozen=True)
class StepInfo:
    """Loss terms (unweighted) and total (weighted) of one iteration; iterations count across levels."""

    iteration: int
    content: float
    style: float
    tv: float
    total: float
    lr: float
    elapsed_s: float  # since the optimisation started
    level: int = 1  # multi-scale level, 1 = the smallest


@dataclass(frozen=True)
class Timings:
    setup_s: float  # reading images, loading the backbone
    optimise_s: float  # every level, its targets included
    ms_per_iteration: float  # over all levels
    evaluations: int  # forward and backward passes (L-BFGS's line search may add some)

    @property
    def ms_per_evaluation(self) -> float:
        return 1000 * self.optimise_s / max(self.evaluations, 1)

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
    snapshots: dict[int, Image.Image] = field(default_factory=dict)  # at their level's size


@dataclass(frozen=True)
class _Level:
    """One level's inputs and targets, on the device."""

    number: int  # 1 = the smallest
    iterations: int
    content: Tensor  # the content image at this level's size
    content_targets: dict[str, Tensor]  # its features
    grams: dict[str, Tensor]  # blended Gram matrices of the style images at this level's size
    content_weights: dict[str, float]  # per layer, normalisation included
    style_weights: dict[str, float]


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
    if not styles:
        raise InputError("at least one style image is needed")
    content_img = _open(content, "content image", settings)
    style_imgs = [_open(style, "style image", settings) for style in styles]
    blend = _blend_weights(settings.style_weights, len(style_imgs))
    layers = list(dict.fromkeys(settings.content_layers + settings.style_layers))
    net = load_backbone(settings.backbone, settings.weights, settings.pooling, str(device))
    net = net.cut(layers, settings.normalization)
    memory = torch.channels_last if settings.channels_last and device.type == "cuda" else torch.contiguous_format
    optimisation = _Optimisation(net.to(memory_format=memory), settings, device, precision, on_step)
    setup_s = time.perf_counter() - start

    image: Tensor | None = None
    for number, (size, iterations) in enumerate(settings.levels(), start=1):
        content_t, style_ts = _level_images(content_img, style_imgs, size, settings)
        if image is None:
            image = _initial_image(settings, content_t, style_ts[0]).to(device)
        else:  # the previous level's result, upscaled
            image = F.interpolate(image, size=content_t.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        with autocast(device, precision):
            level = _level(
                net, (number, iterations), content_t.to(device), [s.to(device) for s in style_ts], blend, settings
            )
        image = optimisation.run(level, image.contiguous(memory_format=memory))

    optimise_s = time.perf_counter() - start - setup_s
    total = settings.total_iterations
    timings = Timings(setup_s, optimise_s, 1000 * optimise_s / total, optimisation.evaluations)
    result = _finish(image, level.content, settings)
    return RenderResult(result, optimisation.log, timings, str(device), precision, settings, optimisation.snapshots)


def _open(image: ImageInput, role: str, s: Settings) -> Image.Image:
    return load_image(image, role, max_pixels=s.max_pixels) if isinstance(image, str) else image.convert("RGB")


def _level_images(
    content: Image.Image, styles: list[Image.Image], size: int, s: Settings
) -> tuple[Tensor, list[Tensor]]:
    """Content and styles (colour pre-step applied) resized for one level, as CPU tensors in [0, 1]."""
    content_t = to_tensor(resize_long_side(content, size))
    style_size = max(1, round(size * s.style_scale))
    style_ts = [to_tensor(resize_long_side(style, style_size)) for style in styles]
    if s.preserve_color == "histogram":
        style_ts = [match_color_statistics(style, content_t) for style in style_ts]
    elif s.preserve_color == "yuv_style":
        style_ts = [with_chroma_of(style, content_t) for style in style_ts]
    return content_t, style_ts


def _initial_image(s: Settings, content: Tensor, style: Tensor) -> Tensor:
    size = content.shape[-2:]
    if s.init == "content":
        return content.clone()
    if s.init == "style":
        return F.interpolate(style, size=size, mode="bilinear", antialias=True)
    if s.init == "noise":
        generator = torch.Generator().manual_seed(s.seed)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        return mean + NOISE_STD * torch.randn(content.shape, generator=generator)
    init = load_image(s.init, "init image", max_pixels=s.max_pixels).resize(
        (size[1], size[0]), Image.Resampling.LANCZOS
    )
    return to_tensor(init)


def _blend_weights(weights: list[float] | None, n_styles: int) -> list[float]:
    if weights is None:
        return [1 / n_styles] * n_styles
    if len(weights) != n_styles:
        raise SettingsError([("style_weights", f"{len(weights)} blend weights for {n_styles} style images")])
    return [w / sum(weights) for w in weights]


def _level(
    net: FeatureNet, plan: tuple[int, int], content: Tensor, styles: list[Tensor], blend: list[float], s: Settings
) -> _Level:
    """A level's content features, blended style Grams and normalised layer weights."""
    with torch.no_grad():
        feats = _features(net, content, s.content_layers, "content image")
        content_targets = {name: feats[name].float() for name in s.content_layers}
        grams: dict[str, Tensor] = {}
        for style, weight in zip(styles, blend, strict=True):
            feats = _features(net, style, s.style_layers, "style image")
            for name in s.style_layers:
                gram = weight * gram_matrix(feats[name])
                grams[name] = gram if name not in grams else grams[name] + gram
    return _Level(
        *plan,
        content,
        content_targets,
        grams,
        layer_weights(s.content_layers, s.content_layer_weights, content_targets, s.normalization, "content"),
        layer_weights(s.style_layers, s.style_layer_weights, grams, s.normalization, "style"),
    )


def _features(net: FeatureNet, image: Tensor, layers: list[str], role: str) -> dict[str, Tensor]:
    try:
        return net(image, layers)
    except RuntimeError as exc:  # pooling or an unpadded convolution ran out of pixels
        if "too small" not in str(exc) and "greater than actual input size" not in str(exc):
            raise
        h, w = image.shape[-2:]
        deepest = list(net.body._modules)[-1]
        raise InputError(
            f"{role} is {w}x{h} px: too small for the layers up to {deepest}; "
            "use a larger image_size, start_size or style_scale"
        ) from exc


class _Optimisation:
    """Runs the levels' optimisation loops and keeps what spans them: the loss log, the snapshots,
    the iteration count, the evaluation count and the clock."""

    def __init__(
        self,
        net: FeatureNet,
        settings: Settings,
        device: torch.device,
        precision: str,
        on_step: Callable[[StepInfo], None] | None,
    ):
        self.net, self.s, self.device, self.precision, self.on_step = net, settings, device, precision, on_step
        self.layers = list(dict.fromkeys(settings.content_layers + settings.style_layers))
        self.log: list[StepInfo] = []
        self.snapshots: dict[int, Image.Image] = {}
        self.iteration = self.evaluations = 0
        self.start = time.perf_counter()
        # Reading losses to the host syncs the device: Adam on an accelerator reads them in chunks.
        self.chunk = 10 if settings.optimizer == "adam" and device.type != "cpu" else 1

    def run(self, level: _Level, image: Tensor) -> Tensor:
        """Optimise ``image`` for the level's iterations; return it, detached."""
        image = image.detach().requires_grad_(True)
        optimizer = make_optimizer(self.s, image)
        objective = Objective(image, lambda: self._loss_terms(level, image))
        pending: list[tuple[int, float, float, LossTerms]] = []  # iteration, lr, elapsed, terms on the device
        for n in range(1, level.iterations + 1):
            self.iteration += 1
            lr = lr_at(self.iteration, self.s.lr, self.s.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            objective.start_step()
            optimizer.step(objective)
            pending.append((self.iteration, lr, time.perf_counter() - self.start, objective.first_terms))
            if len(pending) == self.chunk or n == level.iterations:
                self._record(pending, level.number)
                pending = []
            if self.s.snapshot_every and self.iteration % self.s.snapshot_every == 0:
                self.snapshots[self.iteration] = _finish(image, level.content, self.s)
        self.evaluations += objective.evaluations
        return image.detach()

    def _loss_terms(self, level: _Level, image: Tensor) -> LossTerms:
        """The loss terms at the image's current pixels."""
        s = self.s
        with autocast(self.device, self.precision):
            feats = self.net(image, self.layers)
        c = content_loss(feats, level.content_targets, level.content_weights)
        st = style_loss(feats, level.grams, level.style_weights)
        tv = tv_loss(image, s.tv_norm, s.normalization)
        total = s.content_weight * c + s.style_weight * st + s.tv_weight * tv
        return LossTerms(c, st, tv, total)

    def _record(self, pending: list[tuple[int, float, float, LossTerms]], level: int) -> None:
        """Copy a chunk of loss terms to the host (one sync), stop on a non-finite loss, report."""
        rows = torch.stack([torch.stack(terms) for *_, terms in pending]).cpu().tolist()
        steps = []
        for (iteration, lr, elapsed, _), row in zip(pending, rows, strict=True):
            terms = LossTerms(*row)
            if not all(math.isfinite(value) for value in terms):
                raise diverged(iteration, terms.total)
            steps.append(StepInfo(iteration, **terms._asdict(), lr=lr, elapsed_s=elapsed, level=level))
        self.log += steps
        if self.on_step is not None:
            for step in steps:
                self.on_step(step)


def _finish(image: Tensor, content: Tensor, s: Settings) -> Image.Image:
    x = image.detach().float().clamp(0, 1)
    if s.preserve_color == "luminance":
        x = transfer_luminance(x, content)
    return to_image(x)
