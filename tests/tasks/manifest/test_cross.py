"""tasks.manifest.cross: sweeps of settings, the content x style x sweeps product, relative paths, the atomic write."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from nst_core import SettingsError, StorageError
from nst_core.images import encode_image
from tasks.manifest.cross import LIST_SETTINGS, cross_manifest, parse_sweeps, write_manifest
from tasks.manifest.read import read_manifest

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def folders(tmp_path: Path, image_factory: Callable[..., Path]) -> tuple[Path, Path]:
    """inputs/contents/{a,b}.png and inputs/styles/{x,y}.png."""
    for index, name in enumerate(["contents/b.png", "contents/a.png", "styles/y.png", "styles/x.png"]):
        (tmp_path / "inputs" / name).parent.mkdir(parents=True, exist_ok=True)
        image_factory(f"inputs/{name}", seed=index)
    return tmp_path / "inputs" / "contents", tmp_path / "inputs" / "styles"


def test_list_settings_are_those_whose_value_is_a_list() -> None:
    assert set(LIST_SETTINGS) == {
        "content_layers",
        "content_layer_weights",
        "style_layers",
        "style_layer_weights",
        "style_weights",
        "lr_schedule",
    }


def test_scalar_alternatives_split_on_bars_and_list_alternatives_on_semicolons() -> None:
    sweeps = parse_sweeps(
        {
            "style_weight": "10| 1|3",
            "style_layers": "relu1_1|relu2_1; relu3_1",
            "lr_schedule": "180:0.1|400:0.01",
            "iterations": "5",
            "channels_last": True,
        }
    )
    assert sweeps == {
        "style_weight": ["10", "1", "3"],  # in the order given
        "style_layers": ["relu1_1|relu2_1", "relu3_1"],
        "lr_schedule": ["180:0.1|400:0.01"],  # one schedule of two steps
        "iterations": ["5"],
        "channels_last": [True],
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"style_weight": "1|-3"}, "--style-weight -3: Input should be greater than or equal to 0 (got '-3')"),
        ({"image_size": "64|big"}, "--image-size big: Input should be a valid integer"),
        ({"iterations": "5||6"}, "--iterations 5||6: an alternative is blank"),
        ({"style_weight": "1|1.0"}, "--style-weight: 1 and 1.0 give the same render"),
        ({"device": "cpu|cuda"}, "--device: cpu and cuda give the same render"),  # pair ids would collide
    ],
)
def test_a_bad_alternative_names_its_flag_and_value(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_sweeps(values)
    assert str(raised.value).startswith(message)


def test_a_value_bad_only_with_another_sweep_says_which() -> None:
    with pytest.raises(SettingsError) as raised:
        parse_sweeps({"backbone": "vgg19|squeezenet1_1", "style_layers": "relu1_1", "image_size": "32|64"})
    assert str(raised.value).startswith("--style-layers relu1_1: unknown layer 'relu1_1' for squeezenet1_1")
    assert str(raised.value).endswith("(with --backbone squeezenet1_1 --image-size 32)")


def test_the_product_goes_content_style_then_sweeps_in_order(folders: tuple[Path, Path], tmp_path: Path) -> None:
    contents, styles = folders
    sweeps = parse_sweeps({"style_weight": "10|1|3", "image_size": "64|32", "iterations": "2"})

    table = rows(cross_manifest(str(contents), str(styles), sweeps, str(tmp_path / "inputs")))

    assert table[0] == ["content", "style", "style_weight", "image_size", "iterations"]
    assert len(table) == 1 + 2 * 2 * 3 * 2
    assert table[1:7] == [
        ["contents/a.png", "styles/x.png", weight, size, "2"] for weight in ["10", "1", "3"] for size in ["64", "32"]
    ]
    order = [(c, s) for c, s, *_ in table[1:]]
    assert order == [(f"contents/{c}.png", f"styles/{s}.png") for c in "ab" for s in "xy" for _ in range(6)]


def test_paths_are_relative_to_the_manifest_folder(folders: tuple[Path, Path], tmp_path: Path) -> None:
    contents, styles = folders
    base = tmp_path.resolve()  # as read_manifest resolves paths
    (tmp_path / "start.png").write_bytes(b"")
    sweeps = parse_sweeps({"init": f"{tmp_path}/start.png|noise", "weights": "random:1"})
    manifest = tmp_path / "project" / "sweeps" / "m.csv"

    text = cross_manifest(str(contents), str(styles), sweeps, str(manifest.parent))

    assert rows(text)[1] == ["../../inputs/contents/a.png", "../../inputs/styles/x.png", "../../start.png", "random:1"]
    assert rows(text)[2][2] == "noise"  # a mode, not a file
    write_manifest(str(manifest), text)
    parsed = read_manifest(str(manifest))
    assert parsed.errors == []
    first = parsed.pairs[0]
    assert (first.content, first.styles) == (f"{base}/inputs/contents/a.png", (f"{base}/inputs/styles/x.png",))
    assert [pair.settings.init for pair in parsed.pairs[:2]] == [f"{base}/start.png", "noise"]


def test_relative_inputs_are_taken_from_the_cwd(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path / "inputs")
    text = cross_manifest("contents", "styles", {}, str(tmp_path / "out"))
    assert rows(text)[1] == ["../inputs/contents/a.png", "../inputs/styles/x.png"]
    base = tmp_path.resolve()
    absolute = rows(cross_manifest("contents", "styles", {}, None))
    assert absolute[1] == [f"{base}/inputs/contents/a.png", f"{base}/inputs/styles/x.png"]


def test_uris_stay_absolute(s3: Bucket, pil_image: Callable[..., Image.Image], tmp_path: Path) -> None:
    for name in ("c/one.png", "s/a.jpg"):
        s3.put(f"in/{name}", encode_image(pil_image(len(name)), name))
    sweeps = parse_sweeps({"init": f"{s3.uri}/in/start.png"})
    text = cross_manifest(f"{s3.uri}/in/c", f"{s3.uri}/in/s", sweeps, str(tmp_path))
    assert rows(text)[1:] == [[f"{s3.uri}/in/c/one.png", f"{s3.uri}/in/s/a.jpg", f"{s3.uri}/in/start.png"]]


def test_write_manifest_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "new" / "m.csv"
    write_manifest(str(target), "content,style\na.png,b.png\n")
    write_manifest(str(target), "content,style\nc.png,d.png\n")
    assert target.read_text() == "content,style\nc.png,d.png\n"
    assert [p.name for p in target.parent.iterdir()] == ["m.csv"]  # no staged file left


def test_write_manifest_to_s3(s3: Bucket) -> None:
    write_manifest(f"{s3.uri}/manifests/m.csv", "content,style\n")
    assert s3.get("manifests/m.csv") == b"content,style\n"


def test_write_manifest_failure_names_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError) as raised:
        write_manifest(str(tmp_path / "file" / "m.csv"), "content,style\n")
    assert str(raised.value).startswith(f"manifest {tmp_path}/file/m.csv: ")
    assert (tmp_path / "file").read_text() == "not a folder"
