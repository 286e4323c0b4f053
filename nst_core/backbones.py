"""Pretrained CNN backbones with readable layer names, cut after the deepest layer in use.

VGG layers are named ``conv{block}_{n}``, ``relu{block}_{n}`` and ``pool{block}`` (Simonyan &
Zisserman's numbering). SqueezeNet 1.1 layers are named as in its paper: ``conv1``, ``relu1``,
``pool1``, ``fire2``, ``fire3``, ``pool3``, ``fire4``, ``fire5``, ``pool5``, ``fire6`` ... ``fire9``
(a ``fire`` layer is the concatenated output of its expand convolutions, after their ReLUs).
The names, windows and default layers live in ``catalogue`` (no torch); this module builds the networks.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models
from torchvision.models import vgg as tv_vgg

from nst_core.catalogue import NETWORKS, Network, Window
from nst_core.weights import load_weights

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "BackboneSpec",
    "FeatureNet",
    "Geometry",
    "layer_geometry",
    "load_backbone",
    "mirror_margin",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Images are optimised as RGB in [0, 1]. The network sees (pixel - mean) / std, the input its
# torchvision weights were trained on; with normalization="reference" it sees (pixel - mean) * 255
# instead, as in gordicaleksa/pytorch-neural-style-transfer, whose loss weights assume activations
# ~57x larger.
INPUT_SCALE = {"target": tuple(1 / s for s in IMAGENET_STD), "reference": (255.0, 255.0, 255.0)}
# The network sees the image extended by its own mirror image, MIRROR_PX on every side, and only the features of
# the image itself are read (``FeatureNet.forward``). Every convolution pads with zeros, i.e. with ImageNet's mean
# grey: on the bare image the layers see a grey frame, an edge that is not in the picture, and the style loss
# repaints the border pixels around it (the top row of a bright sky came out ~25 grey levels darker than the rows
# below it, with the edge detectors of trained weights). A margin puts the frame out of reach of the border's
# features: 32 px was measured as enough, 16 px not quite. It costs its pixels: 1.31x at 512x384 px (forward and
# backward ~1.4x the time on a CPU), 2x at 192x144. It is a multiple of every backbone's stride, so that the
# image's features sit on the grid they have without it, whatever layer the network is cut at. An image whose
# short side is not longer than the margin (tiny: tests, thumbnails) is not extended: the mirror would be more
# than the image, and would cost ~10x its pixels.
MIRROR_PX = 32


@dataclass(frozen=True)
class BackboneSpec(Network):
    """A ``Network`` and how to build it with torchvision."""

    build: Callable[[], nn.Sequential]  # torchvision's ``features`` module, randomly initialised
    imagenet: models.WeightsEnum


def _spec(name: str, build: Callable[[], nn.Sequential], imagenet: models.WeightsEnum) -> BackboneSpec:
    return BackboneSpec(**vars(NETWORKS[name]), build=build, imagenet=imagenet)


BACKBONES: dict[str, BackboneSpec] = {
    "vgg19": _spec("vgg19", lambda: tv_vgg.make_layers(tv_vgg.cfgs["E"]), models.VGG19_Weights.IMAGENET1K_V1),
    "vgg16": _spec("vgg16", lambda: tv_vgg.make_layers(tv_vgg.cfgs["D"]), models.VGG16_Weights.IMAGENET1K_V1),
    "squeezenet1_1": _spec(
        "squeezenet1_1", lambda: models.squeezenet1_1().features, models.SqueezeNet1_1_Weights.IMAGENET1K_V1
    ),
}


@dataclass(frozen=True)
class Geometry:
    """Where a layer's positions sit in the input: ``stride`` pixels apart, each reaching at most
    ``radius`` pixels either side of its own."""

    stride: int
    radius: int
    windows: tuple[Window, ...]  # every window from the input to this layer

    def size(self, height: int, width: int) -> tuple[int, int]:
        for window in self.windows:
            height, width = window.out(height), window.out(width)
        return height, width


def _side(value: int | tuple[int, ...] | str) -> int:
    if isinstance(value, str):
        raise ValueError(f"a layer's geometry needs numeric padding, got {value!r}")
    return value[0] if isinstance(value, tuple) else value


def layer_geometry(body: nn.Sequential) -> dict[str, Geometry]:
    """Each named layer's ``Geometry``. Windows inside a layer (a SqueezeNet fire's parallel
    expands) are counted one after another, which can only overstate the radius."""
    stride, radius, windows, result = 1, 0, [], {}
    for name, child in body.named_children():
        for module in child.modules():
            if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
                k, s, p = (_side(getattr(module, a)) for a in ("kernel_size", "stride", "padding"))
                d = _side(getattr(module, "dilation", 1))
                windows.append(Window(k, s, p, d, getattr(module, "ceil_mode", False)))
                radius += max(p, (k - 1) * d - p) * stride
                stride *= s
        result[name] = Geometry(stride, radius, tuple(windows))
    return result


def mirror_margin(height: int, width: int) -> int:
    """The mirrored margin, in pixels, of an image of ``height`` x ``width`` (see ``MIRROR_PX``)."""
    return MIRROR_PX if min(height, width) > MIRROR_PX else 0


class FeatureNet(nn.Module):
    """A frozen feature extractor: image in [0, 1] -> dict of named layer activations (of the image
    mirrored beyond its edges, see ``MIRROR_PX``)."""

    def __init__(self, body: nn.Sequential, normalization: str = "target"):
        super().__init__()
        self.body = body
        self.geometry = layer_geometry(body)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(INPUT_SCALE[normalization]).view(1, 3, 1, 1))

    def forward(self, image: Tensor, layers: Iterable[str], margin: int | None = None) -> dict[str, Tensor]:
        """The features of ``image`` (N, 3, H, W) at ``layers``, each as large as the layer makes them
        from (H, W): those of the mirrored margin are left out. ``margin``: the image's own
        (``mirror_margin``) unless given (a tile's crop takes its whole image's)."""
        wanted = set(layers)
        margin = mirror_margin(*image.shape[-2:]) if margin is None else margin
        x = F.pad((image - self.mean) * self.scale, (margin, margin, margin, margin), mode="reflect")
        feats: dict[str, Tensor] = {}
        for name, module in self.body.named_children():
            x = module(x)
            if name in wanted:
                k = margin // self.geometry[name].stride  # the margin's width at this layer
                feats[name] = x[..., k : x.shape[-2] - k, k : x.shape[-1] - k]
        return feats

    def cut(self, layers: Iterable[str], normalization: str = "target") -> FeatureNet:
        """A view of this network that ends at the deepest of ``layers`` (modules are shared), taking
        the input that ``normalization`` implies."""
        names = list(self.body._modules)
        last = max(names.index(layer) for layer in layers)
        body = nn.Sequential(OrderedDict((n, self.body._modules[n]) for n in names[: last + 1]))
        cut = FeatureNet(body, normalization)
        return cut.to(self.mean.device)


def _named(spec: BackboneSpec, pooling: str) -> nn.Sequential:
    """torchvision's features with named children, non-inplace ReLUs and the chosen pooling."""
    features = spec.build()
    children = OrderedDict()
    for name, module in zip(spec.layers, features, strict=True):
        if pooling == "avg" and isinstance(module, nn.MaxPool2d):
            # Same window, stride and rounding as the max pool it replaces (Gatys et al. prefer it).
            module = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
        children[name] = module
    body = nn.Sequential(children)
    for module in body.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False  # conv outputs we read must not be overwritten by their ReLU
    return body


@functools.lru_cache(maxsize=4)
def load_backbone(backbone: str, weights: str, pooling: str, device: str) -> FeatureNet:
    """Build, load and freeze a backbone once per process (per worker) and reuse it.

    Raises:
        WeightsNotFoundError: the weights are missing and cannot be downloaded.
        WeightsError: the weights do not fit the backbone.
    """
    spec = BACKBONES[backbone]
    body = _named(spec, pooling)
    load_weights(body, backbone, weights, spec.imagenet)
    net = FeatureNet(body).eval().requires_grad_(False)
    return net.to(device)
