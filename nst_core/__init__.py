"""stylebatch's engine: Gatys et al.'s neural style transfer in PyTorch (never imports Prefect).

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
    from nst_core.rendering import (
        BatchJob,
        RenderResult,
        StepInfo,
        Timings,
        batch_key,
        group_batches,
        render,
        render_batch,
    )

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
    "group_batches",
    "render",
    "render_batch",
]

_RENDER_NAMES = {
    "BatchJob",
    "RenderResult",
    "StepInfo",
    "Timings",
    "batch_key",
    "group_batches",
    "render",
    "render_batch",
}


def __getattr__(name: str) -> Any:
    if name in _RENDER_NAMES:
        return getattr(importlib.import_module("nst_core.rendering"), name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
