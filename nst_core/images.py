"""Reading, resizing and writing images through fsspec and Pillow (no torch: ``validate`` uses it).

Pillow's own decompression-bomb limit is switched off: the ``max_pixels`` setting replaces it, checked
from the image's header before anything is decoded, with a message that names the setting.

Every pixel mode comes out as the picture the file holds, in 8-bit RGB: deep greyscale (16- and
32-bit integers) is scaled from its own range, not clipped at 255; 32-bit floats are read as 0-1;
transparency is composited on white. A mode that cannot be shown so fails with one line naming it.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import fsspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_core.errors import InputError
from nst_core.io_errors import storage_error
from nst_core.settings import Settings

__all__ = [
    "as_rgb",
    "decode_image",
    "encode_image",
    "load_image",
    "long_side_size",
    "read_bytes",
    "resize_long_side",
    "write_image",
]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
DEEP_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # integer greyscale beyond 8 bits
TRANSPARENT = ("RGBA", "RGBa", "LA", "La", "PA")
TIFF_BITS, TIFF_SAMPLE_FORMAT, SIGNED = 258, 339, 2  # TIFF tags BitsPerSample and SampleFormat, its "signed"
MAX_PIXELS: int = Settings.model_fields["max_pixels"].default
Image.MAX_IMAGE_PIXELS = None  # see the module docstring: max_pixels is checked in decode_image


def load_image(uri: str, role: str = "image", *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``uri`` (a path or any fsspec URI) as RGB; see ``decode_image``.

    Raises:
        StorageError: it cannot be read (missing, no access, network).
        InputError: it is not an image Pillow can read, or it is too large.
    """
    return decode_image(read_bytes(uri, role), uri, role, max_pixels=max_pixels)


def read_bytes(uri: str, role: str = "file") -> bytes:
    """The whole content of ``uri``.

    Raises:
        StorageError: naming ``role``, ``uri`` and the cause; ``transient`` if a retry may succeed.
    """
    try:
        with fsspec.open(uri, "rb") as f:
            return f.read()
    except Exception as exc:  # fsspec's backends raise many types: each becomes one readable error
        raise storage_error(exc, role, uri) from exc


def decode_image(data: bytes, uri: str, role: str = "image", *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes as 8-bit RGB, EXIF orientation applied; refuse more than ``max_pixels`` pixels.

    Raises:
        InputError: not an image, too large, or pixels that are not a picture (named by their mode).
    """
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError as exc:
        raise InputError(f"{role} {uri}: not an image Pillow can read") from exc
    w, h = image.size
    if w * h > max_pixels:
        raise InputError(
            f"{role} {uri}: {w}x{h} px ({w * h / 1e6:.1f} Mpx) is over the {max_pixels / 1e6:g} Mpx limit "
            "(setting max_pixels)"
        )
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: a TIFF keeps its tags (bits per sample)
    except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file of a known format
        raise InputError(f"{role} {uri}: not an image Pillow can read ({exc})") from exc
    return as_rgb(image, f"{role} {uri}")


def as_rgb(image: Image.Image, where: str = "image") -> Image.Image:
    """The picture ``image`` holds as 8-bit RGB; ``where`` names it in errors."""
    if image.mode in DEEP_GREY or image.mode == "F":
        image = Image.fromarray(_grey_8bit(image, where))
    if image.mode in TRANSPARENT or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    try:
        return image.convert("RGB")
    except ValueError as exc:  # a mode Pillow cannot convert
        raise InputError(f"{where}: pixels of mode {image.mode} cannot be shown as RGB") from exc


def _grey_8bit(image: Image.Image, where: str) -> np.ndarray:
    """Deep greyscale pixels scaled to 0-255: integers from 0 to their type's maximum, floats from 0 to 1."""
    pixels = np.asarray(image, dtype=np.float64)
    low, high = float(pixels.min(initial=0)), float(pixels.max(initial=0))
    if image.mode == "F":
        top, kind = 1.0, "32-bit float"
    else:
        bits, signed = _integer_depth(image)
        top, kind = 2.0 ** (bits - signed) - 1, f"{bits}-bit {'signed ' if signed else ''}integer"
    if not (low >= 0 and high <= top):  # NaN fails too
        expected = "0 to 1" if image.mode == "F" else f"0 to {top:.0f}"
        raise InputError(
            f"{where}: {kind} greyscale (mode {image.mode}) with values from {low:g} to {high:g}, outside {expected}: "
            "not a picture; save it as 8- or 16-bit"
        )
    return np.rint(pixels * (255 / top)).astype(np.uint8)


def _integer_depth(image: Image.Image) -> tuple[int, bool]:
    """(bits, signed) of an integer greyscale image's samples: 16 for Pillow's I;16 modes and for "I" from
    every format but TIFF (Pillow scales those to 16 bits); a TIFF's own BitsPerSample and SampleFormat."""
    tags = getattr(image, "tag_v2", None)
    if image.mode != "I" or tags is None or TIFF_BITS not in tags:
        return 16, False
    return _first(tags[TIFF_BITS]), _first(tags.get(TIFF_SAMPLE_FORMAT, 1)) == SIGNED


def _first(value: int | tuple[int, ...]) -> int:
    """A TIFF tag's value for the first sample (tags hold one value per sample)."""
    return int(value[0] if isinstance(value, tuple) else value)


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) ``size`` scaled so that its longer side is ``long_side``."""
    w, h = size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (Lanczos)."""
    new = long_side_size(image.size, size)
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, name: str, quality: int = 95) -> bytes:
    """PNG or JPEG bytes, chosen by the extension of ``name``."""
    fmt = FORMATS.get(PurePosixPath(name).suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write {name}: use one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_image(image: Image.Image, uri: str) -> None:
    """Encode fully in memory, then write ``uri`` in one call (no half-encoded file on error)."""
    data = encode_image(image, uri)
    try:
        with fsspec.open(uri, "wb", auto_mkdir=True) as f:
            f.write(data)
    except Exception as exc:
        raise storage_error(exc, "output", uri) from exc
