"""Styles placed by masks (guided Gram matrices) and kept pixels: the engine's side."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core import BatchJob, InputError, Settings, render, render_batch
from nst_core.backbones import load_backbone
from nst_core.catalogue import windows_to
from nst_core.color import match_color_statistics
from nst_core.images import resize_long_side
from nst_core.losses import gram_loss, gram_matrix, style_loss
from nst_core.masks import layer_mask, mask_at
from nst_core.regions import regions_on
from tests.conftest import make_image

TINY = {"weights": "random:0", "device": "cpu"}


def mask_image(array: np.ndarray) -> Image.Image:
    """A greyscale mask image from an (H, W) array in [0, 1]."""
    return Image.fromarray(np.rint(array * 255).astype(np.uint8), mode="L")


def halves(height: int, width: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) masks of an image split at column ``split``."""
    left = np.zeros((height, width), np.float32)
    left[:, :split] = 1
    return left, 1 - left


def net_and_layers(backbone: str = "vgg19") -> tuple:
    s = Settings(backbone=backbone, **TINY)
    return load_backbone(backbone, "random:0", "max", "cpu").cut(s.style_layers), s


def test_a_mask_white_everywhere_gives_exactly_the_ordinary_gram_loss_gradient_and_render() -> None:
    net, s = net_and_layers()
    image = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    regions = regions_on(net, [np.ones((64, 48), np.float32)], s.style_layers, s)
    with torch.no_grad():
        style_feats = net(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)), s.style_layers)
    targets = {name: gram_matrix(f) for name, f in style_feats.items()}
    weights = {name: 1.0 + i for i, name in enumerate(s.style_layers)}

    x = image.clone().requires_grad_(True)
    plain = style_loss(net(x, s.style_layers), targets, weights)
    plain.backward()
    y = image.clone().requires_grad_(True)
    feats = net(y, s.style_layers)
    guided = regions.grams(feats)
    for name in s.style_layers:
        assert torch.equal(guided[name, 0], gram_matrix(feats[name]))
    masked = gram_loss(guided, {(n, 0): g for n, g in targets.items()}, {(n, 0): w for n, w in weights.items()})
    masked.backward()
    assert torch.equal(masked, plain)
    assert torch.equal(y.grad, x.grad)

    content, style = make_image(2, (48, 40)), make_image(3, (48, 48))
    settings = Settings(image_size=48, iterations=4, **TINY)
    alone = render(content, [style], settings)
    white = render(content, [style], settings, style_masks=[Image.new("L", (48, 40), 255)])
    assert [step.total for step in white.losses] == [step.total for step in alone.losses]
    assert np.array_equal(np.asarray(white.image), np.asarray(alone.image))


@pytest.mark.parametrize("backbone", ["vgg16", "vgg19"])
def test_masks_that_partition_the_image_give_grams_that_add_up_to_the_whole(backbone: str) -> None:
    """Split on the deepest layer's grid, each region's Gram matrix times its share of the area adds up to the
    whole image's, at every style layer."""
    net, s = net_and_layers(backbone)
    parts = [*halves(64, 64, 32)]
    parts = [parts[0] * (np.arange(64)[:, None] < 32), parts[0] * (np.arange(64)[:, None] >= 32), parts[1]]
    regions = regions_on(net, parts, s.style_layers, s)
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)), s.style_layers)
    guided = regions.grams(feats)
    for name in s.style_layers:
        whole = sum(regions.share(name, r) * guided[name, r] for r in range(3))
        torch.testing.assert_close(whole, gram_matrix(feats[name]), rtol=1e-5, atol=1e-6)
        assert sum(regions.share(name, r) for r in range(3)) == pytest.approx(1)


@pytest.mark.parametrize("backbone", ["vgg19", "squeezenet1_1"])
def test_inside_mode_keeps_exactly_the_positions_that_see_the_region_alone(backbone: str) -> None:
    """Changing every pixel outside the region changes no feature where the inside-mode mask is set (and the
    mask keeps some positions): the erosion follows the network's windows, mirrored edges included."""
    net, s = net_and_layers(backbone)
    region = np.zeros((96, 160), np.float32)
    region[:, :120] = 1  # the left part, touching three edges
    image = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(5))
    other = torch.where(torch.from_numpy(region).bool(), image, torch.rand(1, 3, 96, 160))
    with torch.no_grad():
        a, b = net(image, s.style_layers), net(other, s.style_layers)
    for name in s.style_layers:
        inside = layer_mask(region, windows_to(backbone, name), "inside", 0.5).astype(bool)
        assert inside.any(), name
        same = (a[name] == b[name]).all(dim=1)[0].numpy()
        assert same[inside].all(), name
        assert not same.all(), name  # the change reached the layer


def test_inside_mode_gives_no_style_gradient_outside_the_region_and_simple_mode_does() -> None:
    net, s = net_and_layers("vgg16")
    left, _ = halves(64, 64, 32)
    with torch.no_grad():
        target = {n: gram_matrix(f) for n, f in net(torch.rand(1, 3, 64, 64), s.style_layers).items()}
    grads = {}
    for mode in ("inside", "simple"):
        regions = regions_on(net, [left], s.style_layers, s.model_copy(update={"mask_mode": mode}))
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
        keys = {(n, 0): 1.0 for n in s.style_layers}
        gram_loss(regions.grams(net(x, s.style_layers)), {(n, 0): g for n, g in target.items()}, keys).backward()
        grads[mode] = x.grad[0].abs().sum(0)
    assert grads["inside"][:, 32:].max() == 0
    assert grads["inside"][:, :32].min() > 0 or grads["inside"][:, :16].min() > 0
    assert grads["simple"][:, 32:40].max() > 0  # a plain resize reaches across the border


def test_every_region_receives_gradient() -> None:
    """Three regions, each with its own style: the style loss pushes the pixels of each (the forks' bug: only the
    first region's did)."""
    content, styles = make_image(7, (48, 48)), [make_image(8 + k, (48, 48)) for k in range(3)]
    thirds = [np.zeros((48, 48), np.float32) for _ in range(3)]
    for k, mask in enumerate(thirds):
        mask[:, 16 * k : 16 * (k + 1)] = 1
    result = render(
        content,
        styles,
        Settings(image_size=48, iterations=6, content_weight=0, tv_weight=0, **TINY),
        style_masks=[mask_image(m) for m in thirds],
    )
    change = np.abs(np.asarray(result.image, float) - np.asarray(resize_long_side(content, 48), float)).mean(axis=2)
    per_region = [change[:, 16 * k + 4 : 16 * (k + 1) - 4].mean() for k in range(3)]
    assert min(per_region) > 0.2 * max(per_region) > 0, per_region


def stripes(vertical: bool, colour: tuple[int, int, int]) -> Image.Image:
    """A texture of ``colour`` and black stripes, 4 px wide, down or across."""
    line = np.array(colour)[None, :] * (np.arange(64) % 8 < 4)[:, None]
    return Image.fromarray(np.broadcast_to(line[None] if vertical else line[:, None], (64, 64, 3)).astype(np.uint8))


def test_two_textures_half_and_half_each_in_its_half() -> None:
    """Red vertical stripes on the left, blue horizontal ones on the right, from grey (random weights): each half's
    mean colour and Gram matrices are nearer its own texture's than the other's (a blend would be as near both)."""
    net, s = net_and_layers("vgg16")
    textures = [stripes(True, (230, 40, 30)), stripes(False, (30, 60, 230))]
    masks = [mask_image(half) for half in halves(64, 64, 32)]
    settings = Settings(backbone="vgg16", image_size=64, iterations=20, content_weight=0, tv_weight=0, **TINY)
    result = render(Image.new("RGB", (64, 64), (128, 128, 128)), textures, settings, style_masks=masks)
    out = np.asarray(result.image, np.float32) / 255
    parts = [out[:, :32], out[:, 32:]]
    pixels = [np.asarray(texture, np.float32) / 255 for texture in textures]
    with torch.no_grad():
        grams = [
            {n: gram_matrix(f) for n, f in net(torch.from_numpy(p).permute(2, 0, 1)[None], s.style_layers).items()}
            for p in [*parts, *pixels]
        ]
    for own in (0, 1):
        colour = [np.abs(parts[own].mean((0, 1)) - p.mean((0, 1))).sum() for p in pixels]
        assert colour[own] < 0.6 * colour[1 - own]
        for layer in ("relu2_1", "relu3_1"):
            far = [
                ((grams[own][layer] - grams[2 + k][layer]).norm() / grams[2 + k][layer].norm()).item() for k in (0, 1)
            ]
            assert far[own] < 0.8 * far[1 - own], (layer, far)


@pytest.mark.parametrize(
    "extra", [{}, {"preserve_color": "luminance"}, {"start_size": 24, "level_iterations": 2, "optimizer": "adam"}]
)
def test_kept_pixels_are_the_contents_own_to_the_last_bit(extra: dict, tmp_path) -> None:
    keep = np.zeros((40, 48), np.float32)
    keep[8:30, 10:30] = 1
    mask_image(keep).resize((96, 80)).save(tmp_path / "keep.png")  # read at the output's size
    content = make_image(10, (48, 40))
    settings = Settings(image_size=48, iterations=5, keep_mask=str(tmp_path / "keep.png"), **TINY, **extra)
    out = np.asarray(render(content, [make_image(11, (48, 48))], settings).image)
    original = np.asarray(resize_long_side(content, 48))
    kept = keep.astype(bool)
    assert np.array_equal(out[kept], original[kept])
    assert np.abs(out[~kept].astype(int) - original[~kept]).mean() > 1  # the rest was styled


def test_bad_masks_fail_with_their_reason(tmp_path) -> None:
    content, style = make_image(12, (48, 40)), make_image(13, (48, 48))
    s = Settings(image_size=48, iterations=1, **TINY)
    with pytest.raises(InputError, match="1 style masks for 2 style images"):
        render(content, [style, style], s, style_masks=[Image.new("L", (48, 40), 255)])
    with pytest.raises(InputError, match=r"style mask 1 is 40x40 px, not the aspect ratio of its image \(48x40 px\)"):
        render(content, [style], s, style_masks=[Image.new("L", (40, 40), 255)])
    sliver = np.zeros((40, 48), np.float32)
    sliver[:, :3] = 1
    inside = s.model_copy(update={"mask_mode": "inside"})
    with pytest.raises(InputError, match="style mask 1 is empty at layer relu5_1 at 48 px"):
        render(content, [style], inside, style_masks=[mask_image(sliver)])


def test_histogram_colours_per_region_match_the_regions_mean() -> None:
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    target[..., :, 16:] = target[..., :, 16:] * 0.2  # a dark right half
    source = torch.from_numpy(rng.random((1, 3, 24, 24), dtype=np.float32))
    _, right = halves(32, 32, 16)
    matched = match_color_statistics(source, target, None, right)
    assert matched.mean() == pytest.approx(target[..., :, 16:].mean().item(), abs=0.01)
    assert match_color_statistics(source, target).mean() > 2 * matched.mean()  # the whole image is brighter


def test_mask_read_at_the_render_size_is_soft_and_in_range() -> None:
    grey = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(32, 0)
    at = mask_at(mask_image(grey), (32, 16))
    assert at.shape == (16, 32) and at.min() >= 0 and at.max() <= 1
    assert 0.2 < at[:, 12:20].mean() < 0.8  # grey stays grey


def test_masked_renders_agree_in_tiles_in_batches_and_alone() -> None:
    """Style masks and a style image's own mask: the same losses through 32 px tiles, and the same pixels in a
    batch with an unmasked job as alone (Adam: L-BFGS's line searches part on sums taken in another order)."""
    left, right = halves(40, 48, 24)
    top = np.zeros((64, 64), np.float32)
    top[:32] = 1
    s = Settings(image_size=48, iterations=3, optimizer="adam", **TINY)
    content, styles = make_image(14, (48, 40)), [make_image(15, (64, 64)), make_image(16, (64, 64))]
    masked = BatchJob(content, styles, s, None, [mask_image(left), mask_image(right)], [mask_image(top), None])
    plain = BatchJob(make_image(17, (48, 40)), styles[:1], s)
    alone = render_batch([masked])[0]
    together = render_batch([masked, plain])[0]
    tiled = render_batch([dataclasses.replace(masked, settings=s.model_copy(update={"tile_size": 32}))])[0]
    assert np.array_equal(np.asarray(together.image), np.asarray(alone.image))
    for a, b in zip(alone.losses, tiled.losses, strict=True):
        assert (b.content, b.style, b.total) == pytest.approx((a.content, a.style, a.total), rel=1e-4)
    unmasked_source = render_batch([dataclasses.replace(masked, style_image_masks=())])[0]
    assert unmasked_source.losses[0].style != pytest.approx(alone.losses[0].style, rel=1e-3)  # the mask mattered
