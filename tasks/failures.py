"""Why a pair failed, in one line for people, with the traceback kept for the failure record and ``--verbose``."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from nst_core import NstError, Settings

__all__ = ["Failure", "failure_of"]


@dataclass(frozen=True)
class Failure:
    reason: str  # one line: what failed and why, in words
    traceback: str


def failure_of(exc: BaseException, settings: Settings | None = None, device: str | None = None) -> Failure:
    """Describe ``exc``, raised while rendering a pair with ``settings`` on ``device``."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    return Failure(_reason(exc, settings, device), text)


def _reason(exc: BaseException, settings: Settings | None, device: str | None) -> str:
    if isinstance(exc, NstError | TimeoutError):  # our own errors say what and why
        return _one_line(str(exc))
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA, MPS)
        size = f" at {settings.image_size} px" if settings else ""
        return (
            f"out of memory on {device or 'the device'}{size}: use a smaller image_size, precision bf16, "
            "or fewer renders per GPU"
        )
    if isinstance(exc, MemoryError):
        return "out of memory on the CPU: use a smaller image_size"
    return _one_line(f"{type(exc).__name__}: {exc}")  # unexpected: the traceback says where


def _one_line(text: str) -> str:
    return " ".join(text.split())
