"""Loading backbone weights: torchvision's ImageNet weights, a state-dict file or URI, or random."""

from __future__ import annotations

import io

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from nst_core.catalogue import NETWORKS, RANDOM_WEIGHTS, imagenet_cache_path
from nst_core.errors import StorageError, WeightsError, WeightsNotFoundError
from nst_core.images import read_bytes

__all__ = ["load_weights"]


def load_weights(body: nn.Sequential, backbone: str, weights: str, imagenet: WeightsEnum) -> None:
    """Fill ``body`` (named children, see ``backbones``) with ``weights`` in place."""
    if match := RANDOM_WEIGHTS.match(weights):
        _init_random(body, int(match.group(1)))
        return
    if weights == "imagenet":
        state, source = _imagenet_state_dict(backbone, imagenet), str(imagenet_cache_path(backbone))
    else:
        state, source = _read_state_dict(weights), weights
    named = _rename_keys(state, NETWORKS[backbone].layers)
    try:
        body.load_state_dict(named, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights {source} do not fit this backbone: {exc}") from exc


def _init_random(body: nn.Sequential, seed: int) -> None:
    """He initialisation (torchvision's VGG scheme), reproducible from ``seed``; for tests."""
    generator = torch.Generator().manual_seed(seed)
    for module in body.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            std = (2.0 / fan_out) ** 0.5
            with torch.no_grad():
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                module.bias.zero_()


def _imagenet_state_dict(backbone: str, imagenet: WeightsEnum) -> dict[str, Tensor]:
    cached = imagenet_cache_path(backbone)
    try:
        return imagenet.get_state_dict(progress=False, check_hash=True)
    except OSError as exc:  # URLError, connection refused, DNS failure: offline
        if cached.exists():
            raise WeightsError(f"cannot read cached ImageNet weights {cached}: {exc}") from exc
        raise WeightsNotFoundError(
            f"ImageNet weights {cached.name} are not in the Torch hub cache ({cached.parent}) and "
            f"could not be downloaded from {imagenet.url} ({exc}). Copy that file to "
            f"{cached}, set TORCH_HOME to a folder holding hub/checkpoints/{cached.name}, "
            "or pass --weights PATH_OR_URI."
        ) from exc
    except Exception as exc:  # a corrupt cached file: unpickling raises many types
        raise WeightsError(
            f"cannot read cached ImageNet weights {cached} (delete it to download again): {exc}"
        ) from exc


def _read_state_dict(uri: str) -> dict[str, Tensor]:
    """The state dict in the file at ``uri``.

    Raises:
        WeightsNotFoundError: there is no such file.
        StorageError: it cannot be read (no access, network).
        WeightsError: it is not a state dict.
    """
    try:
        data = read_bytes(uri, "weights")
    except StorageError as exc:
        if exc.cause == "not found":
            raise WeightsNotFoundError(f"weights {uri}: file not found") from exc
        raise
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a file that is not a state dict
        raise WeightsError(f"{uri} is not a PyTorch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{uri} holds a {type(state).__name__}, not a state dict")
    return state


def _rename_keys(state: dict[str, Tensor], layers: tuple[str, ...]) -> dict[str, Tensor]:
    """Map ``features.{i}.*`` (whole model) or ``{i}.*`` (features only) keys to layer names."""
    if any(key.startswith("features.") for key in state):
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    renamed = {}
    for key, value in state.items():
        index, _, rest = key.partition(".")
        if not index.isdigit() or int(index) >= len(layers):
            raise WeightsError(f"unexpected key {key!r} in weights (expected torchvision's layout)")
        renamed[f"{layers[int(index)]}.{rest}"] = value
    return renamed
