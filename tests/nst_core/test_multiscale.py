"""Multi-scale rendering: the pyramid of sizes, seeding each level with the last, logs across levels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nst_core import Settings, StepInfo, render
from nst_core.images import resize_long_side
from nst_core.tensors import to_image, to_tensor


def settings(**values: Any) -> Settings:
    base = {"weights": "random:0", "image_size": 64, "start_size": 32, "level_iterations": 3, "iterations": 4}
    return Settings.from_values(base | {"device": "cpu"} | values)


@pytest.mark.parametrize(
    ("image_size", "start_size", "sizes"),
    [
        (512, 128, [128, 256, 512]),
        (256, 128, [128, 256]),
        (300, 128, [150, 300]),
        (200, 128, [200]),  # half of 200 is under the start size
        (512, 0, [512]),  # 0: single scale
        (1024, 200, [256, 512, 1024]),
        (64, 16, [16, 32, 64]),
    ],
)
def test_levels(image_size: int, start_size: int, sizes: list[int]) -> None:
    s = Settings(image_size=image_size, start_size=start_size, level_iterations=7, iterations=11)
    assert s.levels() == [(size, 7) for size in sizes[:-1]] + [(image_size, 11)]
    assert s.total_iterations == 7 * (len(sizes) - 1) + 11


def test_single_scale_by_default_and_multi_scale_one_setting_away() -> None:
    """bench/quality.py's time to quality at 512 px: multi-scale was not faster, so it is not the default."""
    assert Settings().levels() == [(512, 500)]
    assert [size for size, _ in Settings(start_size=128).levels()] == [128, 256, 512]


def test_multiscale_gives_the_final_size_and_logs_every_level(pil_image: Callable[..., Image.Image]) -> None:
    content = pil_image(1, (80, 60))
    steps: list[StepInfo] = []
    result = render(content, [pil_image(2, (48, 48))], settings(snapshot_every=2), on_step=steps.append)
    assert result.image.size == resize_long_side(content, 64).size
    assert [(s.iteration, s.level) for s in result.losses] == [(i, 1) for i in (1, 2, 3)] + [
        (i, 2) for i in (4, 5, 6, 7)
    ]
    assert steps == result.losses  # the callback sees every level
    assert all(b.elapsed_s >= a.elapsed_s for a, b in zip(result.losses, result.losses[1:], strict=False))
    # snapshots count iterations across levels, each at its level's size
    assert sorted(result.snapshots) == [2, 4, 6]
    assert result.snapshots[2].size == resize_long_side(content, 32).size
    assert result.snapshots[6].size == result.image.size


def upscale(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    x = F.interpolate(to_tensor(image), size=(size[1], size[0]), mode="bicubic", align_corners=False)
    return to_image(x.clamp(0, 1))


def test_a_level_of_zero_iterations_passes_on_its_upscaled_start(pil_image: Callable[..., Image.Image]) -> None:
    content = pil_image(1, (80, 60))
    # the last level barely moves (Adam, tiny lr): the result is what the first level handed on
    s = settings(level_iterations=0, iterations=1, optimizer="adam", lr=1e-9)
    result = render(content, [pil_image(2, (48, 48))], s)
    expected = upscale(resize_long_side(content, 32), result.image.size)
    assert np.abs(np.asarray(result.image, float) - np.asarray(expected, float)).max() <= 1


def test_the_first_level_result_seeds_the_next(pil_image: Callable[..., Image.Image]) -> None:
    content, style = pil_image(1, (80, 60)), pil_image(2, (48, 48))
    small = render(content, [style], settings(image_size=32, start_size=0, iterations=5, optimizer="adam"))
    seeded = render(
        content, [style], settings(level_iterations=5, iterations=1, optimizer="adam", lr_schedule="6:1e-9")
    )
    expected = upscale(small.image, seeded.image.size)
    assert np.abs(np.asarray(seeded.image, float) - np.asarray(expected, float)).max() <= 1
    # and the first level did move away from the content
    start = upscale(resize_long_side(content, 32), seeded.image.size)
    assert np.abs(np.asarray(seeded.image, float) - np.asarray(start, float)).mean() > 1


def test_style_targets_are_recomputed_per_level(pil_image: Callable[..., Image.Image]) -> None:
    """At the first step of each level the image is the content (content init, tiny lr): the
    content loss is zero at both levels, and the style loss of the content differs between sizes."""
    s = settings(level_iterations=1, iterations=1, optimizer="adam", lr=1e-9)
    losses = render(pil_image(1, (80, 60)), [pil_image(2, (48, 48))], s).losses
    assert [step.level for step in losses] == [1, 2]
    assert losses[0].content == pytest.approx(0, abs=1e-6)
    assert losses[1].content < 0.05  # the upscaled small content is close to the large one
    assert losses[0].style != pytest.approx(losses[1].style, rel=1e-3)


def test_noise_init_is_seeded_across_levels(pil_image: Callable[..., Image.Image]) -> None:
    content, style = pil_image(1, (80, 60)), pil_image(2, (48, 48))
    a, b = (render(content, [style], settings(init="noise", seed=4)) for _ in range(2))
    assert torch.equal(to_tensor(a.image), to_tensor(b.image))
