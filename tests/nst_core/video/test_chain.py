"""Chains of frames: the temporal term, long-term weights, the warped start, and frames that follow each other."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import BatchJob, Settings, render, render_batch
from nst_core.temporal import Guide, long_term_masks, temporal_loss
from nst_core.video.chain import frame_job, frame_settings, motion, previous_frames, render_clip
from nst_core.video.warp import warp
from tests.nst_core.video.samples import texture

SHIFT = 2  # px right per frame


def panning(frames: int, size: int = 48) -> list[Image.Image]:
    """A texture moving ``SHIFT`` px right per frame (new texture coming in on the left)."""
    wide = texture(size + SHIFT * frames, seed=3)
    return [Image.fromarray(wide[:size, SHIFT * (frames - t) : SHIFT * (frames - t) + size]) for t in range(frames)]


def small(**values: object) -> Settings:
    base = {"weights": "random:0", "image_size": 48, "iterations": 6, "device": "cpu", "frame_iterations": 4}
    return Settings.from_values(base | {"content_layers": "relu2_1", "style_layers": "relu1_1|relu2_1"} | values)


STYLE = Image.fromarray(texture(40, seed=9))


def test_the_temporal_term_is_zero_on_the_warped_frame_and_counts_only_where_followed() -> None:
    image = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    other = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    ones, zeros = torch.ones(1, 1, 8, 10), torch.zeros(1, 1, 8, 10)
    assert temporal_loss(image, Guide(image, ones)).item() == 0
    assert temporal_loss(image, Guide(other, zeros)).item() == 0
    expected = (image - other).pow(2).mean()  # a mean over pixels and channels: the same at any size
    torch.testing.assert_close(temporal_loss(image, Guide(other, ones)), expected)
    half = torch.cat([ones[..., :5], zeros[..., 5:]], dim=-1)
    torch.testing.assert_close(temporal_loss(image, Guide(other, half)), (image - other)[..., :5].pow(2).sum() / 240)


def test_long_term_weights_follow_the_nearest_frame_that_can_be_followed() -> None:
    near, mid, far = (
        torch.tensor([[a, b, c, d]], dtype=torch.float32)
        for a, b, c, d in [(1, 0, 0, 0)] * 1
        + [
            (1, 1, 0, 0),
            (1, 1, 1, 0),
        ]
    )
    weights = long_term_masks([near, mid, far])
    assert weights.tolist() == [[[1, 0, 0, 0]], [[0, 1, 0, 0]], [[0, 0, 1, 0]]]
    assert previous_frames(0, long_term=True) == []
    assert previous_frames(5, long_term=True) == [4, 3, 1]
    assert previous_frames(2, long_term=True) == [1, 0]
    assert previous_frames(5, long_term=False) == [4]


def test_frames_after_the_first_take_frame_iterations_at_full_size() -> None:
    s = small(start_size=24, level_iterations=3)
    assert frame_settings(s, 0) is s
    assert frame_settings(s.model_copy(update={"temporal_weight": 0.0}), 3).levels() == s.levels()
    assert frame_settings(s, 3).levels() == [(48, 4)]


def test_a_chain_without_the_temporal_term_renders_each_frame_as_a_still() -> None:
    frames = panning(3)
    s = small(temporal_weight=0)
    chain = render_clip(frames, [STYLE], s)
    for frame, result in zip(frames, chain, strict=True):
        alone = render(frame, [STYLE], s)
        assert np.array_equal(np.asarray(result.image), np.asarray(alone.image))
        assert all(step.temporal == 0 for step in result.losses)


def test_a_frame_starts_from_the_one_before_it_warped() -> None:
    """With no iterations to speak of (Adam, lr ~0), frame 1 is its start: frame 0's result moved along the flow."""
    frames = panning(2)
    s = small(optimizer="adam", lr=1e-9, iterations=1, frame_iterations=1)
    first = render(frames[0], [STYLE], s)
    m = motion(frames[1], frames[0])
    [second] = render_batch([frame_job(BatchJob(frames[1], [STYLE], s), 1, [(first.image, m)])])
    moved = np.asarray(first.image, dtype=np.float64)[:, :-SHIFT]  # the interior, moved SHIFT px right
    got = np.asarray(second.image, dtype=np.float64)[:, SHIFT:]
    inside = slice(4, -4)
    assert np.abs(got[inside, inside] - moved[inside, inside]).mean() < 3  # grey levels; bilinear, DIS
    assert m.reliable[:, :SHIFT].max() == 0  # the band coming in on the left is not followed...
    assert (
        np.abs(np.asarray(second.image)[:, :SHIFT] - np.asarray(frames[1])[:, :SHIFT]).max() <= 1
    )  # ...it starts as content


def warping_error(images: list[Image.Image]) -> float:
    """The squared difference of each frame from the one before it moved ``SHIFT`` px (interior)."""
    arrays = [np.asarray(image, dtype=np.float64) / 255 for image in images]
    return float(
        np.mean(
            [((b[4:-4, SHIFT + 4 : -4] - a[4:-4, 4 : -SHIFT - 4]) ** 2).mean() for a, b in itertools.pairwise(arrays)]
        )
    )


def test_a_chain_flickers_less_than_frames_rendered_alone() -> None:
    frames = panning(3)
    alone = render_clip(frames, [STYLE], small(temporal_weight=0, iterations=12))
    chain = render_clip(frames, [STYLE], small(iterations=12, frame_iterations=6))
    assert warping_error([r.image for r in chain]) < warping_error([r.image for r in alone]) / 2
    assert all(step.temporal == 0 for step in chain[0].losses)
    assert chain[1].losses[-1].temporal > 0  # 0 at its start, the warped frame itself
    assert len(chain[1].losses) == 6


@pytest.mark.parametrize("variant", [{"tile_size": 32}, {"optimizer": "adam"}, {"long_term": True}])
def test_guided_frames_batch_and_tile_like_stills(variant: dict) -> None:
    """Two guided frames in one batch give what each gives alone, and tiles give what the whole image gives."""
    frames = panning(3)
    s = small(iterations=2, frame_iterations=2, **variant)
    firsts = [render(frames[0], [STYLE], s), render(frames[0], [STYLE], s.model_copy(update={"seed": 1}))]
    earlier = [[(first.image, motion(frames[1], frames[0]))] for first in firsts]
    jobs = [frame_job(BatchJob(frames[1], [STYLE], s), 1, e) for e in earlier]
    together = render_batch(jobs)
    for job, result in zip(jobs, together, strict=True):
        [alone] = render_batch([job])
        assert [step.total for step in result.losses] == pytest.approx([step.total for step in alone.losses], rel=1e-4)
    if "tile_size" in variant:
        whole = render_batch(
            [frame_job(BatchJob(frames[1], [STYLE], s.model_copy(update={"tile_size": 0})), 1, earlier[0])]
        )
        assert together[0].losses[0].temporal == pytest.approx(whole[0].losses[0].temporal, rel=1e-5)


def test_warping_a_result_back_along_its_own_flow_restores_it() -> None:
    frames = panning(2)
    m = motion(frames[1], frames[0])
    moved = warp(torch.from_numpy(np.asarray(frames[0], dtype=np.float32)).permute(2, 0, 1)[None], m.backward)
    back = moved[0].permute(1, 2, 0).numpy()
    assert np.abs(back[6:-6, 6:-6] - np.asarray(frames[1], dtype=np.float32)[6:-6, 6:-6]).mean() < 4
