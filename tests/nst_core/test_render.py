"""Render: the optimisation on tiny images with random weights (fast, offline, CPU unless marked gpu)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nst_core import (
    InputError,
    OptimisationError,
    RenderResult,
    Settings,
    SettingsError,
    StepInfo,
    StorageError,
    render,
)
from nst_core.backbones import load_backbone
from nst_core.color import rgb_to_yuv
from nst_core.images import load_image, resize_long_side
from nst_core.losses import gram_matrix
from nst_core.optimize import lr_at
from nst_core.tensors import to_tensor

SIZE = 32  # long side of every render here; the content fixture is 40x32, so renders are 32x26


def settings(**values: Any) -> Settings:
    """Tiny, fast, offline settings; ``values`` override (strings allowed, as in a manifest)."""
    return Settings.from_values({"weights": "random:0", "image_size": SIZE, "iterations": 5, "device": "cpu"} | values)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255


def expected_size(path: Path) -> tuple[int, int]:
    return resize_long_side(load_image(str(path)), SIZE).size


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(pixels(a) - pixels(b)).mean())


def totals(result: RenderResult) -> list[float]:
    return [step.total for step in result.losses]


# --- the optimisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls(content_path: Path, style_path: Path, optimizer: str) -> None:
    s = settings(optimizer=optimizer, iterations=20)
    result = render(str(content_path), [str(style_path)], s)
    log = totals(result)
    assert len(log) == 20
    assert all(np.isfinite(log))
    assert log[-1] < 0.8 * log[0]
    assert result.image.size == expected_size(content_path)
    assert result.image.mode == "RGB"
    assert (result.device, result.precision, result.settings) == ("cpu", "fp32", s)
    assert result.timings.setup_s >= 0
    assert result.timings.optimise_s > 0
    assert result.timings.total_s == pytest.approx(result.timings.setup_s + result.timings.optimise_s)
    assert result.snapshots == {}


def test_logged_total_is_the_weighted_sum(content_path: Path, style_path: Path) -> None:
    s = settings(content_weight=3, style_weight=50, tv_weight=0.5, iterations=3)
    for step in render(str(content_path), [str(style_path)], s).losses:
        assert step.content >= 0
        assert step.style > 0
        assert step.tv > 0
        expected = s.content_weight * step.content + s.style_weight * step.style + s.tv_weight * step.tv
        assert step.total == pytest.approx(expected, rel=1e-5)


def test_content_loss_is_zero_at_a_content_start(content_path: Path, style_path: Path) -> None:
    result = render(str(content_path), [str(style_path)], settings(init="content", iterations=2))
    assert result.losses[0].content == 0
    assert result.losses[1].content > 0


def test_style_of_itself_has_no_style_loss(content_path: Path, style_path: Path) -> None:
    own = render(str(content_path), [str(content_path)], settings(init="content", content_weight=0, iterations=1))
    other = render(str(content_path), [str(style_path)], settings(init="content", content_weight=0, iterations=1))
    assert other.losses[0].style > 0
    assert own.losses[0].style <= 1e-6 * other.losses[0].style


def test_images_in_memory_equal_paths(content_path: Path, style_path: Path) -> None:
    s = settings(iterations=3)
    from_paths = render(str(content_path), [str(style_path)], s)
    with Image.open(content_path) as content, Image.open(style_path) as style:
        in_memory = render(content, [style], s)
    assert in_memory.image.tobytes() == from_paths.image.tobytes()


def test_pooling_and_tv_norm_change_the_result(content_path: Path, style_path: Path) -> None:
    base = render(str(content_path), [str(style_path)], settings())
    avg = render(str(content_path), [str(style_path)], settings(pooling="avg"))
    l2 = render(str(content_path), [str(style_path)], settings(tv_norm="l2"))
    assert avg.image.tobytes() != base.image.tobytes()
    assert l2.losses[0].tv != base.losses[0].tv


def test_squeezenet_backbone(content_path: Path, style_path: Path) -> None:
    s = settings(backbone="squeezenet1_1", iterations=10, image_size=48)
    result = render(str(content_path), [str(style_path)], s)
    assert totals(result)[-1] < totals(result)[0]
    assert result.image.size == (48, 38)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_timings_count_evaluations(content_path: Path, style_path: Path, optimizer: str) -> None:
    result = render(str(content_path), [str(style_path)], settings(optimizer=optimizer, iterations=4))
    timings = result.timings
    if optimizer == "adam":
        assert timings.evaluations == 4  # one forward and backward pass per iteration
    else:
        assert timings.evaluations >= 4  # the line search may add evaluations
    assert timings.ms_per_iteration == pytest.approx(1000 * timings.optimise_s / 4)
    assert timings.ms_per_evaluation == pytest.approx(1000 * timings.optimise_s / timings.evaluations)


def test_divergence_is_an_optimisation_error(content_path: Path, style_path: Path) -> None:
    s = settings(optimizer="adam", iterations=6, lr_schedule="3:1e30")  # step 3 overshoots; iteration 4 is inf
    with pytest.raises(OptimisationError, match="at iteration 4:") as info:
        render(str(content_path), [str(style_path)], s)
    assert "lr" in str(info.value)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_overflowing_loss_is_an_optimisation_error(content_path: Path, style_path: Path, optimizer: str) -> None:
    s = settings(optimizer=optimizer, style_weight=1e39, iterations=3)  # the weighted total overflows float32
    with pytest.raises(OptimisationError, match="at iteration 1"):
        render(str(content_path), [str(style_path)], s)


# --- init modes ---------------------------------------------------------------------------------


def test_init_content(content_path: Path, style_path: Path) -> None:
    result = render(
        str(content_path), [str(style_path)], settings(init="content", optimizer="adam", lr=1e-6, iterations=1)
    )
    expected = resize_long_side(load_image(str(content_path)), SIZE)
    assert np.abs(pixels(result.image) - pixels(expected)).max() <= 1 / 255 + 1e-9


def test_init_style(content_path: Path, style_path: Path) -> None:
    result = render(
        str(content_path), [str(style_path)], settings(init="style", optimizer="adam", lr=1e-6, iterations=1)
    )
    style = load_image(str(style_path)).resize(result.image.size, Image.Resampling.BILINEAR)
    content = resize_long_side(load_image(str(content_path)), SIZE)
    assert mean_abs_diff(result.image, style) < 0.02
    assert mean_abs_diff(result.image, content) > 0.1


def test_init_noise_is_seeded(content_path: Path, style_path: Path) -> None:
    def noise(seed: int) -> RenderResult:
        s = settings(init="noise", seed=seed, optimizer="adam", lr=1e-6, iterations=1)
        return render(str(content_path), [str(style_path)], s)

    first, again, other = noise(0), noise(0), noise(1)
    content = resize_long_side(load_image(str(content_path)), SIZE)
    assert first.image.size == content.size
    assert first.image.tobytes() == again.image.tobytes()
    assert mean_abs_diff(first.image, content) > 0.1
    assert mean_abs_diff(first.image, other.image) > 0.1
    assert pixels(first.image).std() > 0.2  # noise, not a flat image


def test_init_from_image_path(image_factory: Callable[..., Path], content_path: Path, style_path: Path) -> None:
    start = image_factory("start.png", seed=9, size=(50, 30))
    for init in (str(start), start.as_uri()):
        s = settings(init=init, optimizer="adam", lr=1e-6, iterations=1)
        result = render(str(content_path), [str(style_path)], s)
        expected = load_image(str(start)).resize(result.image.size, Image.Resampling.LANCZOS)
        assert np.abs(pixels(result.image) - pixels(expected)).max() <= 1 / 255 + 1e-9
        assert mean_abs_diff(result.image, resize_long_side(load_image(str(content_path)), SIZE)) > 0.1


def test_init_from_missing_path(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    missing = tmp_path / "start.png"
    with pytest.raises(StorageError) as info:
        render(str(content_path), [str(style_path)], settings(init=str(missing)))
    assert str(info.value) == f"init image {missing}: not found"


def test_same_seed_same_pixels(content_path: Path, style_path: Path) -> None:
    s = settings(init="noise", seed=3, iterations=4)
    first = render(str(content_path), [str(style_path)], s)
    again = render(str(content_path), [str(style_path)], s)
    assert first.image.tobytes() == again.image.tobytes()
    assert totals(first) == totals(again)


# --- colour preservation ------------------------------------------------------------------------


def uv(image: Image.Image) -> torch.Tensor:
    return rgb_to_yuv(to_tensor(image))[:, 1:]


@pytest.fixture
def red_style(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> Path:
    """A reddish style, far from the content's (neutral) mean colour."""
    tinted = pixels(pil_image(7, (36, 36))) * np.array([0.4, 0.4, 0.4]) + np.array([0.55, 0.1, 0.05])
    path = tmp_path / "red.png"
    Image.fromarray((tinted * 255).round().astype(np.uint8)).save(path)
    return path


def test_preserve_color_luminance(content_path: Path, style_path: Path) -> None:
    content = resize_long_side(load_image(str(content_path)), SIZE)
    kept = render(str(content_path), [str(style_path)], settings(init="noise", preserve_color="luminance"))
    plain = render(str(content_path), [str(style_path)], settings(init="noise", preserve_color="none"))
    kept_error = (uv(kept.image) - uv(content)).abs().mean().item()
    plain_error = (uv(plain.image) - uv(content)).abs().mean().item()
    assert kept_error < 0.02
    assert kept_error < plain_error / 3
    # the luma is the optimised image's, not the content's
    assert mean_abs_diff(kept.image, content) > 0.05


@pytest.mark.parametrize("mode", ["histogram", "yuv_style"])
def test_preserve_color_prestep_moves_colours_to_content(content_path: Path, red_style: Path, mode: str) -> None:
    """Starting from the style (pre-step applied), the output's mean chroma is the content's, not the style's."""
    content_uv = uv(resize_long_side(load_image(str(content_path)), SIZE)).mean((0, 2, 3))
    plain = render(str(content_path), [str(red_style)], settings(init="style", preserve_color="none"))
    kept = render(str(content_path), [str(red_style)], settings(init="style", preserve_color=mode))
    assert kept.image.tobytes() != plain.image.tobytes()
    kept_gap = (uv(kept.image).mean((0, 2, 3)) - content_uv).abs().sum().item()
    plain_gap = (uv(plain.image).mean((0, 2, 3)) - content_uv).abs().sum().item()
    assert plain_gap > 0.2  # the test would notice a no-op
    assert kept_gap < plain_gap / 4


@pytest.mark.parametrize("mode", ["histogram", "yuv_style"])
def test_preserve_color_prestep_changes_the_style_loss_target(content_path: Path, style_path: Path, mode: str) -> None:
    plain = render(str(content_path), [str(style_path)], settings(iterations=1))
    kept = render(str(content_path), [str(style_path)], settings(iterations=1, preserve_color=mode))
    assert kept.losses[0].content == plain.losses[0].content == 0
    assert kept.losses[0].style != plain.losses[0].style


# --- several styles -----------------------------------------------------------------------------


@pytest.fixture
def second_style(image_factory: Callable[..., Path]) -> Path:
    return image_factory("style2.png", seed=5, size=(30, 40))


def test_style_blend_weights_select_one_style(content_path: Path, style_path: Path, second_style: Path) -> None:
    first = render(str(content_path), [str(style_path)], settings())
    second = render(str(content_path), [str(second_style)], settings())
    styles = [str(style_path), str(second_style)]
    only_first = render(str(content_path), styles, settings(style_weights="1|0"))
    only_second = render(str(content_path), styles, settings(style_weights="0|1"))
    assert first.image.tobytes() != second.image.tobytes()
    assert only_first.image.tobytes() == first.image.tobytes()
    assert only_second.image.tobytes() == second.image.tobytes()
    assert totals(only_first) == totals(first)


def test_style_blend_default_is_equal_weights(content_path: Path, style_path: Path, second_style: Path) -> None:
    styles = [str(style_path), str(second_style)]
    default = render(str(content_path), styles, settings(iterations=2))
    equal = render(str(content_path), styles, settings(iterations=2, style_weights="2|2"))
    first = render(str(content_path), styles[:1], settings(iterations=2))
    assert default.image.tobytes() == equal.image.tobytes()
    assert default.losses[0].style != first.losses[0].style


def test_style_blend_count_mismatch(content_path: Path, style_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        render(str(content_path), [str(style_path)], settings(style_weights="1|1"))
    assert info.value.problems[0][0] == "style_weights"


def test_no_style_images(content_path: Path) -> None:
    with pytest.raises(InputError, match="style image"):
        render(str(content_path), [], settings())


# --- progress, snapshots, learning-rate schedule ------------------------------------------------


def test_on_step_is_called_once_per_iteration(content_path: Path, style_path: Path) -> None:
    steps: list[StepInfo] = []
    for optimizer in ("lbfgs", "adam"):
        steps.clear()
        result = render(
            str(content_path), [str(style_path)], settings(iterations=6, optimizer=optimizer), on_step=steps.append
        )
        assert [step.iteration for step in steps] == [1, 2, 3, 4, 5, 6]
        elapsed = [step.elapsed_s for step in steps]
        assert elapsed == sorted(elapsed)
        assert elapsed[0] >= 0
        assert steps == result.losses


def test_snapshots(content_path: Path, style_path: Path) -> None:
    result = render(str(content_path), [str(style_path)], settings(iterations=7, snapshot_every=3, init="noise"))
    assert sorted(result.snapshots) == [3, 6]
    assert all(snapshot.size == result.image.size for snapshot in result.snapshots.values())
    assert result.snapshots[3].tobytes() != result.snapshots[6].tobytes()
    assert result.snapshots[6].tobytes() != result.image.tobytes()

    last = render(str(content_path), [str(style_path)], settings(iterations=6, snapshot_every=2, init="noise"))
    assert sorted(last.snapshots) == [2, 4, 6]
    assert last.snapshots[6].tobytes() == last.image.tobytes()
    assert last.snapshots[6].tobytes() == result.snapshots[6].tobytes()  # same seed, same path


def test_snapshots_get_the_colour_step(content_path: Path, style_path: Path) -> None:
    content = resize_long_side(load_image(str(content_path)), SIZE)
    s = settings(iterations=2, snapshot_every=1, init="noise", preserve_color="luminance")
    result = render(str(content_path), [str(style_path)], s)
    assert (uv(result.snapshots[1]) - uv(content)).abs().mean().item() < 0.02


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_lr_schedule(content_path: Path, style_path: Path, optimizer: str) -> None:
    s = settings(optimizer=optimizer, iterations=6, lr_schedule="5:0.01|3:0.5")
    result = render(str(content_path), [str(style_path)], s)
    base = s.lr
    assert [step.lr for step in result.losses] == [base, base, 0.5, 0.5, 0.01, 0.01]
    assert [step.lr for step in result.losses] == [lr_at(i, base, s.lr_schedule) for i in range(1, 7)]


def test_lr_schedule_reaches_the_optimizer(content_path: Path, style_path: Path) -> None:
    still = settings(init="noise", optimizer="adam", iterations=4, lr_schedule="1:1e-9")
    moving = settings(init="noise", optimizer="adam", iterations=4)
    start = render(
        str(content_path), [str(style_path)], settings(init="noise", optimizer="adam", lr=1e-9, iterations=1)
    )
    assert render(str(content_path), [str(style_path)], still).image.tobytes() == start.image.tobytes()
    assert render(str(content_path), [str(style_path)], moving).image.tobytes() != start.image.tobytes()


def test_lr_at() -> None:
    schedule = {180: 0.1, 400: 0.01}
    assert lr_at(1, 1.0, {}) == 1.0
    assert lr_at(1, 1.0, schedule) == 1.0
    assert lr_at(179, 1.0, schedule) == 1.0
    assert lr_at(180, 1.0, schedule) == 0.1
    assert lr_at(399, 1.0, schedule) == 0.1
    assert lr_at(400, 1.0, schedule) == 0.01
    assert lr_at(10**6, 1.0, schedule) == 0.01
    assert lr_at(500, 1.0, Settings.from_values({"lr_schedule": "400:0.01|180:0.1"}).lr_schedule) == 0.01


# --- bad input ----------------------------------------------------------------------------------


def test_missing_content(tmp_path: Path, style_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(StorageError) as info:
        render(str(missing), [str(style_path)], settings())
    assert str(info.value) == f"content image {missing}: not found"


def test_missing_style(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(StorageError) as info:
        render(str(content_path), [str(style_path), str(missing)], settings())
    assert str(info.value) == f"style image {missing}: not found"


def test_content_not_an_image(tmp_path: Path, style_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(InputError, match="not an image") as info:
        render(str(fake), [str(style_path)], settings())
    assert str(fake) in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("style_layers", "relu9_1", ["relu9_1", "relu5_1"]),
        ("content_layers", "conv4_2|fire5", ["fire5"]),
        ("style_weight", "-1", ["greater than or equal to 0", "-1"]),
        ("content_weight", "-3", ["-3"]),
        ("image_size", "0", ["16", "0"]),
        ("iterations", "0", ["1"]),
    ],
)
def test_bad_settings(content_path: Path, style_path: Path, field: str, value: str, words: list[str]) -> None:
    with pytest.raises(SettingsError) as info:
        render(str(content_path), [str(style_path)], settings(**{field: value}))
    [(name, reason)] = info.value.problems
    assert name == field
    for word in words:
        assert word in reason


@pytest.mark.parametrize("backbone", ["vgg19", "squeezenet1_1"])
def test_style_too_small_for_the_deepest_layer(content_path: Path, style_path: Path, backbone: str) -> None:
    s = settings(backbone=backbone, style_scale=0.1)
    with pytest.raises(InputError, match="too small") as info:
        render(str(content_path), [str(style_path)], s)
    assert "style image" in str(info.value)
    assert "3x3" in str(info.value)


@pytest.mark.parametrize("backbone", ["vgg19", "squeezenet1_1"])
def test_content_too_small_for_the_deepest_layer(
    image_factory: Callable[..., Path], style_path: Path, backbone: str
) -> None:
    thin = image_factory("thin.png", size=(64, 3))  # 32x2 px at image_size 32
    with pytest.raises(InputError, match="too small") as info:
        render(str(thin), [str(style_path)], settings(backbone=backbone))
    assert "content image" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_cuda_not_available(content_path: Path, style_path: Path) -> None:
    with pytest.raises(SettingsError, match="not available") as info:
        render(str(content_path), [str(style_path)], settings(device="cuda"))
    assert info.value.problems[0][0] == "device"


def test_bf16_falls_back_to_fp32_off_cuda(
    content_path: Path, style_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nst_core.device"):
        result = render(str(content_path), [str(style_path)], settings(precision="bf16", iterations=2))
    assert result.precision == "fp32"
    assert "bf16" in caplog.text


# --- GPU ----------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_cuda_bf16_channels_last(content_path: Path, style_path: Path, optimizer: str) -> None:
    s = settings(
        device="cuda", precision="bf16", channels_last="true", optimizer=optimizer, iterations=25, image_size=64
    )
    steps: list[StepInfo] = []
    result = render(str(content_path), [str(style_path)], s, on_step=steps.append)
    assert result.device.startswith("cuda")
    assert result.precision == "bf16"
    log = totals(result)
    assert len(log) == 25
    assert all(np.isfinite(log))
    assert log[-1] < 0.8 * log[0]
    assert [step.iteration for step in steps] == list(range(1, 26))
    assert result.image.size == (64, 51)


# --- per-layer weights reach the loop --------------------------------------------------------------------------


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).pow(2).sum() / b.pow(2).sum()).item()


def test_per_layer_weights_reach_the_logged_terms(content_path: Path, style_path: Path) -> None:
    """The first iteration's terms, at the start image (the style), equal the loss definitions computed
    here with the same per-layer weights; all-equal weights give other terms."""
    values = {
        "init": "style",
        "iterations": 1,
        "content_layers": "relu3_1|relu4_2",
        "content_layer_weights": "0|1",
        "style_layer_weights": "0|3|0|0|0",
    }
    first = render(str(content_path), [str(style_path)], settings(**values)).losses[0]
    s = settings()
    net = load_backbone("vgg19", "random:0", "max", "cpu").cut(["relu2_1", "relu4_2"])
    content = to_tensor(resize_long_side(load_image(str(content_path)), SIZE))
    style = to_tensor(resize_long_side(load_image(str(style_path)), SIZE))
    start = F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
    with torch.no_grad():
        at, c, st = (net(x, ["relu2_1", "relu4_2"]) for x in (start, content, style))
    expected_content = 1 * relative(at["relu4_2"], c["relu4_2"]) / 2  # a mean over the 2 content layers
    expected_style = 3 * relative(gram_matrix(at["relu2_1"]), gram_matrix(st["relu2_1"])) / 5
    assert first.content == pytest.approx(expected_content, rel=1e-4)
    assert first.style == pytest.approx(expected_style, rel=1e-4)
    assert first.total == pytest.approx(
        s.content_weight * first.content + s.style_weight * first.style + s.tv_weight * first.tv, rel=1e-5
    )
    equal = render(str(content_path), [str(style_path)], settings(**values | {"style_layer_weights": "1|1|1|1|1"}))
    assert equal.losses[0].style != pytest.approx(first.style, rel=1e-2)
