"""The ``stylebatch render-one`` command, run in-process with click's CliRunner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from flows.cli import main
from flows.flags import flag, markdown_settings_table
from nst_core import Settings

FAST = ["--weights", "random:0", "--image-size", "32", "--iterations", "3", "--device", "cpu"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def flat(text: str) -> str:
    """Text without whitespace: rich wraps long messages (paths) at the console width."""
    return "".join(text.split())


def assert_mentions(text: str, *words: str) -> None:
    for word in words:
        assert flat(word) in flat(text), f"{word!r} not in {text!r}"


def test_render_one(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.png"
    result = run("render-one", str(content_path), str(style_path), "-o", str(out), *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert_mentions(result.stderr, "3 iterations on cpu", "final loss")
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert max(image.size) == 32
        assert image.size == (32, 26)  # the 40x32 content, long side 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "out.png", "style.png"]


def test_render_one_jpeg_into_new_folder(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "renders" / "out.jpg"
    result = run("render-one", str(content_path), str(style_path), "--output", str(out), *FAST)
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as image:
        assert image.format == "JPEG"
        assert image.size == (32, 26)


def test_render_one_several_styles_and_settings(
    tmp_path: Path, image_factory: Callable[..., Path], content_path: Path, style_path: Path
) -> None:
    second = image_factory("style2.png", seed=4)
    out = tmp_path / "out.png"
    args = [*FAST, "--style-weights", "0.7|0.3", "--optimizer", "adam", "--style-layers", "relu1_1,relu2_1"]
    result = run("render-one", str(content_path), str(style_path), str(second), "-o", str(out), *args)
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == (32, 26)


def test_snapshot_every(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.png"
    result = run("render-one", str(content_path), str(style_path), "-o", str(out), *FAST, "--snapshot-every", "1")
    assert result.exit_code == 0, result.stderr
    snapshots = sorted(p.name for p in tmp_path.glob("out_*.png"))
    assert snapshots == ["out_00001.png", "out_00002.png", "out_00003.png"]
    for name in snapshots:
        with Image.open(tmp_path / name) as image:
            assert image.size == (32, 26)
    assert (tmp_path / "out_00003.png").read_bytes() == out.read_bytes()


def test_missing_content(tmp_path: Path, style_path: Path) -> None:
    out, missing = tmp_path / "out.png", tmp_path / "missing.png"
    result = run("render-one", str(missing), str(style_path), "-o", str(out), *FAST)
    assert result.exit_code == 2
    assert_mentions(result.stderr, f"error: content image {missing}: not found")
    assert result.stdout == ""
    assert not out.exists()


def test_not_an_image(tmp_path: Path, content_path: Path) -> None:
    out, fake = tmp_path / "out.png", tmp_path / "style.png"
    fake.write_text("no pixels here")
    result = run("render-one", str(content_path), str(fake), "-o", str(out), *FAST)
    assert result.exit_code == 2
    assert_mentions(result.stderr, "style image", str(fake), "not an image")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--style-layers", "relu9_1"], ["style_layers", "relu9_1", "did you mean 'relu5_1'"]),
        (["--style-weight", "-1"], ["style_weight", "greater than or equal to 0"]),
        (["--image-size", "0"], ["image_size", "greater than or equal to 16"]),
        (["--optimizer", "sgd"], ["optimizer", "'lbfgs' or 'adam'"]),
        (["--lr-schedule", "soon"], ["lr_schedule", "ITER:LR"]),
        (["--weights", "random"], ["weights", "random:0"]),
        (["--style-weights", "1|2"], ["style_weights", "2 blend weights for 1 style images"]),
        (["--weights", "/nowhere/vgg.pth"], ["weights /nowhere/vgg.pth: file not found"]),
        (["--optimizer", "adam", "--lr", "1e30"], ["the loss became", "at iteration 2"]),
    ],
    ids=lambda value: "_".join(value) if isinstance(value, list) and value[0].startswith("--") else None,
)
def test_bad_settings(tmp_path: Path, content_path: Path, style_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "out.png"
    result = run("render-one", str(content_path), str(style_path), "-o", str(out), *FAST, *args)
    assert result.exit_code == 2
    assert_mentions(result.stderr, "error:", *words)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert not out.exists()


def test_bad_output_extension_writes_nothing(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    out = tmp_path / "out.gif"
    result = run("render-one", str(content_path), str(style_path), "-o", str(out), *FAST, "--snapshot-every", "1")
    assert result.exit_code == 2
    assert_mentions(result.stderr, "out.gif", ".png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content.png", "style.png"]


def test_missing_output_option(content_path: Path, style_path: Path) -> None:
    result = run("render-one", str(content_path), str(style_path), *FAST)
    assert result.exit_code == 2
    assert_mentions(result.stderr, "--output")


def test_help_lists_every_setting() -> None:
    result = run("render-one", "--help")
    assert result.exit_code == 0
    flags = set(result.stdout.replace("/", " ").replace(",", " ").split())
    for name in Settings.model_fields:
        assert flag(name) in flags, name
    assert "--no-channels-last" in flags
    assert "--output" in flags


def test_settings_command_prints_the_table() -> None:
    result = run("settings")
    assert result.exit_code == 0
    assert result.stdout.strip() == markdown_settings_table()
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 + len(Settings.model_fields)
    for name, line in zip(Settings.model_fields, lines[2:], strict=True):
        assert line.startswith(f"| `{name}` (`{flag(name)}`) |")
    assert "`vgg19`" in lines[2 + list(Settings.model_fields).index("backbone")]


def test_group_help_lists_render_one() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "render-one" in result.stdout
    assert "settings" in result.stdout


def test_render_one_with_masks(tmp_path: Path, image_factory: Callable[..., Path], content_path: Path) -> None:
    """Two styles placed by masks, the second from part of its image; a wrong count exits 2 with one line."""
    second = image_factory("style2.png", seed=4)
    left = Image.new("L", (40, 32), 0)
    left.paste(255, (0, 0, 20, 32))
    left.save(tmp_path / "left.png")
    Image.eval(left, lambda v: 255 - v).save(tmp_path / "right.png")
    style, out = str(image_factory("style.png", seed=2)), tmp_path / "out.png"
    masks = f"{tmp_path / 'left.png'}|{tmp_path / 'right.png'}"
    common = ["render-one", str(content_path), style, str(second), "-o", str(out), *FAST]
    result = run(*common, "--style-masks", masks, "--style-image-masks", f"|{tmp_path / 'right.png'}")
    assert result.exit_code == 0 and out.exists(), result.stderr
    wrong = run(*common, "--style-masks", str(tmp_path / "left.png"))
    assert wrong.exit_code == 2
    assert_mentions(wrong.stderr, "1 style masks for 2 style images")
