"""Choosing the device and precision of a render."""

from __future__ import annotations

import contextlib
import logging

import torch

from nst_core.errors import SettingsError

__all__ = ["autocast", "pick_device", "pick_precision"]

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; an explicit device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type in available and not available[device.type]():
        raise SettingsError([("device", f"{name} was asked for but is not available here")])
    return device


def pick_precision(precision: str, device: torch.device) -> str:
    """bf16 autocast only on CUDA; elsewhere fall back to fp32 with a warning."""
    if precision == "bf16" and device.type != "cuda":
        log.warning("precision bf16 needs CUDA; rendering in fp32 on %s", device)
        return "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
