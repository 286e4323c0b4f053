"""Scale-free losses: a weight means the same at any image size and on any network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from nst_core import Settings, StepInfo, render
from nst_core.backbones import load_backbone


def first_step(content: Image.Image, style: Image.Image, **values: Any) -> tuple[StepInfo, Settings]:
    """The loss terms at the first iteration of a noise-initialised single-scale render."""
    settings = Settings.from_values(
        {"weights": "random:0", "init": "noise", "iterations": 1, "start_size": 0, "device": "cpu"} | values
    )
    return render(content, [style], settings).losses[0], settings


def style_over_content(content: Image.Image, style: Image.Image, **values: Any) -> float:
    step, s = first_step(content, style, **values)
    return (s.style_weight * step.style) / (s.content_weight * step.content)


@pytest.mark.parametrize("backbone", ["vgg19", "squeezenet1_1"])
def test_the_balance_of_style_and_content_does_not_depend_on_the_size(
    pil_image: Callable[..., Image.Image], backbone: str
) -> None:
    content, style = pil_image(1, (128, 96)), pil_image(2, (128, 128))
    small = style_over_content(content, style, image_size=32, backbone=backbone)
    large = style_over_content(content, style, image_size=64, backbone=backbone)
    assert 0.5 < large / small < 2


def test_the_balance_does_not_depend_on_the_network(pil_image: Callable[..., Image.Image]) -> None:
    content, style = pil_image(1, (64, 48)), pil_image(2, (64, 64))
    one = style_over_content(content, style, image_size=64, weights="random:0")
    other = style_over_content(content, style, image_size=64, weights="random:1")
    assert 0.5 < other / one < 2


def scaled_vgg19(path: Path, factor: float) -> str:
    """random:0's VGG19 with each conv layer's output ``factor`` times larger: the features of
    layer k scale by factor**k exactly (ReLU and pooling are positively homogeneous)."""
    state = {}
    body = load_backbone("vgg19", "random:0", "max", "cpu").body
    k = 0
    for index, module in enumerate(body):
        if isinstance(module, nn.Conv2d):
            k += 1
            state[f"{index}.weight"] = module.weight.detach() * factor
            state[f"{index}.bias"] = module.bias.detach() * factor**k
    torch.save(state, path)
    return str(path)


def test_the_terms_do_not_depend_on_the_activations_scale(
    tmp_path: Path, pil_image: Callable[..., Image.Image]
) -> None:
    content, style = pil_image(1, (64, 48)), pil_image(2, (64, 64))
    scaled = scaled_vgg19(tmp_path / "scaled.pth", 3.0)
    for normalization, same in (("target", True), ("reference", False)):
        one, _ = first_step(content, style, image_size=32, normalization=normalization)
        other, _ = first_step(content, style, image_size=32, normalization=normalization, weights=scaled)
        close = other.style == pytest.approx(one.style, rel=1e-3) and other.content == pytest.approx(
            one.content, rel=1e-3
        )
        assert close is same


def test_terms_are_relative_errors(pil_image: Callable[..., Image.Image]) -> None:
    """From noise, each term is of order 1: no network-specific scale is left in them."""
    step, _ = first_step(pil_image(1, (64, 48)), pil_image(2, (64, 64)), image_size=64)
    assert 0.05 < step.content < 20
    assert 0.05 < step.style < 1e3


def test_reference_defaults_are_gordicaleksas_weights() -> None:
    reference = Settings(normalization="reference")
    assert (reference.content_weight, reference.style_weight, reference.tv_weight) == (1e5, 3e4, 1.0)
    default = Settings()
    assert (default.content_weight, default.style_weight, default.tv_weight) != (1e5, 3e4, 1.0)
    assert Settings(normalization="reference", style_weight=5).style_weight == 5
