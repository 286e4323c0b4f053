"""Warping an image along an optical flow: ``out(p) = image(p + flow(p))``, bilinear, edges repeated.

With ``backward = flow(frame_t, frame_{t-1})`` (``nst_core.video.flow``'s convention), ``warp(stylised_{t-1},
backward)`` is the previous stylised frame moved into frame t: the start image and target of the temporal loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["sampling_grid", "warp"]


def warp(image: torch.Tensor, flow: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``image`` (N, C, H, W) float sampled at p + ``flow``(p); ``flow`` is (H, W, 2) of (dx, dy) pixels, or
    (N, H, W, 2) for one flow per image. Points beyond the edge take the nearest edge pixel's value."""
    n, _, h, w = image.shape
    flow = torch.as_tensor(flow, dtype=image.dtype, device=image.device)
    if flow.shape[-3:] != (h, w, 2) or flow.dim() not in (3, 4):
        raise ValueError(f"flow of shape {tuple(flow.shape)} for images of {h}x{w}: (H, W, 2) or (N, H, W, 2) needed")
    grid = sampling_grid(flow).expand(n, h, w, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """``grid_sample``'s grid for p + ``flow``(p), (N, H, W, 2) in [-1, 1].

    With ``align_corners=True``, -1 and 1 are the centres of the first and last pixels, so the centre of pixel x
    (x = 0 ... W-1) is at 2x / (W-1) - 1; a side of one pixel maps to -1 whatever it samples.
    """
    h, w = flow.shape[-3:-1]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x = (xs + flow[..., 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[..., 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack((x, y), dim=-1).reshape(-1, h, w, 2)  # grid_sample wants (x, y), x first
