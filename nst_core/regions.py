"""Styles placed by masks: Gatys et al. 2017's guided Gram matrices, and pixels kept as the content's own.

Each style applies where its mask on the content is white. At each style layer, region r's Gram matrix
is that of the features times the region's mask at the layer (``nst_core.masks``), divided by the
mask's area (the sum of its squares) instead of the layer's: a small region matches its style's
statistics as closely as a large one. Its target is the Gram matrix of its style image (or of the
part of it that the style image's own mask selects). Each region's term enters the style loss
weighted by its share of the layer's area, so that a pixel is pushed towards its style as hard as in
a render without masks; pixels that no mask covers are shaped by the content (and total variation)
alone. With a mask that is white everywhere, the Gram matrix, the loss and its gradient are exactly
those of the render without masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from nst_core.backbones import FeatureNet
from nst_core.errors import InputError
from nst_core.losses import gram_matrix
from nst_core.masks import layer_mask, mask_at, mask_problem, shape_problem
from nst_core.settings import Settings

__all__ = ["LevelMasks", "Masks", "Regions", "StyleKey", "regions_on"]

StyleKey = tuple[str, int]  # (layer, region): a style target of a render with masks
Place = tuple[slice, slice]  # rows and columns in a whole layer's features (a tile's share)


@dataclass(frozen=True)
class Masks:
    """A render's masks, opened: where each style goes on the content (one per style), which part of each
    style image its statistics come from (None: all of it), and which pixels stay the content's."""

    styles: tuple[Image.Image, ...] = ()
    sources: tuple[Image.Image | None, ...] = ()
    keep: Image.Image | None = None

    def check(self, content: tuple[int, int], styles: Sequence[tuple[int, int]], s: Settings) -> None:
        """Raise ``InputError`` for a mask that cannot be used with images of these (width, height) sizes."""
        if self.styles and len(self.styles) != len(styles):
            raise InputError(f"{len(self.styles)} style masks for {len(styles)} style images: give one per style")
        if len(self.sources) > len(styles):
            raise InputError(f"{len(self.sources)} style image masks for {len(styles)} style images")
        for number, mask in enumerate(self.styles, start=1):
            if (problem := mask_problem(mask, content, False, s)) is not None:
                raise InputError(f"style mask {number} {problem}")
        for number, (mask, size) in enumerate(zip(self.sources, styles, strict=False), start=1):
            if mask is not None and (problem := mask_problem(mask, size, True, s)) is not None:
                raise InputError(f"style image mask {number} {problem}")
        if self.keep is not None and (problem := shape_problem(self.keep.size, content)) is not None:
            raise InputError(f"keep mask {problem}")

    def at(self, content: tuple[int, int], styles: Sequence[tuple[int, int]]) -> LevelMasks:
        """The masks at a level whose content and style images are of these (width, height) sizes."""
        sources = [*self.sources, *[None] * (len(styles) - len(self.sources))]
        return LevelMasks(
            [mask_at(mask, content) for mask in self.styles],
            [None if mask is None else mask_at(mask, size) for mask, size in zip(sources, styles, strict=True)],
            None if self.keep is None else mask_at(self.keep, content) >= 0.5,
        )


@dataclass(frozen=True)
class LevelMasks:
    """A render's masks at one level, as (H, W) arrays at the size of the image each lies on."""

    styles: list[np.ndarray]  # empty: no masks, the styles blend everywhere
    sources: list[np.ndarray | None]
    keep: np.ndarray | None  # bool


@dataclass(frozen=True)
class Regions:
    """Masks at every style layer of one image, each with its area."""

    masks: dict[str, list[Tensor]]  # layer -> per region, (1, 1, h, w) at the whole layer's size
    areas: dict[str, list[float]]  # layer -> per region, the sum of the mask's squares

    def grams(self, feats: dict[str, Tensor], places: dict[str, Place] | None = None) -> dict[StyleKey, Tensor]:
        """Each region's guided Gram matrix at each layer from ``feats`` (1, C, h, w); from a tile's share of
        the layer (``places``), its share of the matrix."""
        grams = {}
        for name, masks in self.masks.items():
            f = feats[name]
            for r, (mask, area) in enumerate(zip(masks, self.areas[name], strict=True)):
                m = mask if places is None else mask[(..., *places[name])]
                grams[name, r] = gram_matrix(f * m) * (f.shape[-2] * f.shape[-1] / area)
        return grams

    def share(self, name: str, region: int) -> float:
        """The region's share of the layer's positions."""
        mask = self.masks[name][region]
        return self.areas[name][region] / (mask.shape[-2] * mask.shape[-1])


def regions_on(net: FeatureNet, masks: Sequence[np.ndarray], layers: Sequence[str], s: Settings) -> Regions:
    """``masks`` (H, W) of an image of that size, at each of ``layers``, on ``net``'s device."""
    device = net.mean.device
    at_layers: dict[str, list[Tensor]] = {}
    areas: dict[str, list[float]] = {}
    for name in layers:
        windows = net.geometry[name].windows
        arrays = [layer_mask(mask, windows, s.mask_mode, s.mask_threshold) for mask in masks]
        at_layers[name] = [torch.from_numpy(a)[None, None].to(device) for a in arrays]
        areas[name] = [max(float(np.square(a, dtype=np.float64).sum()), 1e-12) for a in arrays]
    return Regions(at_layers, areas)
