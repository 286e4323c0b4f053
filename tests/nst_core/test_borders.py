"""The image's border is rendered like its interior: the network sees no frame around the picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import Settings, render
from nst_core.backbones import BACKBONES, MIRROR_PX, load_backbone

SIZE = 48  # longer than the mirrored margin (smaller images have none)
INSIDE = 3  # the rows (columns) just inside a border that it is compared with
TOLERANCE = 4.0  # grey levels


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_a_flat_image_has_flat_features_up_to_its_border(name: str) -> None:
    """A layer whose reach stays within the mirrored margin answers a flat image alike everywhere: with
    zero padding alone, its border positions would see a grey frame around the picture."""
    net = load_backbone(name, "random:0", "max", "cpu")
    near = [layer for layer, g in net.geometry.items() if g.radius <= MIRROR_PX]
    assert len(near) >= 4
    with torch.no_grad():
        feats = net(torch.full((1, 3, 48, 64), 0.9), near)
    for layer, f in feats.items():
        h, w = f.shape[-2:]
        centre = f[..., h // 2 : h // 2 + 1, w // 2 : w // 2 + 1]
        torch.testing.assert_close(f, centre.expand_as(f), rtol=1e-5, atol=1e-6, msg=layer)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_features_keep_their_size_and_do_not_depend_on_the_cut(name: str) -> None:
    """The margin is a whole number of positions at every layer, the same whatever layer the network is cut at."""
    net = load_backbone(name, "random:0", "max", "cpu")
    assert all(MIRROR_PX % g.stride == 0 for g in net.geometry.values())
    image = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(0))
    layers = list(net.geometry)
    with torch.no_grad():
        whole = net(image, layers)
        for layer in layers:
            assert whole[layer].shape[-2:] == net.geometry[layer].size(40, 52)
            torch.testing.assert_close(net.cut([layer])(image, [layer])[layer], whole[layer])


def edge_detector_weights(path: Path, seed: int) -> str:
    """Random VGG16 weights whose kernels have no mean over their window (biases 0): like a trained
    network's, they answer edges, not flat areas, so that a frame around a bright picture stands out."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in BACKBONES["vgg16"].build().state_dict().items():
        if key.endswith("weight"):
            kernel = torch.randn(value.shape, generator=generator) * (2 / value[0].numel()) ** 0.5  # He's scale
            value = kernel - kernel.mean(dim=(-2, -1), keepdim=True)
        state[key] = torch.zeros_like(value) if key.endswith("bias") else value
    torch.save(state, path)
    return str(path)


def bright_top_photo(seed: int) -> tuple[Image.Image, Image.Image]:
    """A photo whose top third is a bright, flat sky over a mid-grey texture, and a style made of that
    texture alone."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    texture = 0.4 + 0.1 * np.sin(x / 2 + y / 3)[..., None] * np.array([1, 0.5, -1])
    texture = texture + 0.03 * rng.standard_normal((SIZE, SIZE, 3))
    photo = texture.copy()
    third = SIZE // 3
    photo[:third] = 0.9 + 0.03 * rng.standard_normal((third, SIZE, 3))
    style = texture.copy()
    style[:third] = texture[third : 2 * third]

    def image(pixels: np.ndarray) -> Image.Image:
        return Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8))

    return image(photo), image(style)


def border_shifts(result: Image.Image, content: Image.Image) -> dict[str, float]:
    """Per border: its mean change (result minus content, grey levels) less that of the lines just inside it."""
    change = (np.asarray(result, dtype=np.float64) - np.asarray(content, dtype=np.float64)).mean(axis=2)
    rows, cols = change.mean(axis=1), change.mean(axis=0)
    return {
        "top": rows[0] - rows[1 : 1 + INSIDE].mean(),
        "bottom": rows[-1] - rows[-1 - INSIDE : -1].mean(),
        "left": cols[0] - cols[1 : 1 + INSIDE].mean(),
        "right": cols[-1] - cols[-1 - INSIDE : -1].mean(),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_the_border_of_a_bright_sky_keeps_its_brightness(tmp_path: Path, seed: int) -> None:
    """Each border row and column changes as much as the lines just inside it (with zero padding alone,
    the top row of the sky came out ~20 grey levels darker than the rows below it)."""
    content, style = bright_top_photo(seed)
    weights = edge_detector_weights(tmp_path / "edges.pth", seed)
    s = Settings(backbone="vgg16", weights=weights, image_size=SIZE, iterations=20, device="cpu")
    result = render(content, [style], s)
    shifts = border_shifts(result.image, content)
    assert all(abs(shift) < TOLERANCE for shift in shifts.values()), shifts
