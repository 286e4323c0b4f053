"""A render's state between two iterations, to resume it later bit for bit (preemptible machines).

``TrackState`` holds everything that decides the rest of one image's render: the level and iteration, the pixels,
the optimiser's whole state (L-BFGS's curvature history, Adam's moments), the objective's loss scale and the point
it last evaluated (its memo: the next L-BFGS step starts there), the loss log and the evaluations so far. The
targets are not saved: they are computed again from the inputs, exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nst_core.results import StepInfo

__all__ = ["Checkpoints", "TrackState"]


@dataclass(frozen=True)
class TrackState:
    """One image's render after ``iteration`` iterations (counted across levels), in level ``level``."""

    level: int
    iteration: int
    image: Tensor  # the pixels being optimised, on the CPU
    optimizer: dict  # ``state_dict()``, tensors on the CPU
    scale: float | None  # the objective's 1 / first total of the level
    memo: tuple[Tensor, Tensor, tuple[Tensor, ...]] | None  # (pixels, gradient, loss terms) of the last point
    past_evaluations: int  # forward and backward passes of the levels before this one
    evaluations: int  # and of this level
    log: tuple[StepInfo, ...]

    def dump(self) -> dict:
        """Plain values and tensors only, for ``torch.save`` (``torch.load(..., weights_only=True)`` reads them)."""
        return {**vars(self), "log": [vars(step) for step in self.log]}

    @classmethod
    def load(cls, values: dict) -> TrackState:
        """The state that ``dump`` gave."""
        return cls(**{**values, "log": tuple(StepInfo(**step) for step in values["log"])})


@dataclass(frozen=True)
class Checkpoints:
    """When to take a batch's states, and what to do with them: ``due()`` is asked after every iteration;
    when it says yes, ``save({job index: state})`` gets the states of the batch's live images. What ``save``
    raises ends the render of those images with that error (a preemption: saved, now stop)."""

    due: Callable[[], bool]
    save: Callable[[dict[int, TrackState]], None]


def to_cpu(value: object) -> object:
    """``value`` with every tensor in it copied to the CPU (dicts, lists and tuples followed)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def on_device(value: object, device: torch.device) -> object:
    """``value`` with every tensor in it on ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: on_device(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(on_device(v, device) for v in value)
    return value
