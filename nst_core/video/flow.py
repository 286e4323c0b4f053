"""Optical flow between frames (OpenCV: DIS or Farnebäck) and where it can be trusted (Ruder et al. 2016).

Conventions: a frame is an (H, W, 3) uint8 RGB numpy array or a PIL image. A flow is a float32 (H, W, 2) array of
(dx, dy) in pixels, and ``flow(a, b)`` gives, for each pixel p of ``a``, the displacement to where it is in ``b``:
``a(p) ≈ b(p + flow(p))`` (OpenCV's own convention). Pixel p = (x, y) is the centre of column x, row y.

For frame t, ``backward = flow(frame_t, frame_{t-1})`` carries frame t-1 (stylised) into frame t (``warp``), and
``forward = flow(frame_{t-1}, frame_t)`` checks it. ``reliability`` follows Ruder et al.'s consistencyChecker
(manuelruder/artistic-videos), except that its mask stays binary: the original smooths it with a Gaussian.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from PIL import Image

__all__ = ["FlowMethod", "optical_flow", "reliability"]

FlowMethod = Literal["dis", "farneback"]
Frame = np.ndarray | Image.Image

# Farnebäck: a 5-level pyramid halving each time (motions of tens of pixels), 15 px windows, OpenCV's documented
# polynomial expansion for poly_n=5 (sigma 1.2).
FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 5,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


def optical_flow(a: Frame, b: Frame, method: FlowMethod = "dis") -> np.ndarray:
    """``flow(a, b)``, float32 (H, W, 2), computed on greyscale: see the module docstring for the convention.

    Raises:
        ValueError: the frames differ in size, or ``method`` is unknown.
    """
    grey_a, grey_b = _grey(a), _grey(b)
    if grey_a.shape != grey_b.shape:
        raise ValueError(f"optical flow between frames of different sizes: {grey_a.shape} and {grey_b.shape}")
    if method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey_a, grey_b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(grey_a, grey_b, None, **FARNEBACK)
    else:
        raise ValueError(f"unknown optical flow method {method!r}: use 'dis' or 'farneback'")
    return np.asarray(flow, dtype=np.float32)


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Float32 (H, W): 1 where frame t's pixel can be traced back to frame t-1, else 0.

    ``backward = flow(frame_t, frame_{t-1})``, ``forward = flow(frame_{t-1}, frame_t)``. With w̃ = backward(p) and
    w = forward(p + w̃) (bilinear), pixel p is unreliable where
    (a) the two disagree: |w̃ + w|² > 0.01 (|w̃|² + |w|²) + 0.5 (occluded in frame t-1);
    (b) p + w̃ falls outside frame t-1 (came in over the border);
    (c) it is on a motion boundary: |∇w̃_x|² + |∇w̃_y|² > 0.01 |w̃|² + 0.002 (central differences).
    """
    if backward.shape != forward.shape or backward.ndim != 3 or backward.shape[2] != 2:
        raise ValueError(f"flows must both be (H, W, 2), got {backward.shape} and {forward.shape}")
    backward, forward = backward.astype(np.float32), forward.astype(np.float32)
    h, w = backward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs + backward[..., 0], ys + backward[..., 1]  # where p is in frame t-1
    outside = (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
    back_there = cv2.remap(forward, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # w, (H, W, 2)
    b2, f2 = _sq(backward), _sq(back_there)
    disagree = _sq(backward + back_there) > 0.01 * (b2 + f2) + 0.5
    gradients = np.gradient(backward, axis=(0, 1))  # d/dy, d/dx, each (H, W, 2): central differences inside
    boundary = _sq(gradients[0]) + _sq(gradients[1]) > 0.01 * b2 + 0.002
    return (~(disagree | outside | boundary)).astype(np.float32)


def _sq(vectors: np.ndarray) -> np.ndarray:
    """Squared length along the last axis."""
    return np.sum(vectors * vectors, axis=-1)


def _grey(frame: Frame) -> np.ndarray:
    """8-bit greyscale (H, W) of an RGB frame."""
    pixels = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"a frame must be (H, W, 3) uint8 RGB, got {pixels.shape} {pixels.dtype}")
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
