"""``torch.compile`` of a render's network (the ``compile`` setting), tried before it is used.

Compiling takes seconds to minutes once per process and input shape, so it pays off over long runs;
where it fails, the render runs the network eagerly (``network.prepare_network`` asks for it).
"""

from __future__ import annotations

import logging

import torch

from nst_core.backbones import FeatureNet
from nst_core.device import autocast

__all__ = ["compiled"]

log = logging.getLogger(__name__)

PROBE_SIZE = 64  # px: the image compiled networks are tried on, enough for every backbone's deepest layer


def compiled(
    net: FeatureNet,
    layers: tuple[str, ...],
    precision: str = "fp32",
    memory: torch.memory_format = torch.contiguous_format,
    backend: str = "inductor",
) -> FeatureNet:
    """``net`` compiled by ``torch.compile``, tried on a small image forward and backward at
    ``precision`` (torch compiles each on first use). Where that fails (no C++ compiler, no Triton,
    an unsupported GPU), it logs why once and returns ``net`` itself: the render runs eagerly, as
    without ``compile``. Otherwise the result is an ``OptimizedModule`` whose attributes are ``net``'s."""
    fast = torch.compile(net, backend=backend, dynamic=True)  # one graph for every image size, batch and tile
    device = net.mean.device
    probe = torch.rand(1, 3, PROBE_SIZE, PROBE_SIZE, device=device).contiguous(memory_format=memory)
    probe.requires_grad_(True)
    try:
        with autocast(device, precision):
            feats = fast(probe, list(layers))
        sum(f.float().sum() for f in feats.values()).backward()
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:  # the compiler's own errors have many types
        reason = " ".join(str(exc).split())[:300]
        log.warning("torch.compile failed, running the network eagerly: %s: %s", type(exc).__name__, reason)
        return net
    return fast  # type: ignore[return-value]  # an OptimizedModule: FeatureNet's attributes pass through
