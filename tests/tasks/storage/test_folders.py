"""Pair folders: files plus the completion record, written last, on local disk and on S3 (moto over HTTP)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
import pytest
from PIL import Image

from nst_core import Settings, StorageError
from nst_core.images import encode_image
from tasks.runs.pairs import failure_record
from tasks.storage.folders import finished, write_failure, write_pair
from tasks.storage.records import DONE, FAILED, RESULT, read_completion, read_failure
from tasks.storage.root import OutputRoot
from tests.tasks.gallery.helpers import FakePair, png_bytes

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def fake(pair_id: str = "p1", iterations: int = 3) -> FakePair:
    settings = Settings(weights="random:0", image_size=32, iterations=iterations, snapshot_every=0, device="cpu")
    return FakePair(pair_id, "/in/content.png", ("/in/style.png",), settings)


def outputs(pil_image: Callable[..., Image.Image], pair: FakePair, snapshots: int = 0) -> dict[str, bytes]:
    """``pair``'s files, with ``snapshots`` snapshot images before the completion record."""
    files = pair.files(png_bytes(pil_image(3)))
    done = files.pop(DONE)
    snaps = {f"snapshots/{i:05d}.png": encode_image(pil_image(i), "x.png") for i in range(1, snapshots + 1)}
    return files | snaps | {DONE: done}


def test_write_pair_locally(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = tmp_path / "renders"
    pair = fake()
    files = outputs(pil_image, pair, snapshots=2)
    folder = write_pair(str(out), "p1", files)
    assert folder == OutputRoot.open(str(out)).pair_uri("p1") == f"{out}/p1"
    assert files_under(out) == {f"p1/{name}" for name in files}
    for name, data in files.items():
        assert (out / "p1" / name).read_bytes() == data
    assert read_completion((out / "p1" / DONE).read_bytes()).fingerprint == pair.pair.fingerprint
    assert [path.name for path in out.iterdir()] == ["p1"]  # no hidden staging folder left


def test_the_completion_record_must_come_last(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    files = outputs(pil_image, fake())
    done = files.pop(DONE)
    with pytest.raises(ValueError, match=DONE):
        write_pair(str(tmp_path), "p1", {DONE: done, **files})
    assert not (tmp_path / "p1").exists()


def test_finished_needs_the_completion_record_and_its_fingerprint(
    tmp_path: Path, pil_image: Callable[..., Image.Image]
) -> None:
    out, pair = str(tmp_path / "renders"), fake()
    fingerprint = pair.pair.fingerprint
    assert not finished(out, "p1", fingerprint)  # no folder at all
    write_pair(out, "p1", outputs(pil_image, pair))
    assert finished(out, "p1", fingerprint)
    assert not finished(out, "p1", "0" * 64)  # settings or inputs changed since
    assert not finished(out, "p2", fingerprint)
    (tmp_path / "renders" / "p1" / DONE).write_text('{"pair_id": "p1", "finger')  # cut short by a crash
    assert not finished(out, "p1", fingerprint)


def test_a_crashed_render_is_not_finished_and_is_replaced(
    tmp_path: Path, pil_image: Callable[..., Image.Image]
) -> None:
    out, pair = tmp_path / "renders", fake()
    crashed = out / "p1"
    (crashed / "snapshots").mkdir(parents=True)
    pil_image(9).save(crashed / RESULT)  # as if the process died before the completion record
    (crashed / "snapshots" / "00007.png").write_bytes(b"partial")
    assert not finished(str(out), "p1", pair.pair.fingerprint)

    files = outputs(pil_image, pair)
    write_pair(str(out), "p1", files)
    assert finished(str(out), "p1", pair.pair.fingerprint)
    assert files_under(crashed) == set(files)
    assert (crashed / RESULT).read_bytes() == files[RESULT]


def test_write_pair_replaces_an_old_folder(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out = tmp_path / "renders"
    old, other, new = fake(iterations=2), fake("p2"), fake(iterations=4)
    write_pair(str(out), "p1", outputs(pil_image, old, snapshots=3))
    write_pair(str(out), "p2", outputs(pil_image, other))
    files = outputs(pil_image, new)
    write_pair(str(out), "p1", files)
    assert files_under(out / "p1") == set(files)  # old snapshots are gone
    assert finished(str(out), "p1", new.pair.fingerprint)
    assert not finished(str(out), "p1", old.pair.fingerprint)
    assert finished(str(out), "p2", other.pair.fingerprint)  # the neighbour is untouched
    assert sorted(path.name for path in out.iterdir()) == ["p1", "p2"]  # no .*.tmp staging folders


def test_write_failure_then_success(tmp_path: Path, pil_image: Callable[..., Image.Image]) -> None:
    out, pair = tmp_path / "renders", fake()
    write_failure(str(out), "p1", failure_record(pair.pair, "out of memory"))
    write_failure(str(out), "p1", failure_record(pair.pair, "timed out"))
    assert files_under(out) == {f"p1/{FAILED}"}  # no temporary files left
    assert read_failure((out / "p1" / FAILED).read_bytes()).error == "timed out"
    assert not finished(str(out), "p1", pair.pair.fingerprint)

    write_pair(str(out), "p1", outputs(pil_image, pair))
    assert not (out / "p1" / FAILED).exists()
    assert finished(str(out), "p1", pair.pair.fingerprint)


def test_write_pair_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out, pair = f"{s3.uri}/renders/run1", fake()
    files = outputs(pil_image, pair, snapshots=2)
    folder = write_pair(out, "p1", files)
    assert folder == f"{out}/p1"
    assert s3.keys("renders") == {f"run1/p1/{name}" for name in files}
    with Image.open(io.BytesIO(s3.get(f"renders/run1/p1/{RESULT}"))) as image:
        assert image.format == "PNG"
        assert image.size == pil_image(3).size
    assert s3.get(f"renders/run1/p1/{DONE}") == files[DONE]
    assert finished(out, "p1", pair.pair.fingerprint)
    assert not finished(out, "p1", "0" * 64)
    assert not finished(out, "p2", pair.pair.fingerprint)


class _Recording:
    """Wraps ``fs.pipe_file``: records each written key and fails at the ``fail_at``-th write."""

    def __init__(self, fail_at: int | None = None):
        self.keys: list[str] = []
        self.fail_at = fail_at

    def __call__(self, original: Callable[..., object]) -> Callable[..., object]:
        def pipe_file(path: str, data: bytes, **kwargs: object) -> object:
            if self.fail_at is not None and len(self.keys) == self.fail_at:
                raise ConnectionResetError("connection reset by peer")
            self.keys.append(path.rsplit("/", 1)[-1])
            return original(path, data, **kwargs)

        return pipe_file


def test_on_s3_the_completion_record_is_written_last(
    s3: Bucket, pil_image: Callable[..., Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, pair = f"{s3.uri}/renders", fake()
    fs = fsspec.filesystem("s3")
    recording = _Recording()
    monkeypatch.setattr(fs, "pipe_file", recording(fs.pipe_file))
    files = outputs(pil_image, pair, snapshots=2)
    write_pair(out, "p1", files)
    assert recording.keys[-1] == DONE
    assert sorted(recording.keys) == sorted(name.rsplit("/", 1)[-1] for name in files)


def test_on_s3_a_write_that_fails_part_way_leaves_no_completion_record(
    s3: Bucket, pil_image: Callable[..., Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, pair = f"{s3.uri}/renders", fake()
    write_pair(out, "p1", outputs(pil_image, fake(iterations=2)))  # an older render is there
    fs = fsspec.filesystem("s3")
    monkeypatch.setattr(fs, "pipe_file", _Recording(fail_at=2)(fs.pipe_file))
    with pytest.raises(StorageError):
        write_pair(out, "p1", outputs(pil_image, pair))
    assert f"p1/{DONE}" not in s3.keys("renders")
    assert not finished(out, "p1", pair.pair.fingerprint)


def test_failure_then_success_on_s3(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out, pair = f"{s3.uri}/renders", fake()
    write_failure(out, "p1", failure_record(pair.pair, "boom"))
    assert s3.keys("renders") == {f"p1/{FAILED}"}
    assert read_failure(s3.get(f"renders/p1/{FAILED}")).error == "boom"
    assert not finished(out, "p1", pair.pair.fingerprint)

    files = outputs(pil_image, pair)
    write_pair(out, "p1", files)
    assert s3.keys("renders") == {f"p1/{name}" for name in files}  # the failure record removed
    assert finished(out, "p1", pair.pair.fingerprint)


def test_a_crashed_render_on_s3_is_not_finished(s3: Bucket, pil_image: Callable[..., Image.Image]) -> None:
    out, old, new = f"{s3.uri}/renders", fake(iterations=2), fake()
    write_pair(out, "p1", outputs(pil_image, old))
    s3.put(f"renders/p2/{RESULT}", encode_image(pil_image(1), RESULT))  # died before the completion record
    assert not finished(out, "p2", new.pair.fingerprint)
    write_pair(out, "p1", outputs(pil_image, new))  # re-render with new settings
    assert finished(out, "p1", new.pair.fingerprint)
