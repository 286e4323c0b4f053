"""Loss terms and gradients of large images computed tile by tile, so that memory follows the tile, not the image.

Gram matrices are sums over positions, and so is the content loss. Each feature position of each
layer belongs to exactly one tile (its interior, in input pixels). A tile's crop adds a halo as wide
as the receptive field of the deepest layer in use, so that the features it owns are exactly those
of the whole image (a crop is mirrored by its whole image's margin, ``backbones.mirror_margin``, and
is longer than it, so that one that meets the image's edge is mirrored there as the whole image is;
at its cut edges, the mirror stays in the halo). The forward pass
accumulates the current image's Gram matrices and content error over the tiles without a graph;
the backward pass runs each crop again with a graph and back-propagates its share: the full image's
dL/dG times the tile's part of G, plus its part of the content loss. The crops' input gradients,
halos included, add up to the whole image's gradient (the same sums, in another order). Cost: one
more forward pass per evaluation, plus the halos.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from nst_core.backbones import MIRROR_PX, FeatureNet, Geometry, mirror_margin
from nst_core.device import autocast
from nst_core.losses import content_loss, gram_loss, gram_matrix
from nst_core.regions import Regions, StyleKey

__all__ = ["Tiler"]

Size = tuple[int, int]  # (height, width) of the whole image
Place = tuple[slice, slice]  # rows and columns in the whole image's features


class Targets(Protocol):
    """One image's targets and per-layer weights (``levels.Level`` has them)."""

    content_targets: dict[str, Tensor]
    content_weights: dict[str, float]
    grams: dict[str, Tensor] | dict[StyleKey, Tensor]
    style_weights: dict[str, float] | dict[StyleKey, float]
    regions: Regions | None


@dataclass(frozen=True)
class _Span:
    """A tile's interior ``[start, end)`` along one axis and its crop (the interior plus the halo)."""

    start: int
    end: int
    crop_start: int
    crop_end: int
    last: bool

    def owned(self, stride: int, full: int) -> tuple[slice, slice]:
        """The positions this tile owns at a layer ``stride`` apart (``full`` of them in the whole
        image): in the crop's features, and in the whole image's."""
        first = self.start // stride
        stop = full if self.last else self.end // stride
        offset = self.crop_start // stride
        return slice(first - offset, stop - offset), slice(first, stop)

    @property
    def crop(self) -> slice:
        return slice(self.crop_start, self.crop_end)


def _spans(length: int, tile: int, halo: int, align: int) -> list[_Span]:
    """Interiors ``tile`` long (a remainder shorter than ``align`` joins the last), crops ``halo`` wider."""
    starts = list(range(0, length, tile))
    if len(starts) > 1 and length - starts[-1] < align:
        starts.pop()  # no interior may own no position at the deepest layer
    ends = [*starts[1:], length]
    # Crops longer than the mirrored margin (which a crop can only be mirrored by), so that one that meets the
    # image's edge is mirrored there as the whole image is; a crop starts on the deepest layer's grid (``align``).
    least = min(length, _round_up(MIRROR_PX + 1, align))
    latest = (length - least) // align * align  # the last start of a crop that long
    spans = []
    for a, b in zip(starts, ends, strict=True):
        crop_start = max(0, min(a - halo, latest))
        spans.append(_Span(a, b, crop_start, min(length, max(b + halo, crop_start + least)), b == length))
    return spans


def _round_up(value: int, step: int) -> int:
    return math.ceil(value / step) * step


class Tiler:
    """Runs ``net`` over an image in tiles of ``tile_size`` pixels (rounded up to the network's
    total stride) for the layers ``layers``."""

    def __init__(self, net: FeatureNet, layers: Sequence[str], tile_size: int, device: torch.device, precision: str):
        self.net, self.layers, self.device, self.precision = net, list(layers), device, precision
        self.geometry = {name: net.geometry[name] for name in self.layers}
        self.align = max(g.stride for g in self.geometry.values())
        self.halo = _round_up(max(g.radius for g in self.geometry.values()), self.align)
        self.tile = _round_up(tile_size, self.align)

    def splits(self, image: Tensor) -> bool:
        """Whether ``image`` is larger than one tile."""
        return len(self.tiles(*image.shape[-2:])) > 1

    def tiles(self, height: int, width: int) -> list[tuple[_Span, _Span]]:
        rows = _spans(height, self.tile, self.halo, self.align)
        cols = _spans(width, self.tile, self.halo, self.align)
        return [(r, c) for r in rows for c in cols]

    def _owned(self, crop: Tensor, size: Size, rows: _Span, cols: _Span) -> dict[str, tuple[Tensor, Place]]:
        """The layers' features that the tile owns, from its ``crop`` of an image of ``size`` (H, W),
        each with its place in the whole image's features."""
        with autocast(self.device, self.precision):
            feats = self.net(crop, self.layers, mirror_margin(*size))
        result = {}
        for name, f in feats.items():
            g = self.geometry[name]
            full_h, full_w = g.size(*size)
            (crop_r, full_r), (crop_c, full_c) = rows.owned(g.stride, full_h), cols.owned(g.stride, full_w)
            result[name] = (f[..., crop_r, crop_c], (full_r, full_c))
        return result

    def features(self, image: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """The whole (1, 3, H, W) image's features at ``layers``, assembled from the tiles (no graph)."""
        maps: dict[str, Tensor] = {}
        size = image.shape[-2:]
        with torch.no_grad():
            for rows, cols in self.tiles(*size):
                owned = self._owned(image[..., rows.crop, cols.crop], size, rows, cols)
                for name, (f, (full_r, full_c)) in owned.items():
                    if name in layers:
                        if name not in maps:
                            maps[name] = f.new_empty(*f.shape[:2], *self.geometry[name].size(*size))
                        maps[name][..., full_r, full_c] = f
        return maps

    def grams(self, image: Tensor, layers: Sequence[str], regions: Regions | None = None) -> dict[str, Tensor]:
        """The (1, 3, H, W) image's Gram matrices at ``layers`` (as ``gram_matrix``; of the part that the one
        region of ``regions`` masks, as ``Regions.grams``), summed over the tiles."""
        grams: dict[str, Tensor] = {}
        size = image.shape[-2:]
        with torch.no_grad():
            for rows, cols in self.tiles(*size):
                owned = self._owned(image[..., rows.crop, cols.crop], size, rows, cols)
                feats, places = {n: f for n, (f, _) in owned.items()}, {n: p for n, (_, p) in owned.items()}
                shares = _gram_shares(feats, places, self.geometry, size, layers, regions)
                for name in layers:
                    share = shares[name] if regions is None else shares[name, 0]
                    grams[name] = share if name not in grams else grams[name] + share
        return grams

    def losses(self, images: Tensor, targets: Sequence[Targets]) -> tuple[Tensor, Tensor]:
        """Content and style loss of each of the (B, 3, H, W) ``images`` (as ``content_loss`` and
        ``style_loss``), each (B,), with a tiled backward pass."""
        return _TiledLosses.apply(self, targets, images)

    def shares(self, crop: Tensor, size: Size, rows: _Span, cols: _Span, targets: Sequence[Targets]) -> list[_Share]:
        """Each image's share of the loss from the tile whose (B, 3, h, w) ``crop`` is given."""
        owned = self._owned(crop, size, rows, cols)
        places = {name: place for name, (_, place) in owned.items()}
        shares = []
        for i, t in enumerate(targets):
            feats = {name: f[i : i + 1] for name, (f, _) in owned.items()}
            content_targets = {name: t.content_targets[name][(..., *owned[name][1])] for name in t.content_weights}
            # content_loss averages over the owned positions: weigh each layer by their share of it.
            weights = {
                name: w * feats[name].numel() / t.content_targets[name].numel() for name, w in t.content_weights.items()
            }
            grams = _gram_shares(feats, places, self.geometry, size, t.style_weights, t.regions)
            shares.append(_Share(content_loss(feats, content_targets, weights), grams))
        return shares


@dataclass(frozen=True)
class _Share:
    content: Tensor  # the tile's part of the content loss
    grams: dict[str, Tensor] | dict[StyleKey, Tensor]  # its part of each style layer's (region's) Gram matrix


def _gram_shares(
    feats: dict[str, Tensor],
    places: dict[str, Place],
    geometry: dict[str, Geometry],
    size: Size,
    layers: Iterable[str],
    regions: Regions | None,
) -> dict[str, Tensor] | dict[StyleKey, Tensor]:
    """A tile's share of the Gram matrices at ``layers`` from the (1, C, h, w) ``feats`` it owns at ``places``;
    with ``regions``, of each region's at every style layer."""
    if regions is not None:
        return regions.grams(feats, places)
    return {name: _gram_share(feats[name], geometry[name].size(*size)) for name in layers}


def _gram_share(feats: Tensor, full_size: tuple[int, int]) -> Tensor:
    """``gram_matrix`` of a part of a layer's (1, C, h, w) features, normalised by the whole layer's size."""
    return gram_matrix(feats) * (feats.shape[-2] * feats.shape[-1] / (full_size[0] * full_size[1]))


class _TiledLosses(torch.autograd.Function):
    """(content, style) of each image, the forward and the backward pass tile by tile."""

    @staticmethod
    def forward(ctx, tiler: Tiler, targets: Sequence[Targets], images: Tensor) -> tuple[Tensor, Tensor]:
        content = torch.zeros(len(targets), device=images.device)
        grams: list[dict[str, Tensor]] = [{} for _ in targets]
        size = images.shape[-2:]
        for rows, cols in tiler.tiles(*size):
            for i, share in enumerate(tiler.shares(images[..., rows.crop, cols.crop], size, rows, cols, targets)):
                content[i] += share.content
                for name, g in share.grams.items():
                    grams[i][name] = g if name not in grams[i] else grams[i][name] + g
        style, ctx.grads = [], []  # dL_style/dG per image and layer, for the backward pass
        with torch.enable_grad():
            for t, image_grams in zip(targets, grams, strict=True):
                leaves = {name: g.detach().requires_grad_(True) for name, g in image_grams.items()}
                loss = gram_loss(leaves, t.grams, t.style_weights)
                ctx.grads.append(dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True)))
                style.append(loss.detach())
        ctx.tiler, ctx.targets = tiler, targets
        ctx.save_for_backward(images)
        return content, torch.stack(style)

    @staticmethod
    def backward(ctx, grad_content: Tensor, grad_style: Tensor) -> tuple[None, None, Tensor]:
        (images,) = ctx.saved_tensors
        grad, size = torch.zeros_like(images), images.shape[-2:]
        for rows, cols in ctx.tiler.tiles(*size):
            crop = images[..., rows.crop, cols.crop].detach().requires_grad_(True)
            with torch.enable_grad():
                shares = ctx.tiler.shares(crop, size, rows, cols, ctx.targets)
                total = sum(
                    grad_content[i] * share.content
                    + grad_style[i] * sum((ctx.grads[i][name] * g).sum() for name, g in share.grams.items())
                    for i, share in enumerate(shares)
                )
                (crop_grad,) = torch.autograd.grad(total, crop)
            grad[..., rows.crop, cols.crop] += crop_grad
        return None, None, grad
