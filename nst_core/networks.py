"""What each backbone offers, without torch: layer names, default layers, where its ImageNet weights live.

Settings, the CLI and ``validate`` need these facts; keeping them free of torch lets them start in a
fraction of a second. ``backbones`` builds the networks themselves (a test checks that the two agree).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["NETWORKS", "RANDOM_WEIGHTS", "Network", "imagenet_cache_path", "layer_names"]

RANDOM_WEIGHTS = re.compile(r"^random:(\d+)$")


@dataclass(frozen=True)
class Network:
    """A backbone's layer names (one per child of torchvision's ``features``) and defaults."""

    layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    imagenet_url: str  # torchvision's IMAGENET1K_V1 weights file


def _vgg(convs_per_block: tuple[int, ...], imagenet_url: str) -> Network:
    names: list[str] = []
    for block, convs in enumerate(convs_per_block, start=1):
        for n in range(1, convs + 1):
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
        names.append(f"pool{block}")
    return Network(
        layers=tuple(names),
        # Gatys et al.'s layers, as gordicaleksa uses them (its "conv4_2" content layer is read
        # after torchvision's in-place ReLU, so it is relu4_2 in effect).
        content_layers=("relu4_2",),
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        imagenet_url=imagenet_url,
    )


_MODELS = "https://download.pytorch.org/models"
NETWORKS: dict[str, Network] = {
    "vgg19": _vgg((2, 2, 4, 4, 4), f"{_MODELS}/vgg19-dcbb9e9d.pth"),
    "vgg16": _vgg((2, 2, 3, 3, 3), f"{_MODELS}/vgg16-397923af.pth"),
    "squeezenet1_1": Network(
        layers=(
            "conv1",
            "relu1",
            "pool1",
            "fire2",
            "fire3",
            "pool3",
            "fire4",
            "fire5",
            "pool5",
            "fire6",
            "fire7",
            "fire8",
            "fire9",
        ),
        content_layers=("fire5",),
        style_layers=("relu1", "fire2", "fire3", "fire5", "fire7"),
        imagenet_url=f"{_MODELS}/squeezenet1_1-b8a52dc0.pth",
    ),
}


def layer_names(backbone: str) -> tuple[str, ...]:
    """Every layer name ``backbone`` offers, in network order."""
    return NETWORKS[backbone].layers


def imagenet_cache_path(backbone: str) -> Path:
    """Where torchvision keeps ``backbone``'s ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file>``.

    Computed as torch.hub does (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``).
    """
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints" / Path(urlparse(NETWORKS[backbone].imagenet_url).path).name
