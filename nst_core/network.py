"""The network a render runs, prepared once per process: the backbone cut after the deepest layer in use,
in its memory format, compiled where asked.

The GPU fast path's switches are settings, each kept on by default only where ``bench/throughput.py``
shows that it helps: ``channels_last`` (NHWC convolutions for tensor cores), ``cudnn_benchmark``
(cuDNN times its convolution algorithms for each new input shape and keeps the fastest) and
``compile`` (``fastpath``). bf16 autocast (``precision``) covers the network only: Gram matrices and
losses are computed in float32 (``losses``).
"""

from __future__ import annotations

import functools

import torch

from nst_core.backbones import FeatureNet, load_backbone
from nst_core.settings import Settings

__all__ = ["memory_format", "prepare_network"]


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
    return net if compile_for is None else _compiled(net, layers, compile_for, memory)


def _compiled(net: FeatureNet, layers: tuple[str, ...], precision: str, memory: torch.memory_format) -> FeatureNet:
    from nst_core.fastpath import compiled  # the compiler's machinery only where asked for

    return compiled(net, layers, precision, memory)
