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
from torch import Tensor, nn
from torchvision import models
from torchvision.models import vgg as tv_vgg

from nst_core.catalogue import NETWORKS, Network
from nst_core.weights import load_weights

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "BackboneSpec",
    "FeatureNet",
    "load_backbone",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Images are optimised as RGB in [0, 1]. The network sees (pixel - mean) / std, the input its
# torchvision weights were trained on; with normalization="reference" it sees (pixel - mean) * 255
# instead, as in gordicaleksa/pytorch-neural-style-transfer, whose loss weights assume activations
# ~57x larger.
INPUT_SCALE = {"target": tuple(1 / s for s in IMAGENET_STD), "reference": (255.0, 255.0, 255.0)}


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


class FeatureNet(nn.Module):
    """A frozen feature extractor: image in [0, 1] -> dict of named layer activations."""

    def __init__(self, body: nn.Sequential, normalization: str = "target"):
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(INPUT_SCALE[normalization]).view(1, 3, 1, 1))

    def forward(self, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        wanted = set(layers)
        x = (image - self.mean) * self.scale
        feats: dict[str, Tensor] = {}
        for name, module in self.body.named_children():
            x = module(x)
            if name in wanted:
                feats[name] = x
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
