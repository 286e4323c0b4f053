"""Typed errors raised by the engine; every message says what was wrong and where."""

from __future__ import annotations

__all__ = [
    "InputError",
    "NstError",
    "OptimisationError",
    "SettingsError",
    "StorageError",
    "WeightsError",
    "WeightsNotFoundError",
]


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


class StorageError(NstError, OSError):
    """Reading or writing ``uri`` failed; ``transient`` if trying again later may succeed.

    The message is one line naming what was read or written and the cause in words, e.g.
    ``content image https://host/x.jpg: host not found (no network?)``.
    """

    def __init__(self, what: str, uri: str, cause: str, *, transient: bool):
        self.what, self.uri, self.cause, self.transient = what, uri, cause, transient
        super().__init__(f"{what} {uri}: {cause}")

    def __reduce__(self) -> tuple:  # keyword-only arguments: pickled errors (Dask, Prefect) need this
        return _storage_error, (self.what, self.uri, self.cause, self.transient)

    def as_(self, what: str) -> StorageError:
        """The same failure, reported for another use of the same URI."""
        return StorageError(what, self.uri, self.cause, transient=self.transient)


def _storage_error(what: str, uri: str, cause: str, transient: bool) -> StorageError:
    return StorageError(what, uri, cause, transient=transient)


class WeightsError(NstError):
    """A weights file exists but does not fit the backbone or cannot be read."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """Weights are not where they were expected (and could not be downloaded)."""


class OptimisationError(NstError):
    """The optimisation diverged (a loss became infinite or NaN)."""
