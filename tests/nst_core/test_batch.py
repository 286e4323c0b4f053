"""Batched renders: each image gets what it gets alone; failures stay with their image; sub-batches by key and shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import BatchJob, InputError, OptimisationError, RenderResult, Settings, StepInfo, batch_key, render_batch
from nst_core.backbones import load_backbone
from tests.conftest import make_image


def settings(**values: Any) -> Settings:
    return Settings.from_values({"weights": "random:0", "image_size": 32, "iterations": 4, "device": "cpu"} | values)


def jobs(**values: Any) -> list[BatchJob]:
    """Three jobs of one batch key: other images, and their own weights, init, seed and lr."""
    own = [
        {"style_weight": 3, "init": "content"},
        {"style_weight": 10, "init": "noise", "seed": 4, "lr": values.get("lr", 1.0) * 0.5},
        {"style_weight": 1, "init": "style", "tv_weight": 0.5},
    ]
    return [BatchJob(make_image(i), [make_image(10 + i, (36, 36))], settings(**values | own[i])) for i in range(3)]


@pytest.fixture
def batch_sizes() -> Iterator[list[int]]:
    """The batch size of every pass through the random VGG19 the tests use (targets included)."""
    sizes: list[int] = []
    first = load_backbone("vgg19", "random:0", "max", "cpu").body.conv1_1
    hook = first.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    yield sizes
    hook.remove()


@pytest.fixture
def exact_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch's own CPU convolutions instead of oneDNN's. oneDNN's kernels round differently for
    different batch sizes (~1e-6 relative), which the optimisation amplifies (Adam's first steps
    move every pixel by lr whatever its gradient's size); without them, whatever differs between a
    batch and a lone render is the engine's doing."""
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255


def assert_same_render(batched: RenderResult, alone: RenderResult) -> None:
    assert np.abs(pixels(batched.image) - pixels(alone.image)).max() <= 1e-4
    assert [(s.iteration, s.level, s.lr) for s in batched.losses] == [
        (s.iteration, s.level, s.lr) for s in alone.losses
    ]
    for field in ("content", "style", "tv", "total"):
        got = [getattr(step, field) for step in batched.losses]
        assert got == pytest.approx([getattr(step, field) for step in alone.losses], rel=1e-4, abs=1e-12)
    assert batched.timings.evaluations == alone.timings.evaluations


@pytest.mark.usefixtures("exact_convolutions")
@pytest.mark.parametrize(
    "values",
    [
        {"optimizer": "lbfgs"},
        {"optimizer": "adam", "lr": 0.04},
        {"optimizer": "lbfgs", "image_size": 48, "start_size": 24, "level_iterations": 2, "iterations": 2},
    ],
    ids=["lbfgs", "adam", "lbfgs-multiscale"],
)
def test_a_batch_gives_each_image_what_it_renders_alone(values: dict[str, Any], batch_sizes: list[int]) -> None:
    batch = jobs(**values)
    steps: list[tuple[int, StepInfo]] = []
    results = render_batch(batch, on_step=lambda index, step: steps.append((index, step)))
    assert max(batch_sizes) == 3  # the three images did go through the network together
    for index, (job, result) in enumerate(zip(batch, results, strict=True)):
        assert isinstance(result, RenderResult)
        [alone] = render_batch([job])
        assert_same_render(result, alone)
        assert [step for i, step in steps if i == index] == result.losses
        assert result.settings == job.settings


@pytest.mark.usefixtures("exact_convolutions")
@pytest.mark.parametrize(
    ("bad", "values", "error", "words"),
    [
        ("unreadable", {}, InputError, "not an image"),
        ("overflow", {"style_weight": 1e39}, OptimisationError, "at iteration 1:"),  # its first evaluation
        ("diverges", {"optimizer": "adam", "lr_schedule": "3:1e30"}, OptimisationError, "at iteration 4:"),
    ],
)
def test_a_failing_job_fails_alone(
    tmp_path: Path, bad: str, values: dict[str, Any], error: type[Exception], words: str
) -> None:
    good = jobs(optimizer=values.get("optimizer", "lbfgs"))
    if bad == "unreadable":
        (tmp_path / "broken.png").write_text("not an image")
        failing = BatchJob(str(tmp_path / "broken.png"), good[0].styles, good[0].settings)
    else:
        failing = BatchJob(
            good[0].content, good[0].styles, Settings.from_values(good[0].settings.model_dump() | values)
        )
    results = render_batch([good[0], failing, good[2]])
    assert isinstance(results[1], error)
    assert words in str(results[1])
    without = render_batch([good[0], good[2]])
    assert_same_render(results[0], without[0])
    assert_same_render(results[2], without[1])


def test_an_on_step_that_raises_stops_its_job_only() -> None:
    def on_step(index: int, step: StepInfo) -> None:
        if index == 1 and step.iteration == 2:
            raise TimeoutError("timed out")

    results = render_batch(jobs(), on_step=on_step)
    assert isinstance(results[1], TimeoutError)
    assert [len(result.losses) for result in (results[0], results[2])] == [4, 4]


def test_on_snapshot_hands_each_snapshot_over_as_it_is_taken() -> None:
    """on_snapshot(job, iteration, image) comes with each snapshot, before the job's next iteration (a render
    stopped later has had them all); the images are the result's snapshots."""
    events: list[tuple[str, int, int]] = []
    snapshots: dict[tuple[int, int], Image.Image] = {}

    def on_snapshot(index: int, iteration: int, image: Image.Image) -> None:
        events.append(("snapshot", index, iteration))
        snapshots[(index, iteration)] = image

    batch = jobs(snapshot_every=2)
    results = render_batch(
        batch,
        on_step=lambda index, step: events.append(("step", index, step.iteration)),
        on_snapshot=on_snapshot,
    )

    for index, result in enumerate(results):
        assert isinstance(result, RenderResult)
        mine = [(kind, iteration) for kind, i, iteration in events if i == index]
        assert mine == [("step", 1), ("step", 2), ("snapshot", 2), ("step", 3), ("step", 4), ("snapshot", 4)]
        assert sorted(result.snapshots) == [2, 4]
        for iteration, image in result.snapshots.items():
            assert np.array_equal(pixels(snapshots[(index, iteration)]), pixels(image))


def test_different_shapes_and_keys_are_rendered_in_sub_batches(batch_sizes: list[int]) -> None:
    style = [make_image(9, (36, 36))]
    landscape, portrait = make_image(1, (40, 32)), make_image(2, (32, 40))
    batch = [
        BatchJob(landscape, style, settings(iterations=2)),
        BatchJob(portrait, style, settings(iterations=2)),
        BatchJob(make_image(3, (40, 32)), style, settings(iterations=2, style_weight=5)),
        BatchJob(landscape, style, settings(iterations=2, image_size=48)),
    ]
    results = render_batch(batch)
    assert [result.image.size for result in results] == [(32, 26), (26, 32), (32, 26), (48, 38)]
    assert max(batch_sizes) == 2  # only the two 32x26 images of one key went through together
    assert batch_sizes.count(2) >= 2


def test_batch_key_ignores_per_image_settings_only() -> None:
    base = settings()
    per_image = {"style_weight": 7, "lr": 0.1, "seed": 3, "init": "noise", "style_layer_weights": "1|2|3|4|5"}
    assert batch_key(settings(**per_image)) == batch_key(base)
    for name, value in [("image_size", 64), ("optimizer", "adam"), ("pooling", "avg"), ("style_layers", "relu1_1")]:
        assert batch_key(settings(**{name: value})) != batch_key(base), name
    assert batch_key(settings(start_size=8)) != batch_key(base)  # another pyramid
    assert set(per_image) <= Settings.names(per_image=True)


def test_an_empty_batch_renders_nothing() -> None:
    assert render_batch([]) == []
