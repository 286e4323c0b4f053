"""Pair folders: files plus the done.json marker, on local disk and on S3 (moto over HTTP)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from nst_core.images import encode_image
from tasks.storage import FAILURE, MARKER, finished, pair_folder, read_json, write_failure, write_pair

if TYPE_CHECKING:  # fixtures' types (tests/tasks/conftest.py)
    from tests.support import Bucket

FINGERPRINT = "f" * 64


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def outputs(pil_image: Callable[..., Image.Image], snapshots: int = 0) -> dict[str, bytes]:
    files = {
        "result.png": encode_image(pil_image(3), "result.png"),
        "losses.csv": b"iteration,total\n1,2.0\n",
        "settings.json": b"{}",
    }
    return files | {f"snapshots/{i:05d}.png": encode_image(pil_image(i), "x.png") for i in range(1, snapshots + 1)}


def test_write_pair_locally(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = tmp_path / "renders"
    files = outputs(pil_image, snapshots=2)
    folder = write_pair(str(out), "p1", files, {"fingerprint": FINGERPRINT, "final": {"total": 1.5}})
    assert folder == pair_folder(str(out), "p1") == f"{out}/p1"
    assert files_under(out) == {f"p1/{name}" for name in [*files, MARKER]}
    for name, data in files.items():
        assert (out / "p1" / name).read_bytes() == data
    assert json.loads((out / "p1" / MARKER).read_text()) == {"fingerprint": FINGERPRINT, "final": {"total": 1.5}}
    assert read_json(f"{folder}/{MARKER}") == {"fingerprint": FINGERPRINT, "final": {"total": 1.5}}
    assert [path.name for path in out.iterdir()] == ["p1"]  # no hidden staging folder left


def test_finished_needs_the_marker_and_its_fingerprint(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = str(tmp_path / "renders")
    assert not finished(out, "p1", FINGERPRINT)  # no folder at all
    write_pair(out, "p1", outputs(pil_image), {"fingerprint": FINGERPRINT})
    assert finished(out, "p1", FINGERPRINT)
    assert not finished(out, "p1", "0" * 64)  # settings or inputs changed since
    assert not finished(out, "p2", FINGERPRINT)


def test_a_crashed_render_is_not_finished_and_is_replaced(
    tmp_path: Path, pil_image: Callable[..., Image.Image]
) -> None:
    out = tmp_path / "renders"
    crashed = out / "p1"
    (crashed / "snapshots").mkdir(parents=True)
    pil_image(9).save(crashed / "result.png")  # as if the process died before the marker
    (crashed / "snapshots" / "00007.png").write_bytes(b"partial")
    (crashed / "losses.csv").write_text("iteration\n")
    assert not finished(str(out), "p1", FINGERPRINT)

    files = outputs(pil_image)
    write_pair(str(out), "p1", files, {"fingerprint": FINGERPRINT})
    assert finished(str(out), "p1", FINGERPRINT)
    assert files_under(crashed) == {*files, MARKER}
    assert (crashed / "result.png").read_bytes() == files["result.png"]


def test_write_pair_replaces_an_old_folder(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = tmp_path / "renders"
    write_pair(str(out), "p1", outputs(pil_image, snapshots=3) | {"extra.txt": b"x"}, {"fingerprint": "old"})
    write_pair(str(out), "p2", outputs(pil_image), {"fingerprint": "other"})
    new = outputs(pil_image)
    write_pair(str(out), "p1", new, {"fingerprint": FINGERPRINT})
    assert files_under(out / "p1") == {*new, MARKER}  # old snapshots and extra files are gone
    assert finished(str(out), "p1", FINGERPRINT)
    assert not finished(str(out), "p1", "old")
    assert finished(str(out), "p2", "other")  # the neighbour is untouched
    assert sorted(path.name for path in out.iterdir()) == ["p1", "p2"]  # no .*.tmp staging folders


def test_write_failure_then_success(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = tmp_path / "renders"
    write_failure(str(out), "p1", {"reason": "out of memory", "attempt": 1})
    write_failure(str(out), "p1", {"reason": "timed out", "attempt": 2})
    assert files_under(out) == {f"p1/{FAILURE}"}  # no temporary files left
    assert read_json(f"{out}/p1/{FAILURE}") == {"reason": "timed out", "attempt": 2}
    assert not finished(str(out), "p1", FINGERPRINT)

    write_pair(str(out), "p1", outputs(pil_image), {"fingerprint": FINGERPRINT})
    assert not (out / "p1" / FAILURE).exists()
    assert read_json(f"{out}/p1/{FAILURE}") is None
    assert finished(str(out), "p1", FINGERPRINT)


def test_read_json_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert read_json(str(tmp_path / "nothing" / MARKER)) is None


def test_write_pair_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out = f"{s3.uri}/renders/run1"
    files = outputs(pil_image, snapshots=2)
    folder = write_pair(out, "p1", files, {"fingerprint": FINGERPRINT})
    assert folder == f"{out}/p1"
    assert s3.keys("renders") == {f"run1/p1/{name}" for name in [*files, MARKER]}
    with Image.open(io.BytesIO(s3.get("renders/run1/p1/result.png"))) as image:
        assert image.format == "PNG"
        assert image.size == pil_image(3).size
    assert s3.get("renders/run1/p1/losses.csv") == files["losses.csv"]
    assert json.loads(s3.get(f"renders/run1/p1/{MARKER}")) == {"fingerprint": FINGERPRINT}
    assert finished(out, "p1", FINGERPRINT)
    assert not finished(out, "p1", "0" * 64)
    assert not finished(out, "p2", FINGERPRINT)


def test_failure_then_success_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out = f"{s3.uri}/renders"
    write_failure(out, "p1", {"reason": "boom"})
    assert s3.keys("renders") == {f"p1/{FAILURE}"}
    assert read_json(f"{out}/p1/{FAILURE}") == {"reason": "boom"}
    assert not finished(out, "p1", FINGERPRINT)

    files = outputs(pil_image)
    write_pair(out, "p1", files, {"fingerprint": FINGERPRINT})
    assert s3.keys("renders") == {f"p1/{name}" for name in [*files, MARKER]}  # failed.json removed
    assert finished(out, "p1", FINGERPRINT)


def test_a_crashed_render_on_s3_is_not_finished(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out = f"{s3.uri}/renders"
    write_pair(out, "p1", outputs(pil_image), {"fingerprint": "old"})
    s3.put("renders/p2/result.png", encode_image(pil_image(1), "result.png"))  # died before the marker
    assert not finished(out, "p2", FINGERPRINT)
    write_pair(out, "p1", outputs(pil_image), {"fingerprint": FINGERPRINT})  # re-render with new settings
    assert finished(out, "p1", FINGERPRINT)
    assert json.loads(s3.get(f"renders/p1/{MARKER}")) == {"fingerprint": FINGERPRINT}
