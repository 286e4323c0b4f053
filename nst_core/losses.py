"""Loss terms as pure functions, with gordicaleksa/pytorch-neural-style-transfer's normalisations.

- content: mean squared error of the features, averaged over layers (each times its layer weight);
- style: Gram matrices divided by C*H*W, summed squared error per layer, averaged over layers;
- total variation: summed absolute (l1) or squared (l2) neighbour differences on the 0-255 scale.
Gatys et al. use 1/(4 N^2 M^2) on unnormalised Grams and sum over layers instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_core.backbones import PIXEL_SCALE

__all__ = ["content_loss", "gram_matrix", "style_loss", "tv_loss"]


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
    f = feats[0].flatten(1).float()  # (C, H*W)
    with torch.autocast(f.device.type, enabled=False):  # bf16 sums over H*W lose too much
        return _Gram.apply(f) / f.numel()


def content_loss(feats: dict[str, Tensor], targets: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """Layer-weighted mean of per-layer feature MSEs."""
    terms = [w * F.mse_loss(feats[name].float(), targets[name]) for name, w in weights.items()]
    return torch.stack(terms).mean()


def style_loss(feats: dict[str, Tensor], target_grams: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """Layer-weighted mean of per-layer summed squared Gram differences."""
    terms = [w * (gram_matrix(feats[name]) - target_grams[name]).pow(2).sum() for name, w in weights.items()]
    return torch.stack(terms).mean()


def tv_loss(image: Tensor, norm: str) -> Tensor:
    """Total variation of a (1, 3, H, W) image in [0, 1], measured on the 0-255 scale."""
    dx = (image[..., :, 1:] - image[..., :, :-1]) * PIXEL_SCALE
    dy = (image[..., 1:, :] - image[..., :-1, :]) * PIXEL_SCALE
    if norm == "l1":
        return dx.abs().sum() + dy.abs().sum()
    return dx.pow(2).sum() + dy.pow(2).sum()
