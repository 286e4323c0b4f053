"""Weights: state dicts from paths and URIs, random weights, the offline ImageNet cache, and clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models

from nst_core.backbones import load_backbone
from nst_core.catalogue import imagenet_cache_path
from nst_core.errors import StorageError, WeightsError, WeightsNotFoundError

IMAGENET_FILE = "squeezenet1_1-b8a52dc0.pth"  # torchvision's file name for SqueezeNet 1.1's ImageNet weights


@pytest.fixture(autouse=True)
def clear_backbone_cache() -> Iterator[None]:
    """``load_backbone`` is lru_cached per process: each test here must really load its weights."""
    load_backbone.cache_clear()
    yield
    load_backbone.cache_clear()


@pytest.fixture
def squeezenet() -> nn.Module:
    torch.manual_seed(0)
    return models.squeezenet1_1()


def assert_loaded(net: nn.Module, features: nn.Sequential) -> None:
    """Every conv of the loaded backbone equals the saved model's, in order."""
    loaded = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    saved = [m for m in features.modules() if isinstance(m, nn.Conv2d)]
    assert len(loaded) == len(saved) > 0
    for a, b in zip(loaded, saved, strict=True):
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
        torch.testing.assert_close(a.bias, b.bias, rtol=0, atol=0)


@pytest.mark.parametrize("part", ["whole model", "features only"])
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_state_dict_file(tmp_path: Path, squeezenet: nn.Module, part: str, as_uri: bool) -> None:
    state = squeezenet.state_dict() if part == "whole model" else squeezenet.features.state_dict()
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    net = load_backbone("squeezenet1_1", path.as_uri() if as_uri else str(path), "max", "cpu")
    assert_loaded(net, squeezenet.features)
    assert not any(p.requires_grad for p in net.parameters())


def test_loaded_weights_differ_from_random(tmp_path: Path, squeezenet: nn.Module) -> None:
    path = tmp_path / "weights.pth"
    torch.save(squeezenet.state_dict(), path)
    loaded = load_backbone("squeezenet1_1", str(path), "max", "cpu")
    random = load_backbone("squeezenet1_1", "random:0", "max", "cpu")
    assert not torch.equal(loaded.body.conv1.weight, random.body.conv1.weight)


def test_random_weights_are_seeded() -> None:
    first = load_backbone("squeezenet1_1", "random:0", "max", "cpu").body.conv1.weight.clone()
    load_backbone.cache_clear()
    again = load_backbone("squeezenet1_1", "random:0", "max", "cpu").body.conv1.weight
    other = load_backbone("squeezenet1_1", "random:1", "max", "cpu").body.conv1.weight
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_load_backbone_is_lru_cached(tmp_path: Path, squeezenet: nn.Module) -> None:
    path = tmp_path / "weights.pth"
    torch.save(squeezenet.state_dict(), path)
    net = load_backbone("squeezenet1_1", str(path), "max", "cpu")
    path.unlink()  # a cached net does not read the file again
    assert load_backbone("squeezenet1_1", str(path), "max", "cpu") is net
    load_backbone.cache_clear()
    with pytest.raises(WeightsNotFoundError):
        load_backbone("squeezenet1_1", str(path), "max", "cpu")


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_missing_file(tmp_path: Path, as_uri: bool) -> None:
    path = tmp_path / "nowhere" / "weights.pth"
    uri = path.as_uri() if as_uri else str(path)
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone("squeezenet1_1", uri, "max", "cpu")
    assert str(info.value) == f"weights {uri}: file not found"
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, WeightsError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a checkpoint\n", "not a PyTorch state dict"),
        ([1, 2, 3], "holds a list, not a state dict"),
        (torch.zeros(3), "holds a Tensor, not a state dict"),
    ],
    ids=["text", "list", "tensor"],
)
def test_not_a_state_dict(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(WeightsError, match=message) as info:
        load_backbone("squeezenet1_1", str(path), "max", "cpu")
    assert not isinstance(info.value, WeightsNotFoundError)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a folder") as info:
        load_backbone("squeezenet1_1", str(tmp_path), "max", "cpu")
    assert str(tmp_path) in str(info.value)


def test_state_dict_of_another_backbone(tmp_path: Path, squeezenet: nn.Module) -> None:
    path = tmp_path / "squeezenet.pth"
    torch.save(squeezenet.state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit this backbone") as info:
        load_backbone("vgg19", str(path), "max", "cpu")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "state",
    [
        {"0.weight": torch.zeros(1)},  # wrong shape
        {"classifier.1.weight": torch.zeros(1)},  # no features at all
        {"conv1.weight": torch.zeros(64, 3, 3, 3)},  # not torchvision's key layout
        {"99.weight": torch.zeros(1)},  # index past the last layer
    ],
    ids=["shape", "no-features", "named-keys", "index"],
)
def test_state_dict_that_does_not_fit(tmp_path: Path, state: dict) -> None:
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError):
        load_backbone("squeezenet1_1", str(path), "max", "cpu")


def test_imagenet_cache_path_follows_torch_home(offline_torch_home: Path) -> None:
    expected = offline_torch_home / "hub" / "checkpoints" / IMAGENET_FILE
    assert imagenet_cache_path("squeezenet1_1") == expected


def test_imagenet_offline_without_cache(offline_torch_home: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone("squeezenet1_1", "imagenet", "max", "cpu")
    message = str(info.value)
    assert IMAGENET_FILE in message
    assert str(offline_torch_home / "hub" / "checkpoints") in message
    assert "--weights" in message


def test_imagenet_offline_from_cache(offline_torch_home: Path, squeezenet: nn.Module) -> None:
    cached = offline_torch_home / "hub" / "checkpoints" / IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    torch.save(squeezenet.state_dict(), cached)
    net = load_backbone("squeezenet1_1", "imagenet", "max", "cpu")
    assert_loaded(net, squeezenet.features)


def test_imagenet_corrupt_cache(offline_torch_home: Path) -> None:
    cached = offline_torch_home / "hub" / "checkpoints" / IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError) as info:
        load_backbone("squeezenet1_1", "imagenet", "max", "cpu")
    assert str(cached) in str(info.value)
