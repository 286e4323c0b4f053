"""Loss terms as pure functions.

Every term is a layer-weighted mean over its layers. With ``normalization="target"`` (the default)
each layer's term is relative to its target, so a weight means the same on any backbone, weights
file and image size:

- content: ||F - F_c||^2 / ||F_c||^2 per layer (F: the layer's features);
- style: ||G - G_s||^2 / ||G_s||^2 per layer, G the Gram matrix divided by C*H*W;
- total variation: the mean absolute (l1) or squared (l2) difference of neighbouring pixels in [0, 1].

With ``normalization="reference"`` (gordicaleksa/pytorch-neural-style-transfer's terms): content is
the features' mean squared error, style the summed squared Gram difference, and total variation a
sum over pixels on the 0-255 scale. The normalisation is carried by the per-layer weights
(``layer_weights``), so the loss functions themselves have one form.
Gatys et al. use 1/(4 N^2 M^2) on unnormalised Grams and sum over layers instead.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossTerms", "content_loss", "gram_loss", "gram_matrix", "layer_weights", "style_loss", "tv_loss"]

REFERENCE_PIXEL_SCALE = 255.0  # the reference measures total variation on the 0-255 scale
_TINY = 1e-12  # a target that is all zeros (a black image, a dead layer) must not divide by zero


class LossTerms(NamedTuple):
    """One evaluation's terms (unweighted) and their weighted total, as tensors or floats (``temporal``: a clip's
    frame, ``nst_core.temporal``)."""

    content: Tensor
    style: Tensor
    tv: Tensor
    total: Tensor
    temporal: Tensor


class _Gram(torch.autograd.Function):
    """F @ F.T whose backward is one matrix product, (dG + dG.T) @ F, not autograd's two."""

    @staticmethod
    def forward(ctx, f: Tensor) -> Tensor:
        ctx.save_for_backward(f)
        return f @ f.T

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (f,) = ctx.saved_tensors
        return (grad + grad.T) @ f


def gram_matrix(feats: Tensor) -> Tensor:
    """Normalised Gram matrix of (1, C, H, W) features: (C, C), divided by C*H*W, in float32."""
    n, c = feats.shape[:2]
    if n != 1:
        raise ValueError(f"gram_matrix takes the features of one image, (1, C, H, W), got {tuple(feats.shape)}")
    if feats.is_contiguous() or not feats.is_contiguous(memory_format=torch.channels_last):
        f = feats.reshape(c, -1)  # (C, H*W); reshape, not feats[0], whose backward fills a whole zero tensor
    else:
        f = feats.permute(0, 2, 3, 1).reshape(-1, c).T  # (C, H*W), a view of channels_last memory
    f = f.float()
    with torch.autocast(f.device.type, enabled=False):  # bf16 sums over H*W lose too much
        return _Gram.apply(f) / f.numel()


def layer_weights(
    layers: list[str], weights: list[float], targets: dict[str, Tensor], normalization: str, kind: str
) -> dict[str, float]:
    """Per-layer weights for ``content_loss`` (``kind`` "content") or ``style_loss`` ("style").

    With ``normalization="target"`` each weight is divided by the same reduction of the layer's
    target that the loss applies to its error (a mean for content, a sum for style), which turns
    each layer's term into a relative error."""
    if normalization == "reference":
        return dict(zip(layers, weights, strict=True))
    result = {}
    for name, weight in zip(layers, weights, strict=True):
        target = targets[name].float()
        # content_loss takes a mean, style_loss a sum: divide each by the same reduction of the target.
        norm = target.pow(2).mean() if kind == "content" else target.pow(2).sum()
        result[name] = weight / max(norm.item(), _TINY)
    return result


def content_loss(feats: dict[str, Tensor], targets: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """Layer-weighted mean of per-layer feature MSEs."""
    terms = [w * F.mse_loss(feats[name].float(), targets[name]) for name, w in weights.items()]
    return torch.stack(terms).mean()


def style_loss(feats: dict[str, Tensor], target_grams: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """Layer-weighted mean of per-layer summed squared Gram differences."""
    return gram_loss({name: gram_matrix(feats[name]) for name in weights}, target_grams, weights)


def gram_loss(grams: dict[str, Tensor], target_grams: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """``style_loss`` from the Gram matrices themselves (``tiling`` sums them over tiles)."""
    terms = [w * (grams[name] - target_grams[name]).pow(2).sum() for name, w in weights.items()]
    return torch.stack(terms).mean()


def tv_loss(image: Tensor, norm: str, normalization: str = "target") -> Tensor:
    """Total variation of a (1, 3, H, W) image in [0, 1]: a mean per pixel, or the reference's sum at 0-255."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx, dy = (dx.abs(), dy.abs()) if norm == "l1" else (dx.pow(2), dy.pow(2))
    if normalization == "reference":
        scale = REFERENCE_PIXEL_SCALE if norm == "l1" else REFERENCE_PIXEL_SCALE**2
        return scale * (dx.sum() + dy.sum())
    return dx.mean() + dy.mean()
