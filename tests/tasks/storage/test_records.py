"""The pair folder's records: round trips, folders in the format before the record models, damaged files."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from nst_core import Settings
from tasks.runs.pairs import failure_record
from tasks.storage.records import (
    DONE,
    LOSSES,
    RECORD,
    RESULT,
    LossRow,
    RecordError,
    pair_files,
    read_completion,
    read_failure,
    read_losses,
    read_record,
)
from tests.tasks.gallery.helpers import FakePair

# A folder as stylebatch wrote it before tasks.storage.records (gordicaleksa's weights, single scale).
OLD_SETTINGS = {
    "image_size": 32, "iterations": 2, "backbone": "vgg19", "weights": "random:0", "pooling": "max",
    "content_layers": ["relu4_2"], "content_layer_weights": [1.0],
    "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], "style_layer_weights": [1.0] * 5,
    "content_weight": 100000.0, "style_weight": 30000.0, "tv_weight": 1.0, "tv_norm": "l1", "style_weights": None,
    "style_scale": 1.0, "init": "content", "optimizer": "lbfgs", "lr": 1.0, "lr_schedule": {}, "preserve_color": "none",
    "seed": 0, "device": "cpu", "precision": "fp32", "channels_last": False, "snapshot_every": 0,
}  # fmt: skip
OLD_FINAL = {"iteration": 2, "content": 1.5, "style": 0.25, "tv": 900.0, "total": 8e5, "lr": 1.0, "elapsed_s": 0.4}
OLD_META = {
    "pair_id": "c__s-12345678", "row": 2, "tags": [], "content": {"uri": "/c.png", "sha256": "a" * 64},
    "styles": [{"uri": "/s.png", "sha256": "b" * 64}], "settings": OLD_SETTINGS, "device": "cpu", "precision": "fp32",
    "timings": {"setup_s": 0.1, "optimise_s": 0.3, "ms_per_iteration": 150.0, "evaluations": 3, "wall_s": 0.5},
    "versions": {"stylebatch": "0.1.0", "torch": "2.15.0", "python": "3.11.7"},
}  # fmt: skip
OLD_DONE = {
    "pair_id": "c__s-12345678", "fingerprint": "f" * 64, "final": OLD_FINAL, "wall_s": 0.5, "device": "cpu",
    "worker": "host:1", "started_at": "2026-11-20T10:00:00+00:00", "finished_at": "2026-11-20T10:00:01+00:00",
}  # fmt: skip


def test_a_folder_written_before_the_record_models_still_reads() -> None:
    record = read_record(json.dumps(OLD_META).encode(), json.dumps(OLD_DONE).encode())
    assert (record.pair_id, record.fingerprint, record.row) == ("c__s-12345678", "f" * 64, 2)
    assert record.final == LossRow(**OLD_FINAL, level=1)
    # what made it: the reference's loss terms, at one scale, with its weights
    assert record.settings.normalization == "reference"
    assert record.settings.levels() == [(32, 2)]
    assert record.settings.style_weight == 30000.0
    assert read_losses(b"iteration,content,style,tv,total,lr,elapsed_s\n1,0,1,2,3,1,0.1\n")[0].level == 1


def test_a_written_folder_reads_back() -> None:
    fake = FakePair("p", "/c.png", ("/s.png",))
    record = fake.record()
    files = pair_files(record, Image.new("RGB", (8, 8)), fake.losses(), {3: Image.new("RGB", (4, 4))})
    assert list(files)[-1] == DONE
    assert set(files) == {RESULT, LOSSES, RECORD, "snapshots/00003.png", DONE}
    assert read_record(files[RECORD], files[DONE]) == record
    assert read_completion(files[DONE]).fingerprint == fake.pair.fingerprint
    assert read_losses(files[LOSSES]) == fake.losses()
    failure = failure_record(fake.pair, "out of memory", "Traceback ...")
    assert read_failure(failure.model_dump_json().encode()) == failure


def test_the_weighted_terms_are_those_of_the_total() -> None:
    row = LossRow(iteration=1, content=2.0, style=0.5, tv=0.1, total=3.0, lr=1.0, elapsed_s=0.0)
    weighted = row.weighted(Settings(content_weight=1, style_weight=4, tv_weight=10))
    assert weighted == {"content": 2.0, "style": 2.0, "tv": 1.0, "total": 3.0}


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[1, 2]", b"{}", b'{"pair_id": "p", "fingerprint": 3}', b'{"pair_id": "p", "finge']
)
def test_damaged_records_are_record_errors(data: bytes) -> None:
    with pytest.raises(RecordError):
        read_completion(data)
    with pytest.raises(RecordError):
        read_failure(data)


@pytest.mark.parametrize("data", [b"", b"iteration,content\n1,not-a-number\n", b"a,b\n1,2\n"])
def test_damaged_loss_logs_are_record_errors(data: bytes) -> None:
    with pytest.raises(RecordError):
        read_losses(data)


def test_the_record_names_its_file_in_errors() -> None:
    with pytest.raises(RecordError, match="Completion"):
        read_completion(b"{}")
