"""Temporal consistency (Ruder et al. 2016, "Artistic style transfer for videos"): a frame of a clip is pulled
towards the stylised frames before it, warped into it along the content's optical flow, wherever that flow can be
trusted.

The term is a mean over the frame's pixels and channels, in [0, 1] units, so that ``temporal_weight`` means the
same at any size and on any backbone: ``sum_k mean(c_k * (x - w_k)^2)`` over the previous frames k (t-1, and with
long-term consistency t-2 and t-4), ``w_k`` the warped frame and ``c_k`` its reliability (``long_term_masks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Guide", "long_term_masks", "temporal_loss"]


@dataclass(frozen=True)
class Guide:
    """The stylised frames before this one warped into it (nearest first), and where each is to be followed."""

    warped: Tensor  # (K, 3, H, W) in [0, 1]
    masks: Tensor  # (K, 1, H, W) in [0, 1]

    def at(self, size: tuple[int, int]) -> Guide:
        """The guide at another (height, width): a multi-scale level's."""
        if tuple(self.warped.shape[-2:]) == tuple(size):
            return self
        warped = F.interpolate(self.warped, size=size, mode="bilinear", align_corners=False, antialias=True)
        masks = F.interpolate(self.masks, size=size, mode="area")
        return Guide(warped.clamp(0, 1), masks)

    def to(self, device: torch.device) -> Guide:
        return Guide(self.warped.to(device), self.masks.to(device))

    def start(self, content: Tensor) -> Tensor:
        """The frame's start image: the previous stylised frame where it can be followed, ``content`` where it
        cannot (disoccluded pixels, motion boundaries)."""
        mask = self.masks[:1]
        return mask * self.warped[:1] + (1 - mask) * content


def temporal_loss(image: Tensor, guide: Guide) -> Tensor:
    """The temporal term of a (1, 3, H, W) ``image``: its masked squared difference from each warped frame, a mean
    over pixels and channels, summed over the frames."""
    return (guide.masks * (image - guide.warped).pow(2)).mean(dim=(1, 2, 3)).sum()


def long_term_masks(masks: Sequence[Tensor]) -> Tensor:
    """Ruder et al.'s long-term weights from the reliability ``masks`` of frames t-1, t-2, t-4... (nearest first):
    a pixel follows the nearest frame in which it can be followed, and no farther one (``max(c_j - sum of the
    nearer c, 0)``)."""
    result, nearer = [], torch.zeros_like(masks[0])
    for mask in masks:
        result.append((mask - nearer).clamp(min=0))
        nearer = nearer + mask
    return torch.stack(result)
