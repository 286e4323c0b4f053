"""Backbones: every registry entry builds, names its layers, cuts and reads features correctly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nst_core.backbones import BACKBONES, FeatureNet, load_backbone
from nst_core.catalogue import layer_names


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def build(name: str, pooling: str = "max") -> FeatureNet:
    return load_backbone(name, "random:0", pooling, "cpu")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_registry_entry(name: str) -> None:
    spec = BACKBONES[name]
    net = build(name)

    # one name per module, in order
    assert list(net.body._modules) == list(spec.layers) == list(layer_names(name))
    assert len(list(net.body.children())) == len(spec.layers)
    assert len(set(spec.layers)) == len(spec.layers)
    assert set(spec.content_layers) <= set(spec.layers)
    assert set(spec.style_layers) <= set(spec.layers)

    # frozen and in eval mode
    assert not net.training
    assert all(not module.training for module in net.modules())
    params = list(net.parameters())
    assert params
    assert not any(p.requires_grad for p in params)

    # cut ends at the deepest requested layer and shares the modules
    wanted = [spec.layers[len(spec.layers) // 2], spec.layers[1]]
    cut = net.cut(wanted)
    assert list(cut.body._modules) == list(spec.layers[: len(spec.layers) // 2 + 1])
    assert all(cut.body._modules[n] is net.body._modules[n] for n in cut.body._modules)

    # forward returns exactly the requested layers, with sensible shapes and the full net's values
    image = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    feats = cut(image, wanted)
    assert set(feats) == set(wanted)
    full = net(image, wanted)
    shallow, deep = feats[spec.layers[1]], feats[wanted[0]]
    for feat in (shallow, deep):
        assert feat.dim() == 4
        assert feat.shape[0] == 1
        assert feat.shape[1] > 3
        assert torch.isfinite(feat).all()
    assert deep.shape[-2] <= shallow.shape[-2] <= 64
    assert deep.shape[-1] <= shallow.shape[-1] <= 48
    assert deep.shape[-2] < 64  # the middle of every backbone has pooled at least once
    for layer in wanted:
        torch.testing.assert_close(feats[layer], full[layer])

    # every layer can be read
    everything = net(image, spec.layers)
    assert list(everything) == list(spec.layers)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_relus_are_not_inplace(name: str) -> None:
    net = build(name)
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert relus
    assert not any(relu.inplace for relu in relus)


@pytest.mark.parametrize(
    ("name", "conv", "relu"), [("vgg19", "conv4_2", "relu4_2"), ("squeezenet1_1", "conv1", "relu1")]
)
def test_conv_layer_is_read_before_its_relu(name: str, conv: str, relu: str) -> None:
    net = build(name)
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    feats = net(image, [conv, relu])
    assert (feats[conv] < 0).any()  # pre-activation values survive the ReLU after them
    torch.testing.assert_close(feats[relu], feats[conv].clamp(min=0))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_avg_pooling_replaces_every_max_pool(name: str) -> None:
    max_net, avg_net = build(name, "max"), build(name, "avg")
    max_pools = {n: m for n, m in max_net.body.named_children() if isinstance(m, nn.MaxPool2d)}
    assert max_pools
    assert not any(isinstance(m, nn.MaxPool2d) for m in avg_net.modules())
    for layer, max_pool in max_pools.items():
        avg_pool = avg_net.body._modules[layer]
        assert isinstance(avg_pool, nn.AvgPool2d)
        assert pair(avg_pool.kernel_size) == pair(max_pool.kernel_size)
        assert pair(avg_pool.stride) == pair(max_pool.stride)
        assert avg_pool.ceil_mode == max_pool.ceil_mode
    # the same random weights, so the first pooled layer's outputs differ only by the pooling
    first_pool = next(iter(max_pools))
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    a, b = max_net(image, [first_pool])[first_pool], avg_net(image, [first_pool])[first_pool]
    assert a.shape == b.shape
    assert (a >= b - 1e-5).all()  # the max of a window is at least its mean
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name", ["vgg19", "vgg16"])
def test_vgg_names(name: str) -> None:
    names = layer_names(name)
    assert {"conv1_1", "relu1_1", "conv4_2", "relu4_2", "pool3", "relu5_1", "pool5"} <= set(names)
    n_convs = 16 if name == "vgg19" else 13
    assert sum(n.startswith("conv") for n in names) == n_convs
    assert sum(n.startswith("relu") for n in names) == n_convs
    assert [n for n in names if n.startswith("pool")] == [f"pool{i}" for i in range(1, 6)]
    net = build(name)
    for layer, module in net.body.named_children():
        expected = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[layer[:4]]
        assert isinstance(module, expected), layer


def test_squeezenet_names() -> None:
    names = layer_names("squeezenet1_1")
    assert names[:3] == ("conv1", "relu1", "pool1")
    assert [n for n in names if n.startswith("fire")] == [f"fire{i}" for i in range(2, 10)]
    net = build("squeezenet1_1")
    assert isinstance(net.body.conv1, nn.Conv2d)
    assert isinstance(net.body.pool3, nn.MaxPool2d)
    assert type(net.body.fire5).__name__ == "Fire"


def test_load_backbone_is_cached() -> None:
    load_backbone.cache_clear()
    assert build("squeezenet1_1") is build("squeezenet1_1")
    assert build("squeezenet1_1", "avg") is not build("squeezenet1_1")
    assert load_backbone.cache_info().hits >= 2
