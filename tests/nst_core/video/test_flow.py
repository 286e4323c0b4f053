"""Optical flow: known shifts recovered by DIS and Farnebäck; the reliability mask's three rules, each on its own."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nst_core.video.flow import optical_flow, reliability
from tests.nst_core.video.samples import SHIFT, shifted_pair, texture


def constant(h: int, w: int, dx: float, dy: float) -> np.ndarray:
    return np.broadcast_to(np.array([dx, dy], dtype=np.float32), (h, w, 2)).copy()


@pytest.mark.parametrize(("method", "tolerance"), [("dis", 0.5), ("farneback", 1.0)])
def test_recovers_a_known_shift(method: str, tolerance: float) -> None:
    a, b = shifted_pair()
    flow = optical_flow(a, Image.fromarray(b), method=method)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    median = np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0)  # the interior: no content enters or leaves
    assert np.abs(median - SHIFT).max() < tolerance


def test_flow_refuses_frames_of_different_sizes() -> None:
    with pytest.raises(ValueError, match="different sizes"):
        optical_flow(texture(16), texture(20))


def test_reliability_of_a_translation() -> None:
    """Frame t is frame t-1 moved by SHIFT: reliable everywhere but the band the content came in over."""
    dx, dy = SHIFT
    mask = reliability(constant(32, 40, -dx, -dy), constant(32, 40, dx, dy))
    expected = np.ones((32, 40), dtype=np.float32)
    expected[:, :dx] = expected[:dy, :] = 0  # p - SHIFT falls outside frame t-1: the left and top bands
    assert mask.dtype == np.float32 and np.array_equal(mask, expected)


def test_reliability_of_estimated_flows() -> None:
    previous, current = shifted_pair()
    mask = reliability(optical_flow(current, previous), optical_flow(previous, current))
    assert mask[8:-8, 8:-8].min() == 1 and mask[:, : SHIFT[0]].max() == 0 and mask[: SHIFT[1]].max() == 0


def test_forward_and_backward_disagreeing() -> None:
    mask = reliability(constant(16, 16, -1, -1), constant(16, 16, 1.5, 1))  # |w̃ + w|² = 0.25 < 0.5: agree
    assert mask[1:, 1:].min() == 1
    mask = reliability(constant(16, 16, -1, -1), constant(16, 16, 2, 1))  # |w̃ + w|² = 1 > 0.5 + 0.01 (2 + 5)
    assert mask.max() == 0


def test_motion_boundary() -> None:
    """Left half moving down by 2, right half still (a shear): forward and backward agree, but the step is a
    motion boundary (its central differences are 1 px/px)."""
    h, w, step = 16, 20, 10
    backward, forward = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 2), np.float32)
    backward[:, :step, 1], forward[:, :step, 1] = -2, 2
    expected = np.ones((h, w), dtype=np.float32)
    expected[:2, :step] = 0  # came in over the top border
    expected[:, step - 1 : step + 1] = 0  # either side of the step
    assert np.array_equal(reliability(backward, forward), expected)


def test_reliability_refuses_mismatched_flows() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        reliability(np.zeros((4, 4, 2)), np.zeros((4, 5, 2)))
