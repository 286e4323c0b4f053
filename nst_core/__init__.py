"""stylebatch's engine: Gatys et al.'s neural style transfer in PyTorch (never imports Prefect)."""

from nst_core.errors import InputError, NstError, OptimisationError, SettingsError, WeightsError, WeightsNotFoundError
from nst_core.render import RenderResult, StepInfo, Timings, render
from nst_core.settings import Settings

__all__ = [
    "InputError",
    "NstError",
    "OptimisationError",
    "RenderResult",
    "Settings",
    "SettingsError",
    "StepInfo",
    "Timings",
    "WeightsError",
    "WeightsNotFoundError",
    "render",
]
