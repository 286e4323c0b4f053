"""run_pair: one pair from lease to outputs (local, S3, HTTP inputs), and every way it can end."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from nst_core import Settings, StepInfo, StorageError
from nst_core.images import encode_image
from tasks.manifest.read import Pair, read_manifest
from tasks.runs import pairs as run_pair_module
from tasks.runs import stopping
from tasks.runs.options import RunOptions
from tasks.runs.pairs import batches, run_batch, run_pair
from tasks.storage.folders import finished, write_pair
from tasks.storage.leases import LEASE
from tasks.storage.records import (
    DONE,
    FAILED,
    LOSSES,
    RECORD,
    RESULT,
    InputFile,
    LossRow,
    read_failure,
    read_losses,
    read_record,
)

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket, WebFolder

FAST = {"weights": "random:0", "image_size": 32, "iterations": 2, "device": "cpu"}
PAIR_FILES = sorted([DONE, LOSSES, RESULT, RECORD])


def one_pair(manifest_uri: str, **defaults: Any) -> Pair:
    manifest = read_manifest(manifest_uri, FAST | defaults)
    assert manifest.errors == []
    (pair,) = manifest.pairs
    return pair


def local_pair(tmp_path: Path, cells: str = "content.png,style.png", columns: str = "content,style") -> Pair:
    (tmp_path / "m.csv").write_text(f"{columns}\n{cells}\n")
    return one_pair(str(tmp_path / "m.csv"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_outputs(read: Callable[[str], bytes], pair: Pair, inputs: dict[str, bytes], iterations: int) -> None:
    """The pair folder's files, read through ``read(name)``, describe this render."""
    with Image.open(io.BytesIO(read(RESULT))) as image:
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (32, 26)  # the 40x32 content at a long side of 32

    header = read(LOSSES).decode().splitlines()[0]
    assert header.split(",") == [
        name for name in LossRow.model_fields if name != "temporal"
    ]  # a still's log: as before
    losses = read_losses(read(LOSSES))
    assert [row.iteration for row in losses] == list(range(1, iterations + 1))

    record = read_record(read(RECORD), read(DONE))
    assert record.pair_id == pair.pair_id
    assert record.row == pair.row
    assert record.settings == pair.settings.model_copy(update={"device": "cpu"})
    assert record.settings.iterations == iterations
    assert record.content == InputFile(uri=pair.content, sha256=sha256(inputs[pair.content]))
    assert record.styles == [InputFile(uri=uri, sha256=sha256(inputs[uri])) for uri in pair.styles]
    assert (record.device, record.precision) == ("cpu", "fp32")
    assert record.versions["torch"] == version("torch")
    assert {"stylebatch", "torchvision", "pillow", "python"} <= set(record.versions)
    assert record.fingerprint == pair.fingerprint
    assert record.final == losses[-1]
    assert record.finished_at >= record.started_at


@pytest.fixture(autouse=True)
def no_stop() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


def test_run_pair_locally(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,3,a|b", "content,style,iterations,tags")
    out = tmp_path / "renders"
    steps: list[StepInfo] = []

    outcome = run_pair(pair, RunOptions(out=str(out)), None, on_step=steps.append)

    folder = out / pair.pair_id
    assert outcome.status == "rendered"
    assert outcome.output == f"{folder}/{RESULT}"
    assert outcome.fingerprint == pair.fingerprint
    assert (outcome.pair_id, outcome.row, outcome.device) == (pair.pair_id, 2, "cpu")
    assert outcome.final.iteration == 3
    assert [step.iteration for step in steps] == [1, 2, 3]
    assert sorted(path.name for path in folder.iterdir()) == PAIR_FILES  # the lease went with the old folder
    assert sorted(path.name for path in out.iterdir()) == [pair.pair_id]  # no staging folder left
    inputs = {str(content_path): content_path.read_bytes(), str(style_path): style_path.read_bytes()}
    check_outputs(lambda name: (folder / name).read_bytes(), pair, inputs, iterations=3)
    assert read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes()).tags == ["a", "b"]
    assert finished(str(out), pair.pair_id, pair.fingerprint)


def test_run_pair_device_argument_overrides_the_setting(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,auto", "content,style,device")
    outcome = run_pair(pair, RunOptions(out=str(tmp_path / "out")), "cpu")
    folder = tmp_path / "out" / pair.pair_id
    record = read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes())
    assert record.settings.device == outcome.device == "cpu"
    assert finished(str(tmp_path / "out"), pair.pair_id, pair.fingerprint)  # the device is not in the fingerprint


def test_run_pair_keeps_snapshots(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,1,3", "content,style,snapshot_every,iterations")
    run_pair(pair, RunOptions(out=str(tmp_path / "out")))
    snapshots = tmp_path / "out" / pair.pair_id / "snapshots"
    assert sorted(path.name for path in snapshots.iterdir()) == ["00001.png", "00002.png", "00003.png"]
    for path in snapshots.iterdir():
        with Image.open(path) as image:
            assert image.size == (32, 26)


def snapshot_names(folder: Path) -> list[str]:
    return sorted(path.name for path in (folder / "snapshots").iterdir())


def test_snapshots_reach_the_folder_while_the_pair_renders(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,1,4", "content,style,snapshot_every,iterations")
    folder = tmp_path / "out" / pair.pair_id
    seen: dict[int, tuple[list[str], list[str]]] = {}

    def look(step: StepInfo) -> None:  # before the step's own snapshot is taken
        others = sorted(p.name for p in folder.iterdir() if p.name not in ("snapshots", LEASE))
        seen[step.iteration] = (snapshot_names(folder) if step.iteration > 1 else [], others)

    assert run_pair(pair, RunOptions(out=str(tmp_path / "out")), on_step=look).status == "rendered"
    assert seen[3] == (["00001.png", "00002.png"], [])  # no result, no record: the folder is unfinished
    assert seen[4][0] == ["00001.png", "00002.png", "00003.png"]
    assert snapshot_names(folder) == ["00001.png", "00002.png", "00003.png", "00004.png"]


def test_a_stopped_pair_keeps_the_snapshots_of_this_render(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,1,100000", "content,style,snapshot_every,iterations")
    out = tmp_path / "out"
    folder = out / pair.pair_id
    (folder / "snapshots").mkdir(parents=True)
    (folder / "snapshots" / "00009.png").write_bytes(b"an earlier attempt's")

    def stop_at_3(step: StepInfo) -> None:
        if step.iteration == 3:
            stopping.request_stop()

    outcome = run_pair(pair, RunOptions(out=str(out)), on_step=stop_at_3)
    assert outcome.status == "cancelled"
    assert sorted(p.name for p in folder.iterdir()) == ["snapshots"]  # no result, no record, no lease
    assert snapshot_names(folder) == ["00001.png", "00002.png", "00003.png"]
    with Image.open(folder / "snapshots" / "00003.png") as image:
        assert image.size == (32, 26)
    assert not finished(str(out), pair.pair_id, pair.fingerprint)


def test_a_pair_that_fails_mid_render_keeps_its_snapshots(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,2,10", "content,style,snapshot_every,iterations")
    out = tmp_path / "out"

    def fail_at_5(step: StepInfo) -> None:
        if step.iteration == 5:
            raise TimeoutError("timed out after 1 s (--timeout)")  # as the timeout check fails it

    outcome = run_pair(pair, RunOptions(out=str(out)), on_step=fail_at_5)
    assert outcome.status == "failed"
    folder = out / pair.pair_id
    assert sorted(p.name for p in folder.iterdir()) == [FAILED, "snapshots"]
    assert snapshot_names(folder) == ["00002.png", "00004.png"]


def test_a_snapshot_that_cannot_be_written_does_not_stop_the_render(
    tmp_path: Path, content_path: Path, style_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,1,3", "content,style,snapshot_every,iterations")

    def broken_write(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_pair_module, "write_file", broken_write)
    outcome = run_pair(pair, RunOptions(out=str(tmp_path / "out")))
    assert outcome.status == "rendered"
    assert snapshot_names(tmp_path / "out" / pair.pair_id) == ["00001.png", "00002.png", "00003.png"]  # with it


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

    outcome = run_pair(pair, RunOptions(out=out))

    assert outcome.status == "rendered", outcome.reason
    assert outcome.output == f"{out}/{pair.pair_id}/result.png"
    assert s3.keys("renders/run1") == {f"{pair.pair_id}/{name}" for name in PAIR_FILES}  # the lease is released
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

    assert run_pair(pair, RunOptions(out=str(out))).status == "rendered"

    assert pair.pair_id.startswith("photo-one__style-")
    inputs = {pair.content: content.read_bytes(), pair.styles[0]: style.read_bytes()}
    check_outputs(lambda name: (out / pair.pair_id / name).read_bytes(), pair, inputs, iterations=2)


# --- failures: the outcome says why, failed.json keeps it, nothing else is written ---------------


def assert_failed(outcome: dict[str, Any], out: Path, pair: Pair, reason: str) -> None:
    assert outcome.status == "failed"
    assert outcome.reason == reason
    assert "Traceback" in outcome.traceback
    assert sorted(p.name for p in (out / pair.pair_id).iterdir()) == [FAILED]
    record = read_failure((out / pair.pair_id / FAILED).read_bytes())
    assert (record.error, record.pair_id, record.row, record.settings) == (
        reason,
        pair.pair_id,
        pair.row,
        pair.settings,
    )
    assert "Traceback" in record.traceback


@pytest.mark.parametrize("role", ["content", "style"])
def test_a_missing_input_fails_the_pair(tmp_path: Path, content_path: Path, style_path: Path, role: str) -> None:
    cells = {"content": "content.png", "style": "style.png"} | {role: "missing.png"}
    pair = local_pair(tmp_path, f"{cells['content']},{cells['style']}")
    out = tmp_path / "renders"
    outcome = run_pair(pair, RunOptions(out=str(out)))
    assert_failed(outcome, out, pair, f"{role} image {tmp_path.resolve()}/missing.png: not found")


def test_missing_inputs_over_http_and_s3(tmp_path: Path, web: WebFolder, s3: Bucket, style_path: Path) -> None:
    pair = Pair("p", 2, f"{web.url}/nope.png", (f"{s3.uri}/nope.png",), Settings.from_values(FAST))
    out = tmp_path / "renders"
    outcome = run_pair(pair, RunOptions(out=str(out)), run_id="one")
    assert_failed(outcome, out, pair, f"content image {web.url}/nope.png: not found (HTTP 404)")
    (web.root / "nope.png").write_bytes(style_path.read_bytes())
    outcome = run_pair(pair, RunOptions(out=f"{s3.uri}/renders"), run_id="two")
    assert outcome.reason == f"style image {s3.uri}/nope.png: not found"
    assert s3.keys("renders") == {f"p/{FAILED}"}


def test_an_input_that_is_not_an_image(tmp_path: Path, content_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    pair = local_pair(tmp_path, "content.png,notes.png")
    out = tmp_path / "renders"
    outcome = run_pair(pair, RunOptions(out=str(out)))
    assert_failed(outcome, out, pair, f"style image {tmp_path.resolve()}/notes.png: not an image Pillow can read")


def test_an_output_root_that_is_a_file_fails_once(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    blocker = tmp_path / "renders"
    blocker.write_text("a file where the output root should be")
    pair = local_pair(tmp_path)
    steps: list[StepInfo] = []
    outcome = run_pair(pair, RunOptions(out=str(blocker)), on_step=steps.append)
    assert outcome.status == "failed"
    assert outcome.reason == f"output {blocker}/{pair.pair_id}: part of the path is a file, not a folder"
    assert steps == []  # refused before rendering, and not retried
    assert blocker.read_text() == "a file where the output root should be"


def test_a_transient_write_error_is_retried_without_rendering_again(
    tmp_path: Path, content_path: Path, style_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = local_pair(tmp_path)
    writes: list[str] = []

    def flaky_write(out: str, pair_id: str, files: dict[str, bytes]) -> str:
        writes.append(pair_id)
        if len(writes) == 1:
            raise StorageError("output", out, "connection lost", transient=True)
        return write_pair(out, pair_id, files)

    monkeypatch.setattr(run_pair_module, "write_pair", flaky_write)
    monkeypatch.setattr(stopping, "sleep", lambda seconds: None)  # no backoff wait in a test
    steps: list[StepInfo] = []
    outcome = run_pair(pair, RunOptions(out=str(tmp_path / "out")), on_step=steps.append)
    assert outcome.status == "rendered"
    assert len(writes) == 2
    assert [step.iteration for step in steps] == [1, 2]  # rendered once


def test_a_timeout_stops_the_render_at_an_iteration(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,100000", "content,style,iterations")
    out = tmp_path / "out"
    start = time.monotonic()
    outcome = run_pair(pair, RunOptions(out=str(out), timeout_s=1.5))
    assert time.monotonic() - start < 20
    assert_failed(outcome, out, pair, "timed out after 1.5 s (--timeout)")


def test_a_stop_request_leaves_the_folder_as_it_was(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path, "content.png,style.png,100000", "content,style,iterations")
    out = tmp_path / "out"

    def stop_at_3(step: StepInfo) -> None:
        if step.iteration == 3:
            stopping.request_stop()
        assert step.iteration < 50, "the render went on after the stop request"  # fails it, at once

    outcome = run_pair(pair, RunOptions(out=str(out)), on_step=stop_at_3)
    assert (outcome.status, outcome.reason) == ("cancelled", "stopped before it finished (Ctrl-C)")
    assert list(out.iterdir()) == []  # no result, no failure record, no lease, no empty folder
    assert run_pair(pair, RunOptions(out=str(out))).status == "cancelled"  # and no new pair starts


# --- leases: two runs on one output root ---------------------------------------------------------


def write_lease(folder: Path, host: str, pid: int, age_s: float = 0) -> None:
    folder.mkdir(parents=True)
    lease = {"owner": "other", "host": host, "pid": pid, "heartbeat": time.time() - age_s}
    (folder / LEASE).write_text(json.dumps(lease))


def test_a_pair_leased_by_a_live_run_is_skipped(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    pair = local_pair(tmp_path)
    folder = tmp_path / "out" / pair.pair_id
    write_lease(folder, "render-box-7", 4242)
    steps: list[StepInfo] = []
    outcome = run_pair(pair, RunOptions(out=str(tmp_path / "out")), on_step=steps.append)
    assert (outcome.status, outcome.reason) == (
        "skipped",
        "being rendered by another run (render-box-7 pid 4242)",
    )
    assert steps == []
    assert [p.name for p in folder.iterdir()] == [LEASE]
    assert json.loads((folder / LEASE).read_text())["owner"] == "other"


@pytest.mark.parametrize(
    ("host", "pid", "age_s"),
    [(socket.gethostname(), 2**22 + 17, 0), ("render-box-7", 4242, 3600)],
    ids=["dead-process-here", "no-heartbeat-for-an-hour"],
)
def test_a_stale_lease_is_taken_over(
    tmp_path: Path, content_path: Path, style_path: Path, host: str, pid: int, age_s: float
) -> None:
    pair = local_pair(tmp_path)
    write_lease(tmp_path / "out" / pair.pair_id, host, pid, age_s)
    assert run_pair(pair, RunOptions(out=str(tmp_path / "out"))).status == "rendered"
    assert sorted(p.name for p in (tmp_path / "out" / pair.pair_id).iterdir()) == PAIR_FILES


def test_a_pair_finished_meanwhile_by_another_run_is_skipped(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    pair = local_pair(tmp_path)
    out = tmp_path / "out"
    assert run_pair(pair, RunOptions(out=str(out))).status == "rendered"
    before = (out / pair.pair_id / DONE).read_bytes()
    outcome = run_pair(pair, RunOptions(out=str(out)))  # as a second run that selected it before it was finished
    assert (outcome.status, outcome.reason) == ("skipped", "finished by another run")
    assert (out / pair.pair_id / DONE).read_bytes() == before
    assert sorted(p.name for p in (out / pair.pair_id).iterdir()) == PAIR_FILES


def test_a_lease_on_s3_is_conditional(s3: Bucket, content_path: Path, style_path: Path, tmp_path: Path) -> None:
    pair = local_pair(tmp_path)
    live = {"owner": "other", "host": "render-box-7", "pid": 4242, "heartbeat": time.time()}
    s3.put(f"out/{pair.pair_id}/{LEASE}", json.dumps(live).encode())
    assert run_pair(pair, RunOptions(out=f"{s3.uri}/out")).status == "skipped"
    s3.put(f"out/{pair.pair_id}/{LEASE}", json.dumps(live | {"heartbeat": time.time() - 3600}).encode())
    assert run_pair(pair, RunOptions(out=f"{s3.uri}/out")).status == "rendered"
    assert s3.keys(f"out/{pair.pair_id}") == set(PAIR_FILES)


def test_the_process_here_is_alive(tmp_path: Path) -> None:
    """The dead-process check must not call the current process's own lease stale."""
    from tasks.storage.leases import Holder

    assert not Holder("x", socket.gethostname(), os.getpid(), time.time()).stale()
    assert Holder("x", socket.gethostname(), 2**22 + 17, time.time()).stale()


# --- batches: pairs of one batch key, in manifest order -------------------------------------------------------------


def test_batches_group_pairs_by_key_in_manifest_order(tmp_path: Path, content_path: Path, style_path: Path) -> None:
    rows = [("a", 32), ("b", 48), ("c", 32), ("d", 32), ("e", 48), ("f", 32)]
    (tmp_path / "m.csv").write_text(
        "id,content,style,image_size\n" + "".join(f"{i},content.png,style.png,{size}\n" for i, size in rows)
    )
    pairs = read_manifest(str(tmp_path / "m.csv"), FAST).pairs
    ids = [[pair.pair_id for pair in batch] for batch in batches(pairs, 2)]
    assert ids == [["a", "c"], ["b", "e"], ["d", "f"]]
    assert [[pair.pair_id for pair in batch] for batch in batches(pairs, 1)] == [[i] for i, _ in rows]


def test_run_batch_renders_each_pair_of_a_batch_as_run_pair_does(
    tmp_path: Path, content_path: Path, style_path: Path
) -> None:
    (tmp_path / "m.csv").write_text(
        "id,content,style,style_weight\na,content.png,style.png,1\nb,content.png,style.png,9\n"
    )
    pairs = read_manifest(str(tmp_path / "m.csv"), FAST).pairs
    out = tmp_path / "out"
    steps: list[tuple[int, int]] = []
    outcomes = run_batch(
        pairs, RunOptions(out=str(out)), "cpu", lambda index, step: steps.append((index, step.iteration))
    )
    assert [(o.pair_id, o.status) for o in outcomes] == [("a", "rendered"), ("b", "rendered")]
    assert sorted(steps) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for outcome in outcomes:
        assert sorted(p.name for p in (out / outcome.pair_id).iterdir()) == PAIR_FILES
    records = [read_record((out / i / RECORD).read_bytes(), (out / i / DONE).read_bytes()) for i in "ab"]
    assert records[0].final.total != records[1].final.total  # each with its own weights
    assert records[0].timings.optimise_s == records[1].timings.optimise_s  # one batch
    again = run_batch(pairs, RunOptions(out=str(out)), "cpu")
    assert [o.status for o in again] == ["skipped", "skipped"]
