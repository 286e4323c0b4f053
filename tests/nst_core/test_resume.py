"""A render stopped after any iteration and resumed from its state ends bit for bit as the render that was not."""

from __future__ import annotations

import io
from dataclasses import astuple

import numpy as np
import pytest
import torch

from nst_core import BatchJob, Settings, render_batch
from nst_core.checkpoints import Checkpoints, TrackState
from tests.conftest import make_image

TINY = {"weights": "random:0", "device": "cpu", "image_size": 32}


def through_bytes(states: dict[int, TrackState]) -> dict[int, TrackState]:
    """The states as a checkpoint file gives them back (``torch.save``, then a safe ``torch.load``)."""
    buffer = io.BytesIO()
    torch.save({k: v.dump() for k, v in states.items()}, buffer)
    buffer.seek(0)
    return {k: TrackState.load(v) for k, v in torch.load(buffer, weights_only=True).items()}


def terms(result) -> list[tuple]:
    """The loss log without the times."""
    return [(*astuple(step)[:6], *astuple(step)[7:]) for step in result.losses]


def interrupted(jobs: list[BatchJob], at: int) -> list:
    """Render ``jobs`` keeping the states after iteration ``at``, then again from those states."""
    taken: dict[int, TrackState] = {}
    counter = {"n": 0}

    def due() -> bool:
        counter["n"] += 1
        return counter["n"] == at

    render_batch(jobs, checkpoints=Checkpoints(due, taken.update))
    assert taken and all(state.iteration == at for state in taken.values())
    return render_batch(jobs, resume=through_bytes(taken))


@pytest.mark.parametrize(
    "extra, stops",
    [
        ({"optimizer": "lbfgs", "iterations": 8}, (1, 4, 7)),
        ({"optimizer": "adam", "iterations": 8}, (3,)),
        ({"iterations": 4, "start_size": 16, "level_iterations": 3}, (3, 5)),  # 3: the end of the first level
    ],
)
def test_a_resumed_render_ends_bit_for_bit_as_one_not_stopped(extra: dict, stops: tuple[int, ...]) -> None:
    s = Settings(**TINY, **extra)
    jobs = [BatchJob(make_image(1, (32, 32)), [make_image(2, (36, 36))], s)]
    [whole] = render_batch(jobs)
    for at in stops:
        [resumed] = interrupted(jobs, at)
        assert np.array_equal(np.asarray(resumed.image), np.asarray(whole.image)), at
        assert terms(resumed) == terms(whole), at


def test_a_batch_of_three_resumes_bit_for_bit() -> None:
    s = Settings(**TINY, iterations=6)
    jobs = [BatchJob(make_image(k, (40, 32)), [make_image(10 + k, (36, 36))], s) for k in range(3)]
    wholes = render_batch(jobs)
    for whole, resumed in zip(wholes, interrupted(jobs, 3), strict=True):
        assert np.array_equal(np.asarray(resumed.image), np.asarray(whole.image))
        assert terms(resumed) == terms(whole)


def test_jobs_resumed_from_different_iterations_render_apart_and_each_ends_as_alone() -> None:
    s = Settings(**TINY, iterations=4, optimizer="adam")
    jobs = [BatchJob(make_image(k, (40, 32)), [make_image(10 + k, (36, 36))], s) for k in range(2)]
    alone = [render_batch([job])[0] for job in jobs]
    states: dict[int, dict[int, TrackState]] = {}
    for k, job in enumerate(jobs):
        counter = iter(range(1, 10))
        taken: dict[int, TrackState] = {}
        render_batch([job], checkpoints=Checkpoints(lambda k=k, c=counter: next(c) == 1 + k, taken.update))
        states[k] = taken[0]
    assert (states[0].iteration, states[1].iteration) == (1, 2)
    resumed = render_batch(jobs, resume=through_bytes(states))
    for a, b in zip(alone, resumed, strict=True):
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert terms(a) == terms(b)
