"""stylebatch's engine: Gatys et al.'s neural style transfer in PyTorch (never imports Prefect).

``render`` and its result types load torch on first use, so that ``Settings`` and the errors can be
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
    from nst_core.rendering import RenderResult, StepInfo, Timings, render

__all__ = [
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
    "render",
]

_RENDER_NAMES = {"RenderResult", "StepInfo", "Timings", "render"}


def __getattr__(name: str) -> Any:
    if name in _RENDER_NAMES:
        return getattr(importlib.import_module("nst_core.rendering"), name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
