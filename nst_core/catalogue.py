"""What each backbone offers, without torch: layer names, default layers, each layer's convolution and
pooling windows (so the smallest usable image), where its ImageNet weights live.

Settings, the CLI and ``validate`` need these facts; keeping them free of torch lets them start in a
fraction of a second. ``backbones`` builds the networks themselves (a test checks that the two agree).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "NETWORKS",
    "RANDOM_WEIGHTS",
    "Network",
    "Window",
    "imagenet_cache_path",
    "layer_names",
    "min_side",
    "windows_to",
]

RANDOM_WEIGHTS = re.compile(r"^random:(\d+)$")


@dataclass(frozen=True)
class Window:
    """A convolution or pooling window along one axis."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    ceil: bool = False

    def out(self, length: int) -> int:
        """Output length, as torch computes it (< 1: torch refuses the input)."""
        span = length + 2 * self.padding - self.dilation * (self.kernel - 1) - 1
        n = (-(-span // self.stride) if self.ceil else span // self.stride) + 1
        if self.ceil and (n - 1) * self.stride >= length + self.padding:
            n -= 1  # the last window must start inside the input or its left padding
        return n


CONV3 = (Window(3, padding=1),)  # VGG's convolutions keep the size
POOL2 = (Window(2, 2),)
FIRE = (Window(1), Window(1), Window(3, padding=1))  # squeeze, expand 1x1, expand 3x3 (as module order lists them)
POOL3 = (Window(3, 2, ceil=True),)  # SqueezeNet's pools


@dataclass(frozen=True)
class Network:
    """A backbone's layer names (one per child of torchvision's ``features``), each layer's windows and
    the defaults."""

    layers: tuple[str, ...]
    windows: tuple[tuple[Window, ...], ...]  # per layer, in module order
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    imagenet_url: str  # torchvision's IMAGENET1K_V1 weights file


def _vgg(convs_per_block: tuple[int, ...], imagenet_url: str) -> Network:
    names: list[str] = []
    windows: list[tuple[Window, ...]] = []
    for block, convs in enumerate(convs_per_block, start=1):
        for n in range(1, convs + 1):
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
            windows += [CONV3, ()]
        names.append(f"pool{block}")
        windows.append(POOL2)
    return Network(
        layers=tuple(names),
        windows=tuple(windows),
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
        windows=(
            (Window(3, 2),),
            (),
            POOL3,
            FIRE,
            FIRE,
            POOL3,
            FIRE,
            FIRE,
            POOL3,
            FIRE,
            FIRE,
            FIRE,
            FIRE,
        ),
        content_layers=("fire5",),
        style_layers=("relu1", "fire2", "fire3", "fire5", "fire7"),
        imagenet_url=f"{_MODELS}/squeezenet1_1-b8a52dc0.pth",
    ),
}


def layer_names(backbone: str) -> tuple[str, ...]:
    """Every layer name ``backbone`` offers, in network order."""
    return NETWORKS[backbone].layers


def windows_to(backbone: str, layer: str) -> tuple[Window, ...]:
    """Every window from the input up to and including ``layer``'s, in order."""
    network = NETWORKS[backbone]
    return tuple(w for per_layer in network.windows[: network.layers.index(layer) + 1] for w in per_layer)


@functools.cache
def min_side(backbone: str, layer: str) -> int:
    """The shortest image side, in pixels, that ``backbone`` can take through ``layer`` (and every layer before it)."""
    windows = windows_to(backbone, layer)
    side = 1
    while not _fits(windows, side):
        side += 1
    return side


def _fits(windows: tuple[Window, ...], length: int) -> bool:
    for window in windows:
        length = window.out(length)
        if length < 1:
            return False
    return True


def imagenet_cache_path(backbone: str) -> Path:
    """Where torchvision keeps ``backbone``'s ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file>``.

    Computed as torch.hub does (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``).
    """
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints" / Path(urlparse(NETWORKS[backbone].imagenet_url).path).name
