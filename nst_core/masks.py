"""Masks as numbers: an image's mask at the render's size, and at each layer's (Gatys et al. 2017), without torch.

A mask is greyscale, white (1) where it applies, and may be soft. It is read at the render's size
with Pillow's bilinear filter (antialiased when it shrinks), and brought to a layer's size in one of
two modes:

- ``simple``: the mean of the mask over each position's share of the image (Pillow's box filter), so
  that soft masks stay soft and regions blend without seams;
- ``inside``: only the positions that see the region alone: the mask is made binary at the threshold,
  then eroded through every convolution and pooling window up to the layer (the image is mirrored at
  its edges, as the network sees it).

``stylebatch validate`` and the engine share these functions, so a mask that the render would refuse
is refused by ``validate`` with the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from nst_core.catalogue import Window, layer_names, windows_to
from nst_core.images import long_side_size
from nst_core.settings import Settings

__all__ = ["layer_mask", "mask_at", "mask_problem", "shape_problem"]

ASPECT_TOLERANCE = 0.01  # a mask's width/height may differ this much (relatively) from its image's


def mask_at(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``image``'s greyscale as a float32 (H, W) array in [0, 1] at ``size`` (width, height)."""
    grey = image.convert("L").convert("F").resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(grey, dtype=np.float32) / 255, 0, 1)


def layer_mask(mask: np.ndarray, windows: Sequence[Window], mode: str, threshold: float) -> np.ndarray:
    """``mask`` (H, W) at the size of the layer that ``windows`` lead to (see the module's text for ``mode``)."""
    if mode == "simple":
        height, width = mask.shape
        for window in windows:
            height, width = window.out(height), window.out(width)
        box = Image.fromarray(mask, mode="F").resize((width, height), Image.Resampling.BOX)
        return np.array(box, dtype=np.float32)
    m = (mask >= threshold).astype(np.float32)
    for window in windows:
        m = _erode(_erode(m, window, axis=0), window, axis=1)
    return m


def _erode(m: np.ndarray, w: Window, axis: int) -> np.ndarray:
    """The minimum over each of ``w``'s windows along ``axis``: the padding is the mirror image, and a ceil-mode
    window's part beyond the edge is left out, as a pooling layer leaves it out."""
    m = np.moveaxis(m, axis, -1)
    n = w.out(m.shape[-1])
    if w.padding:
        m = np.pad(m, [(0, 0), (w.padding, w.padding)], mode="reflect")
    span = w.dilation * (w.kernel - 1) + 1
    short = (n - 1) * w.stride + span - m.shape[-1]  # a ceil-mode window that reaches past the edge
    if short > 0:
        m = np.pad(m, [(0, 0), (0, short)], constant_values=1)
    windows = sliding_window_view(m, span, axis=-1)[:, : (n - 1) * w.stride + 1 : w.stride, :: w.dilation]
    return np.moveaxis(windows.min(axis=-1), -1, axis)


def shape_problem(mask: tuple[int, int], image: tuple[int, int]) -> str | None:
    """Why a mask of ``mask`` (width, height) px cannot lie on an image of ``image`` px: another aspect ratio (a
    pixel of rounding, or 1 %, is allowed)."""
    scaled = long_side_size(mask, max(image))
    if all(abs(a - b) <= max(1, ASPECT_TOLERANCE * b) for a, b in zip(scaled, image, strict=True)):
        return None
    return f"is {mask[0]}x{mask[1]} px, not the aspect ratio of its image ({image[0]}x{image[1]} px)"


def mask_problem(mask: Image.Image, image: tuple[int, int], style: bool, s: Settings) -> str | None:
    """Why ``mask`` cannot place a style on an image of ``image`` (width, height) px (a style image's, if
    ``style``): another aspect ratio, or nothing left of it at the deepest style layer of the smallest level."""
    if (problem := shape_problem(mask.size, image)) is not None:
        return problem
    side = s.levels()[0][0]
    size = long_side_size(image, s.style_side(side) if style else side)
    deepest = max(s.style_layers, key=layer_names(s.backbone).index)
    at_layer = layer_mask(mask_at(mask, size), windows_to(s.backbone, deepest), s.mask_mode, s.mask_threshold)
    if not at_layer.any():
        return (
            f"is empty at layer {deepest} at {side} px (mode {s.mask_mode}): nothing there to style; "
            "use a larger region, image_size or start_size, or mask_mode simple"
        )
    return None
