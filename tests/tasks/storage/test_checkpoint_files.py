"""A pair's checkpoint files, on a local disk and on S3 (moto): the newest whole state of the same render comes
back; a damaged newest falls back to the one before; another render's is refused with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from nst_core.checkpoints import TrackState
from nst_core.results import StepInfo
from tasks.storage.checkpoints import CHECKPOINT, POINTER, read_checkpoint, write_checkpoint
from tasks.storage.root import OutputRoot, write_file

if TYPE_CHECKING:
    from tests.support import Bucket

IDENTITY = {"fingerprint": "abc", "weights": "random:0", "torch": torch.__version__, "device": "cpu"}


def state(iteration: int) -> TrackState:
    step = StepInfo(iteration, 0.1, 0.2, 0.3, 0.6, 1.0, 0.5)
    image = torch.full((1, 3, 4, 5), float(iteration))
    optimizer = {"state": {0: {"n_iter": iteration, "old_dirs": [torch.ones(3)]}}, "param_groups": [{"lr": 1.0}]}
    return TrackState(1, iteration, image, optimizer, 0.5, None, 0, iteration + 2, (step,))


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> OutputRoot:
    if request.param == "local":
        return OutputRoot.open(str(tmp_path / "out"))
    bucket: Bucket = request.getfixturevalue("s3")
    return OutputRoot.open(f"{bucket.uri}/out")


def files(root: OutputRoot) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in root.fs.find(root.pair("p", CHECKPOINT)))


def test_the_newest_state_comes_back_and_two_are_kept(root: OutputRoot) -> None:
    for iteration in (3, 6, 9):
        write_checkpoint(root, "p", state(iteration), IDENTITY)
    got, why = read_checkpoint(root, "p", IDENTITY)
    assert why == "" and got is not None
    assert got.iteration == 9 and torch.equal(got.image, state(9).image) and got.log == state(9).log
    assert torch.equal(got.optimizer["state"][0]["old_dirs"][0], torch.ones(3))
    assert files(root) == ["000006.pt", "000009.pt", "latest.json"]


def test_a_damaged_newest_state_falls_back_to_the_one_before(root: OutputRoot) -> None:
    write_checkpoint(root, "p", state(3), IDENTITY)
    write_checkpoint(root, "p", state(6), IDENTITY)
    path = root.pair("p", f"{CHECKPOINT}/000006.pt")
    root.fs.pipe_file(path, root.fs.cat_file(path)[:100])  # cut short, as a crash mid-write on a plain store
    got, why = read_checkpoint(root, "p", IDENTITY)
    assert why == "" and got is not None and got.iteration == 3


def test_another_renders_checkpoint_is_refused_with_its_reason(root: OutputRoot) -> None:
    write_checkpoint(root, "p", state(3), IDENTITY)
    got, why = read_checkpoint(root, "p", IDENTITY | {"weights": "random:1"})
    assert got is None
    assert why == "its checkpoint is of another render (weights 'random:0' -> 'random:1'): starting from iteration 0"
    assert read_checkpoint(root, "q", IDENTITY) == (None, "")


def test_a_pointer_that_is_not_one_is_no_checkpoint(root: OutputRoot) -> None:
    write_file(root.fs, root.pair("p", POINTER), b"{not json")
    assert read_checkpoint(root, "p", IDENTITY) == (None, "")
