"""Reading, resizing and writing images through fsspec and Pillow (no torch: ``validate`` uses it).

Pillow's own decompression-bomb limit is switched off: the ``max_pixels`` setting replaces it, checked
from the image's header before anything is decoded, with a message that names the setting.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import fsspec
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_core.errors import InputError
from nst_core.io_errors import storage_error
from nst_core.settings import Settings

__all__ = [
    "decode_image",
    "encode_image",
    "load_image",
    "long_side_size",
    "read_bytes",
    "resize_long_side",
    "write_image",
]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
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
    """Decode image bytes as RGB, EXIF orientation applied; refuse more than ``max_pixels`` pixels.

    Transparent images are composited on white; greyscale and palette images are converted.
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
        image = ImageOps.exif_transpose(image)
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file of a known format
        raise InputError(f"{role} {uri}: not an image Pillow can read ({exc})") from exc
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


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
