"""validate(): every row's settings, inputs and weights, each distinct input and weights value checked once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from PIL import Image
from torchvision import models

from nst_core.catalogue import imagenet_cache_path
from nst_core.images import encode_image
from tasks.manifest.read import RowError, read_manifest
from tasks.manifest.validate import check_weights, validate
from tests.support import QuietHandler, WebFolder, png_header, serve_folder

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket

RANDOM = {"weights": "random:0"}


def problems(path: Path, *lines: str, **defaults: str) -> list[str]:
    path.write_text("\n".join(lines) + "\n")
    return [str(p) for p in validate(read_manifest(str(path), RANDOM | defaults))]


def test_good_inputs_have_no_problems(image_factory: Callable[..., Path], tmp_path: Path) -> None:
    image_factory("content.png", seed=1)
    image_factory("style.jpg", seed=2)
    image_factory("grey.png", seed=3, mode="L")
    assert problems(tmp_path / "m.csv", "content,style,init", "content.png,style.jpg|grey.png,grey.png") == []


def test_missing_undecodable_and_too_large_inputs(image_factory: Callable[..., Path], tmp_path: Path) -> None:
    image_factory("content.png", seed=1)
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "bomb.png").write_bytes(png_header(20_000, 20_000))
    base = tmp_path.resolve()
    found = problems(
        tmp_path / "m.csv",
        "content,style,init",
        "nowhere.png,content.png,",
        "content.png,notes.png|bomb.png,",
        "content.png,content.png,start.png",
    )
    assert found == [
        f"row 2, column content: content image {base}/nowhere.png: not found",
        f"row 3, column style: style image {base}/notes.png: not an image Pillow can read",
        f"row 3, column style: style image {base}/bomb.png: 20000x20000 px (400.0 Mpx) is over the 64 Mpx limit "
        "(setting max_pixels)",
        f"row 4, column init: init image {base}/start.png: not found",
    ]


def test_max_pixels_is_the_rows_own(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(png_header(9_000, 9_000))  # 81 Mpx: over the default, and holds no pixels
    found = problems(
        tmp_path / "m.csv", "content,style,max_pixels,seed", "big.png,big.png,,1", "big.png,big.png,100000000,2"
    )
    assert [line.split(":")[0] for line in found] == [
        "row 2, column content",
        "row 2, column style",
        "row 3, column content",
        "row 3, column style",
    ]
    assert "over the 64 Mpx limit" in found[0]
    assert "not an image Pillow can read" in found[2]  # under its own limit: decoded, and found empty


class CountingHandler(QuietHandler):
    """Counts GET requests per path."""

    counts: dict[str, int]
    lock: threading.Lock

    def do_GET(self) -> None:
        with self.lock:
            self.counts[self.path] = self.counts.get(self.path, 0) + 1
        super().do_GET()


@pytest.fixture
def counting_web(tmp_path: Path) -> Iterator[tuple[WebFolder, dict[str, int]]]:
    counts: dict[str, int] = {}
    handler = type("Counting", (CountingHandler,), {"counts": counts, "lock": threading.Lock()})
    for folder in serve_folder(tmp_path / "www", handler):
        yield folder, counts


def test_each_input_is_read_once_and_shared_problems_are_one_line(
    counting_web: tuple[WebFolder, dict[str, int]], pil_image: Callable[..., Image.Image], tmp_path: Path
) -> None:
    web, counts = counting_web
    for i in range(3):
        pil_image(i).save(web.root / f"c{i}.png")
    pil_image(9).save(web.root / "s.png")
    rows = [f"{web.url}/c{i % 3}.png,{web.url}/s.png|{web.url}/gone.png,{i}" for i in range(30)]
    found = problems(tmp_path / "m.csv", "content,style,seed", *rows)
    assert found == [f"rows 2-31, column style: style image {web.url}/gone.png: not found (HTTP 404)"]
    assert {path: n for path, n in counts.items() if path != "/gone.png"} == {f"/c{i}.png": 1 for i in range(3)} | {
        "/s.png": 1
    }
    assert counts["/gone.png"] <= 2  # fsspec may ask twice for a missing file; never once per row


def test_an_unknown_column_hides_no_other_problem(image_factory: Callable[..., Path], tmp_path: Path) -> None:
    image_factory("content.png", seed=1)
    base = tmp_path.resolve()
    found = problems(
        tmp_path / "m.csv",
        "content,style,colour,iterations",
        "content.png,content.png,blue,",
        "content.png,missing.png,red,-1",
        "content.png,content.png,,",
    )
    assert found[0].startswith("rows 2-3, column colour: unknown setting")  # once, for both rows that use it
    assert found[1:] == [
        "row 3, column iterations: Input should be greater than or equal to 1 (got '-1')",
        f"row 3, column style: style image {base}/missing.png: not found",
    ]


def test_inputs_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image], tmp_path: Path) -> None:
    s3.put("in/c.png", encode_image(pil_image(1), "c.png"))
    s3.put("in/s.png", b"not an image")
    manifest = s3.put("in/m.csv", b"content,style\nc.png,c.png\nc.png,s.png|none.png\n")
    found = [str(p) for p in validate(read_manifest(manifest, RANDOM))]
    assert found == [
        f"row 3, column style: style image {s3.uri}/in/s.png: not an image Pillow can read",
        f"row 3, column style: style image {s3.uri}/in/none.png: not found",
    ]


def test_problem_rows_are_compressed_into_ranges() -> None:
    assert str(RowError((2, 3, 4, 7, 9, 10), "content", "x")) == "rows 2-4, 7, 9-10, column content: x"
    assert str(RowError((5,), "weights", "y")) == "row 5, column weights: y"


# --- weights ---------------------------------------------------------------------------------------


def test_weights_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    good = tmp_path / "squeeze.pth"
    torch.save(models.squeezenet1_1().state_dict(), good)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    assert check_weights("squeezenet1_1", str(good)) is None
    assert check_weights("squeezenet1_1", str(tmp_path / "none.pth")) == f"weights {tmp_path}/none.pth: file not found"
    assert "is not a PyTorch state dict" in str(check_weights("squeezenet1_1", str(text)))
    assert "do not fit this backbone" in str(check_weights("vgg16", str(good)))
    assert check_weights("vgg19", "random:3") is None


def test_imagenet_weights_offline(offline_torch_home: Path, image_factory: Callable[..., Path], tmp_path: Path) -> None:
    image_factory("c.png")
    cached = imagenet_cache_path("vgg19")
    expected = (
        f"weights imagenet: vgg19-dcbb9e9d.pth is not in the Torch hub cache ({cached.parent}) and cannot be "
        "downloaded from https://download.pytorch.org/models/vgg19-dcbb9e9d.pth: connection refused. Copy the file "
        "there, or give --weights PATH_OR_URI"
    )
    assert check_weights("vgg19", "imagenet") == expected
    found = problems(
        tmp_path / "m.csv", "content,style,weights,seed", "c.png,c.png,imagenet,1", "c.png,c.png,,2", weights=""
    )
    assert found == [f"rows 2-3, column weights: {expected}"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")  # present in the cache: run loads it from there, without the network
    assert check_weights("vgg19", "imagenet") is None


def test_images_too_small_at_some_level_are_the_rows_problem(
    image_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """What the render checks before it starts: a 10:1 content, a style at a tiny style_scale, a pyramid's
    smallest level; SqueezeNet needs 17 px where VGG needs 16, and the row's settings decide."""
    image_factory("wide.png", size=(100, 10))
    image_factory("photo.png", size=(40, 32))
    base = tmp_path.resolve()
    found = problems(
        tmp_path / "m.csv",
        "content,style,image_size,style_scale,start_size,backbone",
        "wide.png,photo.png,64,,,",  # 64x6 px
        "wide.png,photo.png,200,,,",  # 200x20 px: enough
        "photo.png,photo.png,64,0.2,,",  # the style at 13x10 px
        "photo.png,photo.png,64,,16,",  # levels 16, 32, 64 px: 16x13 px at the first
        "photo.png,photo.png,20,,,",  # 20x16 px: VGG's relu5_1 takes 16 px
        "photo.png,photo.png,20,,,squeezenet1_1",  # SqueezeNet's fire7 needs 17 px
    )
    advice = "use a larger image_size, start_size or style_scale"
    assert found == [
        f"row 2, column content: content image {base}/wide.png is 64x6 px at 64 px: too small for the layers up to "
        f"relu5_1 (at least 16 px a side); {advice}",
        f"row 4, column style: style image {base}/photo.png is 13x10 px at style_scale 0.2 of 64 px: too small for "
        f"the layers up to relu5_1 (at least 16 px a side); {advice}",
        f"row 5, column content: content image {base}/photo.png is 16x13 px at 16 px: too small for the layers up to "
        f"relu5_1 (at least 16 px a side); {advice}",
        f"row 5, column style: style image {base}/photo.png is 16x13 px at style_scale 1 of 16 px: too small for "
        f"the layers up to relu5_1 (at least 16 px a side); {advice}",
        f"row 7, column content: content image {base}/photo.png is 20x16 px at 20 px: too small for the layers up to "
        f"fire7 (at least 17 px a side); {advice}",
        f"row 7, column style: style image {base}/photo.png is 20x16 px at style_scale 1 of 20 px: too small for "
        f"the layers up to fire7 (at least 17 px a side); {advice}",
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_device_this_machine_lacks(image_factory: Callable[..., Path], tmp_path: Path) -> None:
    image_factory("photo.png")
    rows = ["id,content,style,device", "a,photo.png,photo.png,cuda", "b,photo.png,photo.png,cpu"]
    found = problems(tmp_path / "m.csv", *rows)
    assert found == ["row 2, column device: cuda was asked for but is not available here"]
