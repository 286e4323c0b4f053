"""Preempted pairs resume from their checkpoints: a pair (local and S3), a batch, a clip's frame end exactly as the
uninterrupted render; a damaged newest checkpoint falls back to the one before; another render's is refused."""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from PIL import Image
from torchvision import models

from nst_core import StepInfo
from nst_core.checkpoints import TrackState
from tasks.manifest.read import Pair, read_manifest
from tasks.runs import resume, stopping
from tasks.runs.chains import run_chains
from tasks.runs.options import RunOptions
from tasks.runs.pairs import run_batch
from tasks.storage.checkpoints import CHECKPOINT, POINTER
from tasks.storage.records import LOSSES, RESULT, SNAPSHOTS, read_losses
from tasks.storage.root import OutputRoot, frame_folder
from tests.conftest import make_image
from tests.nst_core.video.samples import smooth_frames, write_mp4

if TYPE_CHECKING:
    from tests.support import Bucket

# Every iteration is due for a checkpoint; L-BFGS keeps a history, and the snapshots must go on without gaps.
SETTINGS = {
    "weights": "random:0",
    "image_size": 32,
    "iterations": 8,
    "device": "cpu",
    "snapshot_every": 2,
    "checkpoint_every_s": 1e-6,
}


@pytest.fixture(autouse=True)
def no_stop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stop request; and a checkpoint at every iteration, however long the last one took to write."""
    monkeypatch.setattr(resume, "MAX_OVERHEAD", math.inf)
    stopping.reset()
    yield
    stopping.reset()


def manifest_pairs(folder: Path, rows: int = 1, **settings: Any) -> list[Pair]:
    make_image(1, (40, 32)).save(folder / "content.png")
    for n in range(rows):
        make_image(2 + n, (36, 36)).save(folder / f"style{n}.png")
    (folder / "m.csv").write_text("content,style\n" + "".join(f"content.png,style{n}.png\n" for n in range(rows)))
    manifest = read_manifest(str(folder / "m.csv"), SETTINGS | settings)
    assert manifest.errors == []
    return manifest.pairs


def preempt_at(iteration: int) -> Callable[[int, StepInfo], None]:
    """An ``on_step`` that delivers the preemption notice at ``iteration`` (as SIGTERM's handler does)."""

    def on_step(_: int, step: StepInfo) -> None:
        if step.iteration == iteration:
            stopping.request_stop(preempt=True)

    return on_step


def folder_files(root: OutputRoot, pair_id: str) -> dict[str, bytes]:
    """A pair's files by name relative to its folder (losses without their times)."""
    base = root.pair(pair_id)
    files = {p.removeprefix(base + "/"): root.fs.cat_file(p) for p in root.fs.find(base)}
    files[LOSSES] = repr([row.model_dump(exclude={"elapsed_s"}) for row in read_losses(files[LOSSES])]).encode()
    return {name: data for name, data in files.items() if name.startswith((RESULT, LOSSES, SNAPSHOTS))}


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


def assert_same_render(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        same = pixels(a[name]) == pixels(b[name]) if name.endswith(".png") else a[name] == b[name]
        assert same, name


@pytest.fixture(params=["local", "s3"])
def out(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    bucket: Bucket = request.getfixturevalue("s3")
    return f"{bucket.uri}/out"


def test_a_preempted_pair_resumes_and_ends_as_the_uninterrupted_render(tmp_path: Path, out: str) -> None:
    [pair] = manifest_pairs(tmp_path)
    root = OutputRoot.open(out)
    [outcome] = run_batch([pair], RunOptions(out=out), on_step=preempt_at(5), run_id="one")
    assert outcome.status == "preempted", outcome.reason
    assert "SIGTERM" in outcome.reason
    assert root.fs.exists(root.pair(pair.pair_id, POINTER))
    assert not root.fs.exists(root.pair(pair.pair_id, RESULT))

    stopping.reset()
    iterations: list[int] = []
    [outcome] = run_batch(
        [pair], RunOptions(out=out), on_step=lambda _, s: iterations.append(s.iteration), run_id="two"
    )
    assert outcome.status == "rendered", outcome.reason
    assert outcome.resumed_at == 5
    assert iterations == [6, 7, 8]  # the rest only
    assert not root.fs.exists(root.pair(pair.pair_id, CHECKPOINT))  # removed with the completed folder

    [whole] = run_batch([pair], RunOptions(out=f"{out}-whole"), run_id="three")
    assert whole.resumed_at is None
    resumed, uninterrupted = (
        folder_files(root, pair.pair_id),
        folder_files(OutputRoot.open(f"{out}-whole"), pair.pair_id),
    )
    assert f"{SNAPSHOTS}/00004.png" in resumed and f"{SNAPSHOTS}/00008.png" in resumed
    assert_same_render(resumed, uninterrupted)


def test_a_batch_of_two_and_a_damaged_newest_checkpoint(tmp_path: Path) -> None:
    """A crash while the newest checkpoints were written (cut short): the batch resumes from the ones before,
    and still ends as the uninterrupted one (a batch resumed together, as it ran, gives the same floats)."""
    pairs = manifest_pairs(tmp_path, rows=2)
    out = str(tmp_path / "out")
    root = OutputRoot.open(out)
    outcomes = run_batch(pairs, RunOptions(out=out), on_step=preempt_at(6), run_id="one")
    assert [o.status for o in outcomes] == ["preempted", "preempted"]
    for pair in pairs:
        newest = Path(root.pair(pair.pair_id, f"{CHECKPOINT}/000006.pt"))
        newest.write_bytes(newest.read_bytes()[:1000])

    stopping.reset()
    outcomes = run_batch(pairs, RunOptions(out=out), run_id="two")
    assert [(o.status, o.resumed_at) for o in outcomes] == [("rendered", 5), ("rendered", 5)]
    whole = run_batch(pairs, RunOptions(out=str(tmp_path / "whole")), run_id="three")
    assert [o.status for o in whole] == ["rendered", "rendered"]
    for pair in pairs:
        assert_same_render(
            folder_files(root, pair.pair_id), folder_files(OutputRoot.open(str(tmp_path / "whole")), pair.pair_id)
        )


def squeezenet_weights(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    torch.save(models.squeezenet1_1().state_dict(), path)


def test_another_render_s_checkpoint_is_refused_with_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Changed weights (the same file, new bytes), or a changed setting under a fixed id: from iteration 0."""
    weights = tmp_path / "weights.pth"
    squeezenet_weights(weights, seed=0)
    [pair] = manifest_pairs(tmp_path, weights=str(weights), backbone="squeezenet1_1")
    out = str(tmp_path / "out")
    [outcome] = run_batch([pair], RunOptions(out=out), on_step=preempt_at(3), run_id="one")
    assert outcome.status == "preempted"

    squeezenet_weights(weights, seed=1)
    for n, changed in enumerate([pair, replace(pair, settings=pair.settings.model_copy(update={"style_weight": 5.0}))]):
        stopping.reset()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            [outcome] = run_batch([changed], RunOptions(out=out), on_step=preempt_at(2), run_id=f"again{n}")
        assert outcome.status == "preempted" and outcome.resumed_at is None
        [line] = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
        assert f"row 2 {pair.label}: its checkpoint is of another render (" in line
        assert ("fingerprint" if n else "weights") in line and line.endswith("starting from iteration 0")
    stopping.reset()
    [outcome] = run_batch([pair], RunOptions(out=out), run_id="last")
    assert (outcome.status, outcome.resumed_at) == ("rendered", None)  # the new weights' checkpoint was changed's


def test_a_clip_preempted_mid_frame_resumes_that_frame(tmp_path: Path) -> None:
    """Frames done stay done; the frame in progress resumes at its iteration, and every frame ends as uninterrupted."""
    write_mp4(str(tmp_path / "clip.mp4"), smooth_frames(3, (32, 24)), fps=12)
    make_image(2, (36, 36)).save(tmp_path / "style.png")
    (tmp_path / "m.csv").write_text("content,style\nclip.mp4,style.png\n")
    settings = SETTINGS | {"iterations": 3, "frame_iterations": 3, "snapshot_every": 0}
    [pair] = read_manifest(str(tmp_path / "m.csv"), settings).pairs
    out = str(tmp_path / "out")
    [outcome] = run_chains([pair], RunOptions(out=out), on_step=preempt_at(3 + 2), run_id="one")
    assert outcome.status == "preempted" and outcome.reason.startswith("frame 1: ")

    stopping.reset()
    [outcome] = run_chains([pair], RunOptions(out=out), run_id="two")
    assert (outcome.status, outcome.resumed_at) == ("rendered", 3 + 2)
    [whole] = run_chains([pair], RunOptions(out=str(tmp_path / "whole")), run_id="three")
    assert whole.resumed_at is None
    for t in range(3):
        frames = [
            OutputRoot.open(o).pair(frame_folder(pair.pair_id, t), RESULT) for o in (out, str(tmp_path / "whole"))
        ]
        assert pixels(Path(frames[0]).read_bytes()) == pixels(Path(frames[1]).read_bytes()), t


def test_checkpoints_never_take_more_than_their_share_of_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However short the interval, the next checkpoint waits 1 / MAX_OVERHEAD times as long as the last one's write."""
    monkeypatch.setattr(resume, "MAX_OVERHEAD", 0.02)
    [pair] = manifest_pairs(tmp_path)
    root = OutputRoot.open(str(tmp_path / "out"))
    saver = resume.Saver.of(root, [pair], [{"torch": "x"}])
    assert saver is not None and saver.due()  # the interval, 1e-6 s, has passed
    state = TrackState(1, 3, torch.zeros(1, 3, 256, 256), {"state": {}, "param_groups": []}, 0.5, None, 0, 3, ())
    start = time.monotonic()
    saver.save({0: state})
    spent = time.monotonic() - start
    assert root.fs.exists(root.pair(pair.pair_id, POINTER))
    assert not saver.due()
    assert spent / 0.02 >= saver.wait_s > pair.settings.checkpoint_every_s
