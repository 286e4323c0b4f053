"""Why a pair failed, in one line for people, with the traceback kept for the failure record and ``--verbose``."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from nst_core import NstError, Settings

__all__ = ["Failure", "failure_of"]

CPU_ALLOCATOR_FAILED = "DefaultCPUAllocator: can't allocate memory"


@dataclass(frozen=True)
class Failure:
    reason: str  # one line: what failed and why, in words
    traceback: str


def failure_of(
    exc: BaseException, settings: Settings | None = None, device: str | None = None, batch_size: int = 1
) -> Failure:
    """Describe ``exc``, raised while rendering a pair with ``settings`` on ``device``, in a batch of
    ``batch_size`` pairs."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    return Failure(_reason(exc, settings, device, batch_size), text)


def _reason(exc: BaseException, settings: Settings | None, device: str | None, batch_size: int) -> str:
    if isinstance(exc, NstError | TimeoutError):  # our own errors say what and why
        return _one_line(str(exc))
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA, MPS)
        return _out_of_memory(device or "the device", settings, batch_size)
    if isinstance(exc, MemoryError) or CPU_ALLOCATOR_FAILED in str(exc):  # torch's CPU allocator: a RuntimeError
        return _out_of_memory("the CPU", settings, batch_size)
    return _one_line(f"{type(exc).__name__}: {exc}")  # unexpected: the traceback says where


def _out_of_memory(where: str, settings: Settings | None, batch_size: int) -> str:
    """What ran out, and each setting that would need less memory."""
    size = f" at {settings.image_size} px" if settings else ""
    batch = f" in a batch of {batch_size}" if batch_size > 1 else ""
    changes = ["a smaller image_size"]
    if where != "the CPU" and (settings is None or settings.precision == "fp32"):
        changes.append("precision bf16")
    if batch_size > 1:
        changes.append("a smaller batch_size")
    if settings is not None and settings.tile_size:
        changes.append("a smaller tile_size")
    else:
        changes.append(f"tile_size {max(256, settings.image_size // 2)}" if settings else "tile_size")
    return f"out of memory on {where}{size}{batch}: use {', '.join(changes[:-1])} or {changes[-1]}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
