"""Typed errors raised by the engine; every message says what was wrong and where."""

from __future__ import annotations

__all__ = ["InputError", "NstError", "OptimisationError", "SettingsError", "WeightsError", "WeightsNotFoundError"]


class NstError(Exception):
    """Base class of every error the engine raises on purpose."""


class SettingsError(NstError, ValueError):
    """One or more settings are invalid.

    ``problems`` lists ``(setting, reason)`` pairs so callers (the manifest reader) can map each
    problem to a column.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))


class InputError(NstError, ValueError):
    """An input image is missing, unreadable or unusable."""


class WeightsError(NstError):
    """A weights file exists but does not fit the backbone or cannot be read."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """Weights are not where they were expected (and could not be downloaded)."""


class OptimisationError(NstError):
    """The optimisation diverged (a loss became infinite or NaN)."""
