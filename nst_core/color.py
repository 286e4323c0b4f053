"""Colour preservation (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", 2016).

All functions take and return (1, 3, H, W) RGB tensors in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["match_color_statistics", "rgb_to_yuv", "transfer_luminance", "with_chroma_of", "yuv_to_rgb"]

# BT.601 (analogue YUV), the colour space neural-style's original_colors uses.
_RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])


def rgb_to_yuv(image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YUV.to(image), image)


def yuv_to_rgb(image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YUV).to(image), image)


def with_chroma_of(luma_source: Tensor, chroma_source: Tensor) -> Tensor:
    """Y of ``luma_source`` with U and V of ``chroma_source`` (resized to match), clamped to [0, 1]."""
    chroma = F.interpolate(chroma_source, size=luma_source.shape[-2:], mode="bilinear", antialias=True)
    yuv = torch.cat([rgb_to_yuv(luma_source)[:, :1], rgb_to_yuv(chroma)[:, 1:]], dim=1)
    return yuv_to_rgb(yuv).clamp(0, 1)


def transfer_luminance(output: Tensor, content: Tensor) -> Tensor:
    """``luminance`` mode: the output's luminance with the content's chroma (applied after transfer)."""
    return with_chroma_of(output, content)


def match_color_statistics(
    source: Tensor, target: Tensor, source_mask: np.ndarray | None = None, target_mask: np.ndarray | None = None
) -> Tensor:
    """``histogram`` mode: an affine colour map giving ``source`` the mean and covariance of ``target`` (each
    taken where its (H, W) mask weighs it, if given).

    x' = A (x - mu_s) + mu_t with A = C_t^(1/2) C_s^(-1/2) (the paper's "image analogies" variant).
    """
    src, tgt = source[0].flatten(1).double(), target[0].flatten(1).double()  # (3, H*W)
    (mu_s, cov_s), (mu_t, cov_t) = _moments(src, source_mask), _moments(tgt, target_mask)
    eye = 1e-5 * torch.eye(3, dtype=src.dtype, device=src.device)
    a = _sqrtm(cov_t + eye) @ torch.linalg.inv(_sqrtm(cov_s + eye))
    out = a @ (src - mu_s) + mu_t
    return out.to(source.dtype).view_as(source).clamp(0, 1)


def _moments(pixels: Tensor, mask: np.ndarray | None) -> tuple[Tensor, Tensor]:
    """Mean (3, 1) and covariance (3, 3) of (3, N) ``pixels``, weighted by ``mask``."""
    if mask is None:
        return pixels.mean(1, keepdim=True), torch.cov(pixels)
    weights = torch.from_numpy(mask).flatten().to(pixels)
    return (pixels * weights).sum(1, keepdim=True) / weights.sum(), torch.cov(pixels, aweights=weights)


def _sqrtm(cov: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
