"""One level of a render: the images at the level's size, the start image, the targets and the loss.

Multi-scale (``Settings.levels``): the first level is optimised at a small size from the chosen
start image; each next level starts from the previous result upscaled, with content and style
targets recomputed at its own size. A single level is the classic single-scale render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from nst_core.backbones import IMAGENET_MEAN, FeatureNet
from nst_core.color import match_color_statistics, transfer_luminance, with_chroma_of
from nst_core.errors import SettingsError
from nst_core.images import load_image, resize_long_side
from nst_core.losses import LossTerms, content_loss, gram_loss, gram_matrix, layer_weights, style_loss, tv_loss
from nst_core.regions import LevelMasks, Masks, Regions, StyleKey, regions_on
from nst_core.settings import Settings
from nst_core.temporal import Guide, temporal_loss
from nst_core.tensors import to_image, to_tensor

if TYPE_CHECKING:
    from nst_core.tiling import Tiler

__all__ = [
    "Level",
    "blend_weights",
    "complete_terms",
    "finish",
    "initial_image",
    "level_images",
    "level_targets",
    "loss_terms",
    "upscaled",
]

NOISE_STD = 90 / 255  # gordicaleksa's Gaussian init: std 90 on the 0-255 scale


@dataclass(frozen=True)
class Level:
    """One level's inputs and targets, on the device."""

    number: int  # 1 = the smallest
    iterations: int
    content: Tensor  # the content image at this level's size
    content_targets: dict[str, Tensor]  # its features
    # Per style layer, the style images' blended Gram matrix; with masks, per (layer, region) the region's style's.
    grams: dict[str, Tensor] | dict[StyleKey, Tensor]
    content_weights: dict[str, float]  # per layer, normalisation included
    style_weights: dict[str, float] | dict[StyleKey, float]  # as ``grams``
    guide: Guide | None = None  # a clip's frame: the frames before it, at this level's size, on the device
    regions: Regions | None = None  # with masks: where each style applies
    keep: Tensor | None = None  # (1, 1, H, W) bool: pixels that stay the content's own

    def seen(self, image: Tensor) -> Tensor:
        """The pixels that the loss sees: ``image``'s, and the content's where they are kept (no gradient there)."""
        return image if self.keep is None else torch.where(self.keep, self.content, image)


def level_images(
    content: Image.Image, styles: list[Image.Image], size: int, s: Settings, masks: Masks | None = None
) -> tuple[Tensor, list[Tensor], LevelMasks]:
    """Content and styles (colour pre-step applied) resized for one level, as CPU tensors in [0, 1], and the
    masks at their sizes. ``histogram`` colours with masks: each style's masked part matched to its region's."""
    content_t = to_tensor(resize_long_side(content, size))
    style_ts = [to_tensor(resize_long_side(style, s.style_side(size))) for style in styles]
    at = (masks or Masks()).at(_size(content_t), [_size(style) for style in style_ts])
    if s.preserve_color == "histogram":
        regions = at.styles or [None] * len(style_ts)
        style_ts = [
            match_color_statistics(style, content_t, source, region)
            for style, source, region in zip(style_ts, at.sources, regions, strict=True)
        ]
    elif s.preserve_color == "yuv_style":
        style_ts = [with_chroma_of(style, content_t) for style in style_ts]
    return content_t, style_ts, at


def _size(image: Tensor) -> tuple[int, int]:
    """(width, height) of a (1, 3, H, W) image."""
    return image.shape[-1], image.shape[-2]


def initial_image(s: Settings, content: Tensor, style: Tensor) -> Tensor:
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


def upscaled(image: Tensor, content: Tensor) -> Tensor:
    """The previous level's result at the size of this level's ``content``."""
    x = F.interpolate(image.detach(), size=content.shape[-2:], mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


def blend_weights(weights: list[float] | None, n_styles: int) -> list[float]:
    if weights is None:
        return [1 / n_styles] * n_styles
    if len(weights) != n_styles:
        raise SettingsError([("style_weights", f"{len(weights)} blend weights for {n_styles} style images")])
    return [w / sum(weights) for w in weights]


def level_targets(
    net: FeatureNet,
    plan: tuple[int, int],
    content: Tensor,
    styles: list[Tensor],
    blend: list[float],
    s: Settings,
    masks: LevelMasks,
    tiler: Tiler | None = None,
) -> Level:
    """A level's content features, style Grams (blended, or each region's) and normalised layer weights
    (through ``tiler``'s tiles for images larger than a tile)."""
    regions = regions_on(net, masks.styles, s.style_layers, s) if masks.styles else None
    with torch.no_grad():
        feats = _features(net, content, s.content_layers, tiler)
        content_targets = {name: feats[name].float() for name in s.content_layers}
        if regions is None:
            grams, style_weights = _blended_targets(net, styles, blend, s, tiler)
        else:
            grams, style_weights = _region_targets(net, styles, masks.sources, blend, regions, s, tiler)
    keep = None if masks.keep is None else torch.from_numpy(masks.keep)[None, None].to(content.device)
    return Level(
        *plan,
        content,
        content_targets,
        grams,
        layer_weights(s.content_layers, s.content_layer_weights, content_targets, s.normalization, "content"),
        style_weights,
        regions=regions,
        keep=keep,
    )


def _blended_targets(
    net: FeatureNet, styles: list[Tensor], blend: list[float], s: Settings, tiler: Tiler | None
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Per style layer, the blend of the style images' Gram matrices, and its weight."""
    grams: dict[str, Tensor] = {}
    for style, weight in zip(styles, blend, strict=True):
        style_grams = _style_grams(net, style, s.style_layers, tiler)
        for name in s.style_layers:
            gram = weight * style_grams[name]
            grams[name] = gram if name not in grams else grams[name] + gram
    return grams, layer_weights(s.style_layers, s.style_layer_weights, grams, s.normalization, "style")


def _region_targets(
    net: FeatureNet,
    styles: list[Tensor],
    sources: list[np.ndarray | None],
    blend: list[float],
    regions: Regions,
    s: Settings,
    tiler: Tiler | None,
) -> tuple[dict[StyleKey, Tensor], dict[StyleKey, float]]:
    """Per (style layer, region), the Gram matrix of the region's style image (its masked part) and its weight:
    the layer's, times the region's share of the layer and its blend weight (mean 1), so that the style loss
    is a mean over layers of a sum over regions (``gram_loss`` takes a mean over keys: times n)."""
    grams: dict[StyleKey, Tensor] = {}
    for r, (style, source) in enumerate(zip(styles, sources, strict=True)):
        on_style = None if source is None else regions_on(net, [source], s.style_layers, s)
        for name, gram in _style_grams(net, style, s.style_layers, tiler, on_style).items():
            grams[name, r] = gram
    n = len(styles)
    keys = [(name, r) for name in s.style_layers for r in range(n)]
    per_layer = dict(zip(s.style_layers, s.style_layer_weights, strict=True))
    weights = layer_weights(keys, [per_layer[name] for name, _ in keys], grams, s.normalization, "style")
    return grams, {(name, r): w * regions.share(name, r) * blend[r] * n * n for (name, r), w in weights.items()}


def _style_grams(
    net: FeatureNet, style: Tensor, layers: list[str], tiler: Tiler | None, regions: Regions | None = None
) -> dict[str, Tensor]:
    """A style image's Gram matrices at ``layers``: of its region's part, if ``regions`` has its mask."""
    if tiler is not None and tiler.splits(style):
        return tiler.grams(style, layers, regions)
    feats = net(style, layers)
    if regions is None:
        return {name: gram_matrix(feats[name]) for name in layers}
    return {name: gram for (name, _), gram in regions.grams(feats).items()}


def _features(net: FeatureNet, image: Tensor, layers: list[str], tiler: Tiler | None = None) -> dict[str, Tensor]:
    """``image``'s features (its size was checked before the render: ``checks.check_sizes``)."""
    if tiler is not None and tiler.splits(image):
        return tiler.features(image, layers)
    return net(image, layers)


def loss_terms(level: Level, s: Settings, feats: dict[str, Tensor], image: Tensor) -> LossTerms:
    """The loss terms of a (1, 3, H, W) ``image`` whose features are ``feats``."""
    c = content_loss(feats, level.content_targets, level.content_weights)
    if level.regions is None:
        st = style_loss(feats, level.grams, level.style_weights)
    else:
        st = gram_loss(level.regions.grams(feats), level.grams, level.style_weights)
    return complete_terms(level, s, c, st, image)


def complete_terms(level: Level, s: Settings, content: Tensor, style: Tensor, image: Tensor) -> LossTerms:
    """The loss terms from the content and style losses of ``image``: its total variation, a clip frame's temporal
    term, the weighted total."""
    tv = tv_loss(image, s.tv_norm, s.normalization)
    weighted_content, weighted_style, weighted_tv = s.weighted(content, style, tv)
    total = weighted_content + weighted_style + weighted_tv
    if level.guide is None:
        return LossTerms(content, style, tv, total, torch.zeros_like(tv))
    temporal = temporal_loss(image, level.guide)
    return LossTerms(content, style, tv, total + s.temporal_weight * temporal, temporal)


def finish(image: Tensor, level: Level, s: Settings) -> Image.Image:
    """The level's picture of ``image``: colours preserved, kept pixels the content's own."""
    x = image.detach().float().clamp(0, 1)
    if s.preserve_color == "luminance":
        x = transfer_luminance(x, level.content)
    return to_image(level.seen(x))
