"""The network a render runs, prepared once per process: cut, in its memory format, compiled where asked.

The GPU fast path's switches are settings, each kept on by default only where ``bench/throughput.py``
shows that it helps: ``channels_last`` (NHWC convolutions for tensor cores), ``cudnn_benchmark``
(cuDNN times its convolution algorithms for each new input shape and keeps the fastest) and
``compile`` (``torch.compile`` of the cut network; compiling takes seconds to minutes once per
process and input shape, so it pays off over long runs). bf16 autocast (``precision``) covers the
network only: Gram matrices and losses are computed in float32 (``losses``).
"""

from __future__ import annotations

import functools
import logging

import torch

from nst_core.backbones import FeatureNet, load_backbone
from nst_core.device import autocast
from nst_core.settings import Settings

__all__ = ["compiled", "memory_format", "prepare_network"]

log = logging.getLogger(__name__)

PROBE_SIZE = 64  # px: the image compiled networks are tried on, enough for every backbone's deepest layer


def memory_format(s: Settings, device: torch.device) -> torch.memory_format:
    """channels_last where asked for on CUDA; elsewhere the default layout."""
    return torch.channels_last if s.channels_last and device.type == "cuda" else torch.contiguous_format


def prepare_network(s: Settings, device: torch.device, precision: str) -> FeatureNet:
    """The backbone cut after the deepest layer in use, in the settings' memory format, compiled where
    asked. One per process, device and network settings, so that a compiled network is reused, not
    compiled again for every render.

    Raises:
        WeightsNotFoundError, WeightsError: as ``load_backbone``.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = s.cudnn_benchmark  # process-wide, as cuDNN keeps it
    backbone = load_backbone(s.backbone, s.weights, s.pooling, str(device))
    layers = tuple(dict.fromkeys(s.content_layers + s.style_layers))
    return _cut(backbone, layers, s.normalization, memory_format(s, device), precision if s.compile else None)


@functools.lru_cache(maxsize=4)  # keyed by the backbone object: a reloaded backbone is cut again
def _cut(
    backbone: FeatureNet,
    layers: tuple[str, ...],
    normalization: str,
    memory: torch.memory_format,
    compile_for: str | None,
) -> FeatureNet:
    net = backbone.cut(layers, normalization).to(memory_format=memory)
    return net if compile_for is None else compiled(net, layers, compile_for, memory)


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
