"""check_inputs: every input of a pair is read and decoded, without rendering."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from nst_core import Settings
from nst_core.images import encode_image
from tasks.manifest import Pair
from tasks.validation import check_inputs

if TYPE_CHECKING:  # fixtures' types (tests/tasks/conftest.py)
    from tests.support import Bucket


def pair(content: Path | str, *styles: Path | str, **settings: str) -> Pair:
    return Pair("p", 2, str(content), tuple(map(str, styles)), Settings.from_values(settings))


def test_good_inputs_have_no_problems(image_factory: Callable[..., Path], content_path: Path, style_path: Path) -> None:
    second = image_factory("second.jpg", seed=5)
    grey = image_factory("grey.png", seed=6, mode="L")
    assert check_inputs(pair(content_path, style_path, second, grey)) == []


def test_missing_files(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    missing = tmp_path / "missing.png"
    assert check_inputs(pair(missing, style_path)) == [("content", f"content image not found: {missing}")]
    assert check_inputs(pair(content_path, style_path, missing)) == [("style", f"style image not found: {missing}")]


def test_a_file_that_is_not_an_image(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(style_path.read_bytes()[:60])
    problems = check_inputs(pair(content_path, text, style_path, truncated))
    assert [column for column, _ in problems] == ["style", "style"]
    assert problems[0][1] == f"style image {text} is not an image Pillow can read"
    assert problems[1][1].startswith(f"style image {truncated} is not an image Pillow can read")


def test_every_problem_of_a_pair_is_reported(tmp_path: Path) -> None:
    problems = check_inputs(
        pair(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png", init=str(tmp_path / "i.png"))
    )
    assert [column for column, _ in problems] == ["content", "style", "style", "init"]


def test_an_init_image_is_checked(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    missing = tmp_path / "start.png"
    assert check_inputs(pair(content_path, style_path, init=str(missing))) == [
        ("init", f"init image not found: {missing}")
    ]
    assert check_inputs(pair(content_path, style_path, init=str(style_path))) == []
    for mode in ("content", "noise", "style"):  # init modes are not files
        assert check_inputs(pair(content_path, style_path, init=mode)) == []


def test_inputs_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    good = s3.put("in/c.png", encode_image(pil_image(1), "c.png"))
    bad = s3.put("in/s.png", b"not an image")
    assert check_inputs(pair(good, good)) == []
    assert check_inputs(pair(good, bad, f"{s3.uri}/in/none.png")) == [
        ("style", f"style image {bad} is not an image Pillow can read"),
        ("style", f"style image not found: {s3.uri}/in/none.png"),
    ]
