"""Image files in every pixel mode Pillow reads, each with the picture it holds, computed from its own samples.

Shared by the decoder's unit tests and the whole-run test of a manifest of every mode.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tests.support import png_file

SIZE = (32, 24)  # (width, height): large enough for every backbone's default layers


@dataclass(frozen=True)
class ModeFile:
    """A file whose Pillow mode is ``mode``; ``picture`` is what it must decode to, or ``error`` what its
    one-line failure must say."""

    name: str
    mode: str
    data: bytes
    picture: np.ndarray | None = None  # (H, W, 3) uint8
    error: str = ""
    tolerance: int = 0  # grey levels (Pillow's own rounding where it differs from the exact value)


def _ramp(top: float, dtype: str) -> np.ndarray:
    """(H, W) samples from 0 to ``top`` over the image, in ``dtype``."""
    w, h = SIZE
    t = np.arange(w * h, dtype=np.float64).reshape(h, w) / (w * h - 1)
    return np.rint(t * top).astype(dtype) if dtype != "float32" else (t * top).astype(dtype)


def _grey(values: np.ndarray) -> np.ndarray:
    """(H, W) grey levels in 0-255 as an (H, W, 3) RGB picture."""
    return np.repeat(np.rint(values).clip(0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) composited over white with ``alpha`` (H, W) in 0-255."""
    a = alpha[..., None].astype(np.float64) / 255
    return np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)


def _colours(seed: int) -> np.ndarray:
    """(H, W, 3) uint8 pixels: a seeded pattern."""
    w, h = SIZE
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _palette_with_alpha() -> tuple[Image.Image, np.ndarray]:
    """A palette image of 4 colours, and the RGB picture of its indices."""
    w, h = SIZE
    palette = np.array([[10, 20, 30], [200, 100, 50], [0, 255, 0], [250, 250, 10]], dtype=np.uint8)
    indices = (np.arange(w * h).reshape(h, w) % 4).astype(np.uint8)
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette(palette.ravel().tolist() + [0] * (252 * 3))
    return image, palette[indices]


def mode_files() -> list[ModeFile]:
    """One file per mode (and depth) a user may hand in."""
    w, h = SIZE
    files = []
    bits = (np.indices((h, w)).sum(axis=0) % 2).astype(bool)
    files.append(ModeFile("bilevel.png", "1", _saved(Image.fromarray(bits), "PNG"), _grey(bits * 255.0)))

    grey = _ramp(255, "uint8")
    files.append(ModeFile("grey8.png", "L", _saved(Image.fromarray(grey), "PNG"), _grey(grey)))

    deep = _ramp(65535, "uint16")
    files.append(ModeFile("grey16.png", "I;16", png_file(deep), _grey(deep / 65535 * 255)))
    big_endian = Image.fromarray(deep.astype(">u2"))
    files.append(ModeFile("grey16.tif", "I;16B", _saved(big_endian, "TIFF"), _grey(deep / 65535 * 255)))

    rgb16 = (_colours(1).astype(np.uint16) * 257 + np.uint16(100)).clip(0, 65535).astype(np.uint16)
    files.append(ModeFile("rgb16.png", "RGB", png_file(rgb16), np.rint(rgb16 / 257).astype(np.uint8), tolerance=1))
    alpha16 = _ramp(65535, "uint16")
    rgba16 = np.dstack([rgb16, alpha16])
    picture = _on_white(np.rint(rgb16 / 257), np.rint(alpha16 / 257))
    files.append(ModeFile("rgba16.png", "RGBA", png_file(rgba16), picture, tolerance=2))

    int32 = _ramp(2**31 - 1, "int32")
    files.append(ModeFile("int32.tif", "I", _saved(Image.fromarray(int32), "TIFF"), _grey(int32 / (2**31 - 1) * 255)))
    negative = int32 - 2**30
    files.append(ModeFile("int32-negative.tif", "I", _saved(Image.fromarray(negative), "TIFF"), error="(mode I)"))

    floats = _ramp(1.0, "float32")
    files.append(ModeFile("float32.tif", "F", _saved(Image.fromarray(floats), "TIFF"), _grey(floats * 255.0)))
    over = _ramp(255.0, "float32")
    files.append(ModeFile("float32-0-255.tif", "F", _saved(Image.fromarray(over), "TIFF"), error="(mode F)"))

    la_grey, la_alpha = _ramp(255, "uint8"), _ramp(255, "uint8")[::-1]
    la = Image.merge("LA", [Image.fromarray(la_grey), Image.fromarray(np.ascontiguousarray(la_alpha))])
    picture = _on_white(np.repeat(la_grey[..., None], 3, axis=-1), la_alpha)
    files.append(ModeFile("grey-alpha.png", "LA", _saved(la, "PNG"), picture, tolerance=1))

    palette, colours = _palette_with_alpha()
    pa_alpha = _ramp(255, "uint8")
    pa = palette.convert("PA")
    pa.putalpha(Image.fromarray(pa_alpha))
    files.append(ModeFile("palette-alpha.tif", "PA", _saved(pa, "TIFF"), _on_white(colours, pa_alpha), tolerance=1))
    picture = np.where((np.arange(w * h).reshape(h, w) % 4 == 1)[..., None], np.uint8(255), colours)
    files.append(ModeFile("palette-transparent.png", "P", _saved(palette, "PNG", transparency=1), picture))

    cmyk = np.dstack([_colours(2), _ramp(255, "uint8")])
    c, m, y, k = (cmyk[..., i].astype(np.float64) / 255 for i in range(4))
    picture = np.rint(255 * np.dstack([(1 - c), (1 - m), (1 - y)]) * (1 - k)[..., None]).astype(np.uint8)
    files.append(ModeFile("cmyk.tif", "CMYK", _saved(Image.fromarray(cmyk, "CMYK"), "TIFF"), picture, tolerance=1))

    ycc = _colours(3)
    files.append(
        ModeFile("ycbcr.tif", "YCbCr", _saved(Image.fromarray(ycc, "YCbCr"), "TIFF"), _jfif_rgb(ycc), tolerance=1)
    )
    return files


def _jfif_rgb(ycc: np.ndarray) -> np.ndarray:
    """JPEG's (JFIF's) full-range YCbCr to RGB."""
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return np.rint(np.dstack([r, g, b])).clip(0, 255).astype(np.uint8)
