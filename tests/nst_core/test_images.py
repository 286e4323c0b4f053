"""Images: reading any common input as upright RGB, resizing, encoding, and clear input errors."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst_core.errors import InputError, StorageError
from nst_core.images import as_rgb, decode_image, encode_image, load_image, resize_long_side, write_image
from nst_core.tensors import to_image, to_tensor
from tests.pixel_modes import SIZE, ModeFile, mode_files
from tests.support import png_header

ORIENTATION = 0x0112  # the EXIF Orientation tag


def marked_image(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Grey, with a red block in the stored top-left corner."""
    image = Image.new("RGB", size, (128, 128, 128))
    image.paste((255, 0, 0), (0, 0, 10, 10))
    return image


def is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [(1, "top-left"), (6, "top-right"), (8, "bottom-left"), (3, "bottom-right")],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, red_corner: str) -> None:
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    marked_image().save(path, "JPEG", quality=95, exif=exif)

    image = load_image(str(path))
    assert image.mode == "RGB"
    assert image.size == ((20, 40) if orientation in (6, 8) else (40, 20))
    w, h = image.size
    corners = {"top-left": (4, 4), "top-right": (w - 5, 4), "bottom-left": (4, h - 5), "bottom-right": (w - 5, h - 5)}
    assert [name for name, xy in corners.items() if is_red(image.getpixel(xy))] == [red_corner]


def test_greyscale_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.linear_gradient("L").resize((16, 8)).save(path)
    image = load_image(str(path))
    assert image.mode == "RGB"
    assert image.size == (16, 8)
    r, g, b = image.split()
    assert r.tobytes() == g.tobytes() == b.tobytes()
    with Image.open(path) as original:
        assert r.tobytes() == original.tobytes()


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    rgba = Image.new("RGBA", (8, 4), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 4, 4))  # left half fully transparent blue
    rgba.save(path)
    image = load_image(str(path))
    assert image.mode == "RGB"
    assert image.getpixel((1, 1)) == (255, 255, 255)
    assert image.getpixel((6, 1)) == (255, 0, 0)


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_becomes_rgb(tmp_path: Path, transparent: bool) -> None:
    path = tmp_path / "palette.png"
    palette = Image.new("P", (6, 3))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * (254 * 3))
    palette.paste(1, (3, 0, 6, 3))
    palette.save(path, **({"transparency": 0} if transparent else {}))
    image = load_image(str(path))
    assert image.mode == "RGB"
    assert image.getpixel((4, 1)) == (200, 100, 50)
    assert image.getpixel((1, 1)) == ((255, 255, 255) if transparent else (10, 20, 30))


@pytest.mark.parametrize("file", mode_files(), ids=lambda file: file.name)
def test_every_mode_decodes_as_its_picture_or_fails_naming_it(file: ModeFile) -> None:
    """Each file's decoded pixels equal the picture its own samples hold (no clipping of deep greyscale)."""
    with Image.open(io.BytesIO(file.data)) as opened:
        assert opened.mode == file.mode
    if file.picture is None:
        with pytest.raises(InputError) as info:
            decode_image(file.data, file.name, "content image")
        assert str(info.value).startswith(f"content image {file.name}: ")
        assert file.error in str(info.value)
        assert "\n" not in str(info.value)
        return
    decoded = decode_image(file.data, file.name)
    assert decoded.mode == "RGB"
    assert decoded.size == SIZE
    difference = np.abs(np.asarray(decoded, dtype=np.int16) - file.picture.astype(np.int16))
    assert difference.max() <= file.tolerance
    assert len(np.unique(np.asarray(decoded))) > 2 or file.mode == "1"  # a picture, not a flat image


def test_lab_neutrals_stay_neutral() -> None:
    """CIELAB (a TIFF's): L*=100 is white, L*=0 black, and a*=b*=0 a neutral grey, lighter with L*."""
    lab = Image.new("LAB", (3, 1))
    lab.putdata([(255, 128, 128), (0, 128, 128), (128, 128, 128)])  # Pillow's LAB: L* 0-100 as 0-255, a*, b* + 128
    buffer = io.BytesIO()
    lab.save(buffer, "TIFF")
    white, black, grey = (decode_image(buffer.getvalue(), "lab.tif").getpixel((x, 0)) for x in range(3))
    assert min(white) >= 250 and max(black) <= 5
    assert max(grey) - min(grey) <= 2 and 90 < grey[0] < 160


def test_a_python_caller_s_deep_image_is_scaled_too() -> None:
    """``render`` takes PIL images too: a 16-bit one is scaled, not clipped (as_rgb, the decoder's own step)."""
    deep = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))  # mid-grey in 16 bits
    assert as_rgb(deep).getpixel((0, 0)) == (128, 128, 128)


def test_file_uri(image_factory: Callable[..., Path]) -> None:
    path = image_factory("content.png", seed=3)
    with Image.open(path) as original:
        assert load_image(path.as_uri()).tobytes() == original.convert("RGB").tobytes()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.png"
    with pytest.raises(StorageError) as info:
        load_image(str(path), "style image")
    assert str(info.value) == f"style image {path}: not found"
    assert not info.value.transient


def test_larger_than_max_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    """A decompression bomb: its header declares 10 Gpx; it is refused before any decoding, naming the setting."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(100_000, 100_000))
    with pytest.raises(InputError) as info:
        load_image(str(path), "content image")
    assert str(info.value) == (
        f"content image {path}: 100000x100000 px (10000.0 Mpx) is over the 64 Mpx limit (setting max_pixels)"
    )
    with pytest.raises(InputError, match=r"over the 0\.0001 Mpx limit"):
        load_image(str(path), "content image", max_pixels=100)


def test_max_pixels_replaces_pillows_own_limit(tmp_path: Path) -> None:
    """Above Pillow's 179 Mpx bomb limit, a raised max_pixels decides: this header passes, then its data is missing."""
    path = tmp_path / "big.png"
    path.write_bytes(png_header(20_000, 10_000))
    with pytest.raises(InputError, match="not an image Pillow can read"):
        load_image(str(path), max_pixels=300_000_000)


@pytest.mark.parametrize(
    "data",
    [b"hello, I am not an image\n", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20],
    ids=["text", "empty", "broken-png"],
)
def test_not_an_image(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(data)
    with pytest.raises(InputError, match="not an image") as info:
        load_image(str(path), "content image")
    assert str(path) in str(info.value)
    assert "content image" in str(info.value)


def test_truncated_image(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    buffer = io.BytesIO()
    pil_image(0, (64, 64)).save(buffer, "PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError):
        load_image(str(path))


def test_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a folder, not a file") as info:
        load_image(str(tmp_path))
    assert not info.value.transient


@pytest.mark.parametrize(
    ("size", "long_side", "expected"),
    [((40, 20), 16, (16, 8)), ((20, 40), 16, (8, 16)), ((30, 30), 64, (64, 64)), ((99, 33), 30, (30, 10))],
)
def test_resize_long_side_keeps_aspect(size: tuple[int, int], long_side: int, expected: tuple[int, int]) -> None:
    resized = resize_long_side(Image.new("RGB", size), long_side)
    assert resized.size == expected
    assert resized.size[0] / resized.size[1] == pytest.approx(size[0] / size[1], rel=0.05)


def test_resize_long_side_same_size_is_unchanged(pil_image: Callable[..., Image.Image]) -> None:
    image = pil_image(0, (40, 32))
    assert resize_long_side(image, 40) is image


def test_resize_long_side_thin_image_keeps_one_pixel() -> None:
    assert resize_long_side(Image.new("RGB", (400, 1)), 20).size == (20, 1)


def test_tensor_round_trip(pil_image: Callable[..., Image.Image]) -> None:
    image = pil_image(1, (12, 8))
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 8, 12)
    assert tensor.dtype == torch.float32
    assert tensor.min() >= 0 and tensor.max() <= 1
    assert to_image(tensor).tobytes() == image.tobytes()


def test_to_image_clamps() -> None:
    tensor = torch.tensor([-0.5, 0.5, 1.5]).view(1, 3, 1, 1)
    assert to_image(tensor).getpixel((0, 0)) == (0, 128, 255)


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.JPEG", "JPEG"), ("s3://b/x.Png", "PNG")]
)
def test_encode(pil_image: Callable[..., Image.Image], name: str, fmt: str) -> None:
    image = pil_image(2, (20, 10))
    decoded = Image.open(io.BytesIO(encode_image(image, name)))
    assert decoded.format == fmt
    assert decoded.size == (20, 10)
    if fmt == "PNG":
        assert decoded.convert("RGB").tobytes() == image.tobytes()


def test_encode_jpeg_quality(pil_image: Callable[..., Image.Image]) -> None:
    image = pil_image(3, (48, 48))
    assert len(encode_image(image, "a.jpg", quality=30)) < len(encode_image(image, "a.jpg", quality=95))


@pytest.mark.parametrize("name", ["out.gif", "out.webp", "out", "out.png.txt"])
def test_unknown_output_extension(pil_image: Callable[..., Image.Image], name: str) -> None:
    with pytest.raises(ValueError, match=r"\.png"):
        encode_image(pil_image(0, (4, 4)), name)


def test_write_image(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    image = pil_image(4, (10, 6))
    target = tmp_path / "new" / "folder" / "out.png"
    write_image(image, str(target))
    with Image.open(target) as written:
        assert written.convert("RGB").tobytes() == image.tobytes()


def test_write_image_bad_extension_writes_nothing(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    with pytest.raises(ValueError):
        write_image(pil_image(0, (4, 4)), str(tmp_path / "out.gif"))
    assert list(tmp_path.iterdir()) == []
