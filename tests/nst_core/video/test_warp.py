"""Warping: out(p) = image(p + flow(p)); integer shifts exact, sub-pixel ones interpolated, edges repeated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nst_core.video.flow import optical_flow, reliability
from nst_core.video.warp import warp
from tests.nst_core.video.samples import shifted_pair


def flow_of(h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    return torch.tensor([dx, dy]).expand(h, w, 2)


def test_integer_translation_is_exact() -> None:
    image = torch.rand(2, 3, 12, 17, generator=torch.Generator().manual_seed(0))
    out = warp(image, flow_of(12, 17, 2, 1))
    assert out.shape == image.shape
    torch.testing.assert_close(out[..., :-1, :-2], image[..., 1:, 2:], atol=1e-6, rtol=0)  # where p + flow is inside
    torch.testing.assert_close(out[..., -1, :-2], image[..., -1, 2:], atol=1e-6, rtol=0)  # below: the last row again


def test_zero_flow_is_the_identity() -> None:
    image = torch.rand(1, 3, 9, 14, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(warp(image, np.zeros((9, 14, 2), np.float32)), image, atol=1e-6, rtol=0)


def test_sub_pixel_shift_interpolates_a_ramp() -> None:
    """Ramps x + 10y: moving 0.25 px right and 0.5 px down samples x + 0.25 + 10 (y + 0.5) inside, the edge beyond."""
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    ramp = (xs + 10 * ys)[None, None]
    out = warp(ramp, flow_of(6, 8, 0.25, 0.5))[0, 0]
    torch.testing.assert_close(out[:-1, :-1], ramp[0, 0, :-1, :-1] + 0.25 + 5, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[-1, :-1], ramp[0, 0, -1, :-1] + 0.25, atol=1e-5, rtol=0)  # border: row 5 again


def test_one_flow_per_image() -> None:
    image = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(2))
    flows = torch.stack([flow_of(5, 6, 0, 0), flow_of(5, 6, 1, 0)])
    out = warp(image, flows)
    torch.testing.assert_close(out[0], image[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, ..., :-1], image[1, ..., 1:], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"\(H, W, 2\) or \(N, H, W, 2\)"):
        warp(image, torch.zeros(5, 5, 2))


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)


def test_backward_flow_brings_the_previous_frame_into_the_current_one() -> None:
    previous, current = shifted_pair()
    backward = optical_flow(current, previous)
    warped = warp(to_tensor(previous), backward)
    reliable = torch.from_numpy(reliability(backward, optical_flow(previous, current))).bool()
    error = (warped - to_tensor(current)).abs().mean(dim=1)[0]  # (H, W)
    assert error[reliable].mean() < 2 / 255 and error[~reliable].mean() > error[reliable].mean()
