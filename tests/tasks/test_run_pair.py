"""run_pair: read inputs (local, S3, HTTP), render a tiny pair on the CPU, write its folder (local, S3)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from nst_core import InputError, Settings, StepInfo
from nst_core.images import encode_image
from tasks.manifest import Pair, read_manifest
from tasks.run_pair import run_pair
from tasks.storage import MARKER, finished

if TYPE_CHECKING:  # fixtures' types (tests/tasks/conftest.py)
    from tests.support import Bucket, WebFolder

FAST = {"weights": "random:0", "image_size": 32, "iterations": 2, "device": "cpu"}
LOSS_COLUMNS = ["iteration", "content", "style", "tv", "total", "lr", "elapsed_s"]


def one_pair(manifest_uri: str, **defaults: Any) -> Pair:
    manifest = read_manifest(manifest_uri, FAST | defaults)
    assert manifest.errors == []
    (pair,) = manifest.pairs
    return pair


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_outputs(read: Callable[[str], bytes], pair: Pair, inputs: dict[str, bytes], iterations: int) -> None:
    """The pair folder's files, read through ``read(name)``, describe this render."""
    with Image.open(io.BytesIO(read("result.png"))) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (32, 26)  # the 40x32 content at a long side of 32

    rows = list(csv.DictReader(io.StringIO(read("losses.csv").decode())))
    assert list(rows[0]) == LOSS_COLUMNS
    assert [int(row["iteration"]) for row in rows] == list(range(1, iterations + 1))

    meta = json.loads(read("settings.json"))
    assert meta["pair_id"] == pair.pair_id
    assert meta["row"] == pair.row
    assert meta["settings"] == pair.settings.model_copy(update={"device": "cpu"}).model_dump(mode="json")
    assert meta["settings"]["iterations"] == iterations
    assert meta["content"] == {"uri": pair.content, "sha256": sha256(inputs[pair.content])}
    assert meta["styles"] == [{"uri": uri, "sha256": sha256(inputs[uri])} for uri in pair.styles]
    assert meta["device"] == "cpu"
    assert meta["precision"] == "fp32"
    assert meta["versions"]["torch"] == version("torch")
    assert {"stylebatch", "torchvision", "pillow", "python"} <= set(meta["versions"])

    marker = json.loads(read(MARKER))
    assert marker["fingerprint"] == pair.fingerprint
    assert marker["pair_id"] == pair.pair_id
    assert marker["final"]["iteration"] == iterations
    assert float(rows[-1]["total"]) == pytest.approx(marker["final"]["total"])


def test_run_pair_locally(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    (tmp_path / "m.csv").write_text("content,style,iterations,tags\ncontent.png,style.png,3,a|b\n")
    pair = one_pair(str(tmp_path / "m.csv"))
    out = tmp_path / "renders"
    steps: list[StepInfo] = []

    summary = run_pair(pair, str(out), None, on_step=steps.append)

    folder = out / pair.pair_id
    assert summary["output"] == f"{folder}/result.png"
    assert summary["fingerprint"] == pair.fingerprint
    assert (summary["pair_id"], summary["row"], summary["device"]) == (pair.pair_id, 2, "cpu")
    assert summary["final"]["iteration"] == 3
    assert [step.iteration for step in steps] == [1, 2, 3]
    assert sorted(path.name for path in folder.iterdir()) == [MARKER, "losses.csv", "result.png", "settings.json"]
    assert sorted(path.name for path in out.iterdir()) == [pair.pair_id]  # no staging folder left
    inputs = {str(content_path): content_path.read_bytes(), str(style_path): style_path.read_bytes()}
    check_outputs(lambda name: (folder / name).read_bytes(), pair, inputs, iterations=3)
    assert json.loads((folder / "settings.json").read_text())["tags"] == ["a", "b"]
    assert finished(str(out), pair.pair_id, pair.fingerprint)


def test_run_pair_device_argument_overrides_the_setting(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    (tmp_path / "m.csv").write_text("content,style,device\ncontent.png,style.png,auto\n")
    pair = one_pair(str(tmp_path / "m.csv"))
    summary = run_pair(pair, str(tmp_path / "out"), "cpu")
    meta = json.loads((tmp_path / "out" / pair.pair_id / "settings.json").read_text())
    assert meta["settings"]["device"] == summary["device"] == "cpu"
    assert finished(str(tmp_path / "out"), pair.pair_id, pair.fingerprint)  # the device is not in the fingerprint


def test_run_pair_keeps_snapshots(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    (tmp_path / "m.csv").write_text("content,style,snapshot_every,iterations\ncontent.png,style.png,1,3\n")
    pair = one_pair(str(tmp_path / "m.csv"))
    run_pair(pair, str(tmp_path / "out"), None)
    snapshots = tmp_path / "out" / pair.pair_id / "snapshots"
    assert sorted(path.name for path in snapshots.iterdir()) == ["00001.png", "00002.png", "00003.png"]
    for path in snapshots.iterdir():
        with Image.open(path) as image:
            assert image.size == (32, 26)


def test_run_pair_with_s3_inputs_and_outputs(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    inputs = {
        s3.put("inputs/photo.png", encode_image(pil_image(1), "x.png")),
        s3.put("inputs/styles/a.png", encode_image(pil_image(2, (36, 36)), "x.png")),
        s3.put("inputs/styles/b.jpg", encode_image(pil_image(4), "x.jpg")),
    }
    manifest = s3.put("inputs/m.csv", b"content,style,style_weights\nphoto.png,styles/a.png|styles/b.jpg,0.7|0.3\n")
    pair = one_pair(manifest)
    assert {pair.content, *pair.styles} == inputs
    out = f"{s3.uri}/renders/run1"

    summary = run_pair(pair, out, None)

    assert summary["output"] == f"{out}/{pair.pair_id}/result.png"
    names = {MARKER, "losses.csv", "result.png", "settings.json"}
    assert s3.keys("renders/run1") == {f"{pair.pair_id}/{name}" for name in names}
    data = {uri: s3.get(uri.removeprefix(f"{s3.uri}/")) for uri in inputs}
    check_outputs(lambda name: s3.get(f"renders/run1/{pair.pair_id}/{name}"), pair, data, iterations=2)
    assert finished(out, pair.pair_id, pair.fingerprint)


def test_run_pair_with_http_inputs(tmp_path: Path, web: WebFolder, image_factory: Callable[..., Path]) -> None:
    content = image_factory("www/photo one.png", seed=1)
    style = image_factory("www/style.png", seed=2, size=(36, 36))
    (web.root / "m.csv").write_text("content,style\nphoto%20one.png,style.png\n")
    pair = one_pair(f"{web.url}/m.csv")
    assert (pair.content, pair.styles) == (f"{web.url}/photo%20one.png", (f"{web.url}/style.png",))
    out = tmp_path / "renders"

    run_pair(pair, str(out), None)

    assert pair.pair_id.startswith("photo-one__style-")
    inputs = {pair.content: content.read_bytes(), pair.styles[0]: style.read_bytes()}
    check_outputs(lambda name: (out / pair.pair_id / name).read_bytes(), pair, inputs, iterations=2)


@pytest.mark.parametrize("role", ["content", "style"])
def test_missing_input_raises_and_writes_nothing(
    tmp_path: Path, content_path: Path, style_path: Path, role: str
) -> None:
    cells = {"content": "content.png", "style": "style.png"} | {role: "missing.png"}
    (tmp_path / "m.csv").write_text(f"content,style\n{cells['content']},{cells['style']}\n")
    pair = one_pair(str(tmp_path / "m.csv"))
    out = tmp_path / "renders"
    with pytest.raises(InputError, match=rf"{role} image not found: .*/missing\.png$"):
        run_pair(pair, str(out), None)
    assert not out.exists()


def test_missing_input_over_http_and_s3_raises(tmp_path: Path, web: WebFolder, s3: Bucket, style_path: Path) -> None:
    pair = Pair("p", 2, f"{web.url}/nope.png", (f"{s3.uri}/nope.png",), Settings.from_values(FAST))
    with pytest.raises(InputError, match=re.escape(f"content image not found: {web.url}/nope.png")):
        run_pair(pair, str(tmp_path / "renders"), None)
    (web.root / "nope.png").write_bytes(style_path.read_bytes())
    with pytest.raises(InputError, match=re.escape(f"style image not found: {s3.uri}/nope.png")):
        run_pair(pair, f"{s3.uri}/renders", None)
    assert not (tmp_path / "renders").exists()
    assert s3.keys("renders") == set()


def test_an_input_that_is_not_an_image_raises_and_writes_nothing(tmp_path: Path, content_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "m.csv").write_text("content,style\ncontent.png,notes.png\n")
    pair = one_pair(str(tmp_path / "m.csv"))
    with pytest.raises(InputError, match=r"style image .*notes\.png is not an image"):
        run_pair(pair, str(tmp_path / "renders"), None)
    assert not (tmp_path / "renders").exists()
