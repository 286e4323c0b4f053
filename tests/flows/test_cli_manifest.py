"""The ``stylebatch validate`` and ``stylebatch manifest cross`` commands, run in-process with click's CliRunner."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from flows.cli import main
from nst_core.images import encode_image
from tasks.manifest.read import read_manifest
from tests.support import forget_s3_clients

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def validate(manifest: str, *flags: str) -> Result:
    """``stylebatch validate`` with random weights (imagenet ones are checked in test_validation)."""
    return run("validate", manifest, "--weights", "random:0", *flags)


def flat(text: str) -> str:
    """Text without whitespace: rich wraps long messages (paths) at the console width."""
    return "".join(text.split())


def write(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# --- validate --------------------------------------------------------------------------------------


def test_validate_a_clean_manifest(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv", "content,style,iterations", "content.png,style.png,3", "style.png,content.png,"
    )
    result = validate(manifest)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "2 rows, 0 problems" in result.stderr


def test_validate_reports_every_problem(
    tmp_path: Path, image_factory: Callable[..., Path], content_path: Path, style_path: Path
) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    image_factory("start.png", seed=3)
    manifest = write(
        tmp_path / "m.csv",
        "id,content,style,iterations,init,colour",
        "ok,content.png,style.png,3,start.png,",  # row 2: fine
        "bad-setting,content.png,style.png,-3,,",  # row 3
        "nostyle,content.png,,3,,",  # row 4
        "../up,content.png,style.png,3,,",  # row 5
        "ok,style.png,content.png,3,,",  # row 6: duplicate id
        "undecodable,content.png,notes.png|missing.png,3,,",  # row 7: decodes no style
        "noinit,content.png,style.png,3,nowhere.png,",  # row 8
        "typo,content.png,style.png,3,,blue",  # row 9
    )
    result = validate(manifest)
    assert result.exit_code == 1, result.output
    base = tmp_path.resolve()
    assert result.stdout.splitlines() == [  # in file order; an unknown column hides no other problem
        "row 3, column iterations: Input should be greater than or equal to 1 (got '-3')",
        "row 4, column style: required",
        "row 5, column id: '../up' is not a safe folder name: use letters, digits, '.', '_', '-'",
        "row 6, column id: duplicate id 'ok' (row 2)",
        f"row 7, column style: style image {base}/notes.png: not an image Pillow can read",
        f"row 7, column style: style image {base}/missing.png: not found",
        f"row 8, column init: init image {base}/nowhere.png: not found",
        result.stdout.splitlines()[-1],
    ]
    assert result.stdout.splitlines()[-1].startswith("row 9, column colour: unknown setting")
    assert "8 rows, 8 problems" in result.stderr


def test_validate_counts_rows_not_errors(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv", "content,style,iterations,backbone", "content.png,style.png,,", "content.png,b,-3,resnet"
    )
    result = validate(manifest)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "row 3, column iterations: Input should be greater than or equal to 1 (got '-3')"
    assert lines[1].startswith("row 3, column backbone: ")
    assert "'resnet'" in lines[1]
    assert lines[2] == f"row 3, column style: style image {tmp_path.resolve()}/b: not found"  # checked all the same
    assert len(lines) == 3
    assert "2 rows, 3 problems" in result.stderr  # two data rows, one of them with three problems


def test_validate_setting_flags_are_defaults_for_blank_cells(
    tmp_path: Path, image_factory: Callable[..., Path], content_path: Path, style_path: Path
) -> None:
    image_factory("second.png", seed=3)
    manifest = write(
        tmp_path / "m.csv",
        "content,style,style_weights",
        "content.png,style.png|second.png,",
        "content.png,style.png,1",
    )
    assert validate(manifest, "--style-weights", "0.7|0.3").stdout == ""
    result = validate(manifest, "--style-weights", "0.2|0.3|0.5")
    assert result.exit_code == 1
    assert result.stdout == "row 2, column style_weights: 3 weights for 2 styles\n"


def test_validate_bad_flag_or_missing_manifest_exits_2(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", "content,style", "a.png,b.png")
    bad_flag = validate(manifest, "--iterations", "-3")
    assert bad_flag.exit_code == 2
    assert "iterations" in bad_flag.stderr
    missing = validate(str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2
    assert flat(f"error: manifest {tmp_path}/nope.csv: not found") in flat(missing.stderr)


def test_validate_a_manifest_without_rows(tmp_path: Path) -> None:
    result = validate(write(tmp_path / "m.csv", "content,style"))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert flat(f"error: manifest {tmp_path}/m.csv has a header but no rows") in flat(result.stderr)


def test_validate_takes_the_endpoint_url_like_run(
    s3: Bucket, pil_image: Callable[..., Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    s3.put("in/c.png", encode_image(pil_image(1), "c.png"))
    manifest = s3.put("in/m.csv", b"content,style\nc.png,c.png\nc.png,gone.png\n")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    forget_s3_clients()
    result = validate(manifest, "--endpoint-url", endpoint)
    assert result.exit_code == 1, result.output
    assert result.stdout == f"row 3, column style: style image {s3.uri}/in/gone.png: not found\n"
    assert os.environ["AWS_ENDPOINT_URL"] == endpoint  # set for s3fs, as run does


def test_validate_reports_a_missing_required_column(tmp_path: Path) -> None:
    result = validate(write(tmp_path / "m.csv", "content,iterations", "a.png,3"))
    assert result.exit_code == 1
    assert result.stdout == "row 1, column style: required column is missing\n"


# --- manifest cross --------------------------------------------------------------------------------


def make_folders(image_factory: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    contents, styles = tmp_path / "contents", tmp_path / "styles"
    for folder in (contents, styles, contents / "nested"):
        folder.mkdir()
    for index, name in enumerate(["contents/b.jpg", "contents/a.png", "contents/C.PNG", "contents/nested/d.png"]):
        image_factory(name, seed=index)
    for index, name in enumerate(["styles/wave.png", "styles/monet.jpeg"]):
        image_factory(name, seed=10 + index)
    (contents / "notes.txt").write_text("not an image")
    return contents, styles


def test_manifest_cross_writes_the_full_product(
    tmp_path: Path, image_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    contents, styles = make_folders(image_factory, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run("manifest", "cross", str(contents), str(styles), "--iterations", "5")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["content", "style", "iterations"]
    expected = [
        [f"contents/{content}", f"styles/{style}", "5"]  # relative to the cwd: the output goes there
        for content in ["C.PNG", "a.png", "b.jpg"]  # sorted; notes.txt and nested/ left out
        for style in ["monet.jpeg", "wave.png"]
    ]
    assert rows[1:] == expected
    assert "6 rows" in result.stderr

    manifest = read_manifest(write(tmp_path / "cross.csv", result.stdout.rstrip("\n")))
    assert manifest.errors == []
    base = tmp_path.resolve()
    assert [(pair.content, pair.styles) for pair in manifest.pairs] == [
        (f"{base}/{c}", (f"{base}/{s}",)) for c, s, _ in expected
    ]
    assert {pair.settings.iterations for pair in manifest.pairs} == {5}
    assert len({pair.pair_id for pair in manifest.pairs}) == 6


def test_manifest_cross_sweeps_into_a_file_in_another_folder(
    tmp_path: Path, image_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    contents, styles = make_folders(image_factory, tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    flags = ["--image-size", "48|32", "--style-weight", "1|3|10", "--weights", "random:0", "--iterations", "2"]

    result = run("manifest", "cross", "../contents", "../styles", *flags, "-o", "../sweeps/m.csv")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "../sweeps/m.csv\n"
    assert "36 rows" in result.stderr  # 3 contents x 2 styles x 2 sizes x 3 weights
    rows = list(csv.reader(io.StringIO((tmp_path / "sweeps" / "m.csv").read_text())))
    assert rows[0] == ["content", "style", "image_size", "style_weight", "weights", "iterations"]  # flags' order
    assert rows[1:4] == [
        ["../contents/C.PNG", "../styles/monet.jpeg", "48", w, "random:0", "2"] for w in ["1", "3", "10"]
    ]
    manifest = read_manifest(str(tmp_path / "sweeps" / "m.csv"))
    assert manifest.errors == []
    assert len({pair.pair_id for pair in manifest.pairs}) == 36
    first = manifest.pairs[:6]
    assert {(pair.content, pair.styles) for pair in first} == {
        (f"{contents.resolve()}/C.PNG", (f"{styles.resolve()}/monet.jpeg",))
    }
    assert [(p.settings.image_size, p.settings.style_weight) for p in first] == [
        (size, weight) for size in (48, 32) for weight in (1.0, 3.0, 10.0)
    ]
    checked = validate(str(tmp_path / "sweeps" / "m.csv"))
    assert checked.exit_code == 0, checked.output
    assert "36 rows, 0 problems" in checked.stderr


def test_manifest_cross_with_a_bad_sweep_value_writes_nothing(
    tmp_path: Path, image_factory: Callable[..., Path]
) -> None:
    contents, styles = make_folders(image_factory, tmp_path)
    output = tmp_path / "m.csv"
    result = run("manifest", "cross", str(contents), str(styles), "--style-weight", "1|lots", "-o", str(output))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert flat("error: --style-weight lots: Input should be a valid number") in flat(result.stderr)
    assert not output.exists()


def test_manifest_cross_from_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    for name in ("c/one.png", "c/two.png", "s/a.jpg"):
        s3.put(f"in/{name}", encode_image(pil_image(len(name)), name))
    result = run("manifest", "cross", f"{s3.uri}/in/c", f"{s3.uri}/in/s/")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "content,style",
        f"{s3.uri}/in/c/one.png,{s3.uri}/in/s/a.jpg",
        f"{s3.uri}/in/c/two.png,{s3.uri}/in/s/a.jpg",
    ]


def test_manifest_cross_keeps_a_style_file_name_with_a_comma(
    tmp_path: Path, image_factory: Callable[..., Path]
) -> None:
    for folder in ("contents", "styles"):
        (tmp_path / folder).mkdir()
    image_factory("contents/photo.png", seed=1)
    image_factory("styles/Monet, Water Lilies.png", seed=2)
    result = run(
        "manifest", "cross", str(tmp_path / "contents"), str(tmp_path / "styles"), "-o", str(tmp_path / "m.csv")
    )
    assert result.exit_code == 0, result.stderr
    manifest = read_manifest(str(tmp_path / "m.csv"))
    assert manifest.errors == []
    assert manifest.pairs[0].styles == (f"{tmp_path.resolve()}/styles/Monet, Water Lilies.png",)


def test_manifest_cross_without_images_exits_2(tmp_path: Path, image_factory: Callable[..., Path]) -> None:
    (tmp_path / "contents").mkdir()
    (tmp_path / "styles").mkdir()
    image_factory("contents/a.png")
    (tmp_path / "styles" / "readme.txt").write_text("no images here")
    result = run("manifest", "cross", str(tmp_path / "contents"), str(tmp_path / "styles"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert flat("error: no images (.jpg, .jpeg, .png") in flat(result.stderr)
    assert flat(f"in {tmp_path}/styles") in flat(result.stderr)

    missing = run("manifest", "cross", str(tmp_path / "nope"), str(tmp_path / "styles"))
    assert missing.exit_code == 2
    assert flat(f"error: not a folder: {tmp_path}/nope") in flat(missing.stderr)


def test_manifest_cross_rejects_bad_settings(tmp_path: Path, image_factory: Callable[..., Path]) -> None:
    contents, styles = make_folders(image_factory, tmp_path)
    result = run("manifest", "cross", str(contents), str(styles), "--iterations", "0")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "iterations" in result.stderr
