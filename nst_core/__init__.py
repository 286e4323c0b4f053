"""stylebatch's engine: Gatys et al.'s neural style transfer in PyTorch (never imports Prefect).

Reading map, the main path of ``render`` first:

1. ``settings``: ``Settings``, every knob with its default, range, meaning and ``Knob`` (batching, pair ids).
2. ``rendering``: ``render`` and ``render_batch``: open the images, check their sizes (``checks``), group the
   jobs into sub-batches, prepare the network (``network``), optimise (``batch``), return a ``RenderResult``
   (``results``).
3. ``batch``: the optimisation, level by level, one ``Track`` per image: ``levels`` (a level's images,
   start image, targets and loss terms), ``losses`` (content, Gram style, TV; pure functions),
   ``optimize`` (L-BFGS or Adam on the scaled total, learning-rate schedules).
4. ``network`` and ``backbones``: the feature network, cut after the deepest layer in use, with named layers
   and its weights (``weights``); ``catalogue`` holds what each backbone offers without torch.
5. Around them: ``images`` (reading any image as RGB, writing), ``color``, ``tensors``, ``device``,
   ``errors`` and ``io_errors`` (one-line errors).

Fast paths, out of the main path's way: ``gather`` (several images' evaluations in one batched pass),
``tiling`` (loss and gradient tile by tile, for outputs larger than the device's memory), ``fastpath``
(``torch.compile``).

``render``, ``render_batch`` and their types load torch on first use, so that ``Settings`` and the errors can be
imported in a fraction of a second (the CLI's help, ``validate``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nst_core.errors import (
    InputError,
    NstError,
    OptimisationError,
    SettingsError,
    StorageError,
    WeightsError,
    WeightsNotFoundError,
)
from nst_core.settings import Settings

if TYPE_CHECKING:
    from nst_core.rendering import BatchJob, RenderResult, StepInfo, Timings, batch_key, render, render_batch

__all__ = [
    "BatchJob",
    "InputError",
    "NstError",
    "OptimisationError",
    "RenderResult",
    "Settings",
    "SettingsError",
    "StepInfo",
    "StorageError",
    "Timings",
    "WeightsError",
    "WeightsNotFoundError",
    "batch_key",
    "render",
    "render_batch",
]

_RENDER_NAMES = {
    "BatchJob",
    "RenderResult",
    "StepInfo",
    "Timings",
    "batch_key",
    "render",
    "render_batch",
}


def __getattr__(name: str) -> Any:
    if name in _RENDER_NAMES:
        return getattr(importlib.import_module("nst_core.rendering"), name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
