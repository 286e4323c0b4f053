"""Reading, resizing and writing images through fsspec and Pillow."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import fsspec
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image

from nst_core.errors import InputError

__all__ = [
    "decode_image",
    "encode_image",
    "load_image",
    "read_bytes",
    "resize_long_side",
    "to_image",
    "to_tensor",
    "write_image",
]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def load_image(uri: str, role: str = "image") -> Image.Image:
    """Open ``uri`` (a path or any fsspec URI) as RGB; see ``decode_image``.

    Raises:
        InputError: the file is missing or is not an image Pillow can read.
    """
    return decode_image(read_bytes(uri, role), uri, role)


def read_bytes(uri: str, role: str = "file") -> bytes:
    """The whole content of ``uri``.

    Raises:
        InputError: it does not exist (or is a folder).
        OSError: storage or network errors, which may pass: callers may retry them.
    """
    try:
        with fsspec.open(uri, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError) as exc:
        if _hides_a_transient_error(exc):
            raise
        raise InputError(f"{role} not found: {uri}") from exc


def _hides_a_transient_error(exc: BaseException) -> bool:
    """fsspec's HTTP filesystem reports server (5xx, 429) and connection errors as "not found"."""
    cause = exc.__cause__
    status = getattr(cause, "status", None)
    return isinstance(cause, OSError) or (isinstance(status, int) and (status >= 500 or status == 429))


def decode_image(data: bytes, uri: str, role: str = "image") -> Image.Image:
    """Decode image bytes as RGB, EXIF orientation applied.

    Transparent images are composited on white; greyscale and palette images are converted.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image = ImageOps.exif_transpose(image)
        image.load()
    except UnidentifiedImageError as exc:
        raise InputError(f"{role} {uri} is not an image Pillow can read") from exc
    except (OSError, SyntaxError) as exc:  # a truncated or corrupt file of a known format
        raise InputError(f"{role} {uri} is not an image Pillow can read: {exc}") from exc
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image.convert("RGB")


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (Lanczos)."""
    w, h = image.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def to_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [0, 1]."""
    return pil_to_tensor(image).float().div(255).unsqueeze(0)


def to_image(tensor: Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> PIL RGB, rounded to 8 bits."""
    return to_pil_image(tensor[0].detach().float().clamp(0, 1).mul(255).round().byte().cpu())


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
    with fsspec.open(uri, "wb", auto_mkdir=True) as f:
        f.write(data)
