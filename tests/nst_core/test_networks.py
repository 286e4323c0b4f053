"""The torch-free layer catalogue agrees with what torchvision builds and where torch.hub caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nst_core.backbones import BACKBONES
from nst_core.networks import NETWORKS, imagenet_cache_path


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
