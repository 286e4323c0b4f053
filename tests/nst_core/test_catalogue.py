"""The torch-free layer catalogue agrees with what torchvision builds (layers, windows, the smallest image it
takes) and where torch.hub caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nst_core.backbones import BACKBONES, layer_geometry, load_backbone
from nst_core.catalogue import NETWORKS, imagenet_cache_path, min_side


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_catalogue_matches_torchvision(name: str) -> None:
    spec = BACKBONES[name]
    assert NETWORKS[name].imagenet_url == spec.imagenet.url
    assert len(NETWORKS[name].layers) == len(spec.build())


@pytest.mark.parametrize(
    "env",
    [{"TORCH_HOME": "/models/torch"}, {"XDG_CACHE_HOME": "/cache"}, {}],
    ids=["TORCH_HOME", "XDG_CACHE_HOME", "default"],
)
def test_cache_path_is_torch_hubs(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = Path(torch.hub.get_dir()) / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert imagenet_cache_path("vgg19") == expected


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_catalogue_windows_are_the_built_networks(name: str) -> None:
    """Each layer's windows in the catalogue are those of torchvision's modules (as tiling reads them)."""
    built = layer_geometry(load_backbone(name, "random:0", "max", "cpu").body)
    layers = NETWORKS[name].layers
    for index, layer in enumerate(layers):
        catalogue = tuple(window for per_layer in NETWORKS[name].windows[: index + 1] for window in per_layer)
        assert catalogue == built[layer].windows, layer


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_min_side_is_the_smallest_image_the_network_takes(name: str) -> None:
    """At ``min_side`` px every layer up to the named one runs; one pixel less, torch refuses the image."""
    net = load_backbone(name, "random:0", "max", "cpu")
    for layer in NETWORKS[name].layers:
        side, cut = min_side(name, layer), net.cut([layer])
        with torch.no_grad():
            assert cut(torch.zeros(1, 3, side, side + 7), [layer])[layer].shape[-2] >= 1
            if side > 1:
                with pytest.raises(RuntimeError):
                    cut(torch.zeros(1, 3, side + 7, side - 1), [layer])
