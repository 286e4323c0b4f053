"""Colour preservation: YUV conversions, colour-statistics matching and chroma transfer."""

from __future__ import annotations

import torch

from nst_core.color import match_color_statistics, rgb_to_yuv, transfer_luminance, with_chroma_of, yuv_to_rgb


def rand_image(seed: int, h: int = 12, w: int = 10, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))
    return low + (high - low) * x


def channel_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image[0].flatten(1).double()
    return pixels.mean(1), torch.cov(pixels)


def test_yuv_round_trip() -> None:
    image = rand_image(0)
    yuv = rgb_to_yuv(image)
    assert yuv.shape == image.shape
    torch.testing.assert_close(yuv_to_rgb(yuv), image, atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb_to_yuv(yuv_to_rgb(yuv)), yuv, atol=1e-5, rtol=0)


def test_yuv_of_known_colours() -> None:
    grey = torch.full((1, 3, 2, 2), 0.6)
    yuv = rgb_to_yuv(grey)
    torch.testing.assert_close(yuv[:, 0], torch.full((1, 2, 2), 0.6))  # BT.601 luma weights sum to 1
    torch.testing.assert_close(yuv[:, 1:], torch.zeros(1, 2, 2, 2), atol=1e-5, rtol=0)  # greys have no chroma
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1
    torch.testing.assert_close(rgb_to_yuv(red)[0, :, 0, 0], torch.tensor([0.299, -0.14713, 0.615]))


def test_yuv_keeps_dtype() -> None:
    image = rand_image(1).double()
    assert rgb_to_yuv(image).dtype == torch.float64
    assert yuv_to_rgb(image).dtype == torch.float64


def test_match_color_statistics() -> None:
    source = rand_image(0, 16, 16, 0.3, 0.7)
    # a target with correlated channels and a different mean, well inside [0, 1]
    base = rand_image(1, 20, 12)
    mix = torch.tensor([[0.20, 0.05, 0.00], [0.05, 0.15, 0.05], [0.00, 0.10, 0.10]])
    target = torch.einsum("ij,bjhw->bihw", mix, base) + torch.tensor([0.2, 0.4, 0.5]).view(1, 3, 1, 1)
    assert target.min() >= 0 and target.max() <= 1

    out = match_color_statistics(source, target)
    assert out.shape == source.shape
    assert out.dtype == source.dtype
    out_mean, out_cov = channel_stats(out)
    tgt_mean, tgt_cov = channel_stats(target)
    src_mean, src_cov = channel_stats(source)
    torch.testing.assert_close(out_mean, tgt_mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_cov, tgt_cov, atol=1e-4, rtol=0)
    assert not torch.allclose(src_cov, tgt_cov, atol=1e-3)  # the test would notice a no-op
    assert not torch.allclose(src_mean, tgt_mean, atol=1e-2)


def test_match_color_statistics_is_affine_per_pixel() -> None:
    source = rand_image(2, 8, 8, 0.3, 0.7)
    target = rand_image(3, 8, 8, 0.4, 0.6)
    out = match_color_statistics(source, target)
    # equal source pixels map to equal output pixels; the map does not depend on position
    shuffled = source[..., torch.randperm(8, generator=torch.Generator().manual_seed(0))]
    out_shuffled = match_color_statistics(shuffled, target)
    torch.testing.assert_close(
        out_shuffled, out[..., torch.randperm(8, generator=torch.Generator().manual_seed(0))], atol=1e-6, rtol=0
    )


def test_match_color_statistics_clamps() -> None:
    out = match_color_statistics(rand_image(4), rand_image(5))
    assert out.min() >= 0 and out.max() <= 1


def test_with_chroma_of_keeps_luma_of_first_and_chroma_of_second() -> None:
    luma_source = rand_image(6, 10, 10, 0.4, 0.6)
    chroma_source = 0.5 + 0.1 * (rand_image(7, 10, 10) - 0.5)
    out = with_chroma_of(luma_source, chroma_source)
    assert out.shape == luma_source.shape
    out_yuv = rgb_to_yuv(out)
    torch.testing.assert_close(out_yuv[:, :1], rgb_to_yuv(luma_source)[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_yuv[:, 1:], rgb_to_yuv(chroma_source)[:, 1:], atol=1e-5, rtol=0)
    assert not torch.allclose(out, luma_source, atol=1e-2)


def test_with_chroma_of_resizes_the_chroma_source() -> None:
    luma_source = rand_image(8, 12, 16, 0.4, 0.6)
    flat = torch.tensor([0.6, 0.5, 0.4]).view(1, 3, 1, 1).expand(1, 3, 5, 7)  # one colour: resizing keeps it
    out = with_chroma_of(luma_source, flat)
    assert out.shape == luma_source.shape
    expected_uv = rgb_to_yuv(flat)[:, 1:, :1, :1].expand(1, 2, 12, 16)
    torch.testing.assert_close(rgb_to_yuv(out)[:, 1:], expected_uv, atol=1e-5, rtol=0)


def test_with_chroma_of_clamps() -> None:
    bright = torch.ones(1, 3, 4, 4)
    saturated = torch.zeros(1, 3, 4, 4)
    saturated[:, 2] = 1  # blue chroma on white luma is out of gamut
    out = with_chroma_of(bright, saturated)
    assert out.min() >= 0 and out.max() <= 1


def test_transfer_luminance_takes_chroma_from_content() -> None:
    output = rand_image(9, 6, 6, 0.4, 0.6)
    content = 0.5 + 0.1 * (rand_image(10, 6, 6) - 0.5)
    torch.testing.assert_close(transfer_luminance(output, content), with_chroma_of(output, content))
    torch.testing.assert_close(rgb_to_yuv(transfer_luminance(output, content))[:, 1:], rgb_to_yuv(content)[:, 1:])
