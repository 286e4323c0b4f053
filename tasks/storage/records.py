"""What a pair leaves in its folder, as typed records; the one module that names the pair's files.

``<out>/<pair_id>/`` holds:

- ``result.png``: the picture;
- ``losses.csv``: one ``LossRow`` per iteration;
- ``settings.json``: the ``RenderRecord``: inputs with checksums, the full settings, device,
  precision, timings, final loss terms and the fingerprint;
- ``snapshots/NNNNN.png``: with ``snapshot_every``, the image at iteration NNNNN, written as it is taken
  (so a pair that failed or was stopped keeps its partial picture; they never make a folder finished);
- ``done.json``: the ``Completion``, written last: a folder without it is unfinished;
- ``failed.json``: a ``FailureRecord``, why the last attempt failed (a later success replaces it);
- ``lease.json``: while a run renders the pair (``tasks.storage.leases``).

Folders written before the record models (no ``normalization`` or ``start_size`` in their settings)
still read: their settings are what made them (``reference`` losses, single scale).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nst_core import Settings
from nst_core.images import encode_image

if TYPE_CHECKING:
    from nst_core import StepInfo

__all__ = [
    "CHECKPOINT",
    "CLIP_VIDEOS",
    "DONE",
    "FAILED",
    "LEASE",
    "LOSSES",
    "PREVIEW",
    "RECORD",
    "RESULT",
    "RUN_STATUSES",
    "SNAPSHOTS",
    "SOURCE_PREVIEW",
    "VIDEO",
    "Completion",
    "FailureRecord",
    "InputFile",
    "LossRow",
    "RecordError",
    "RenderRecord",
    "RenderTimings",
    "Status",
    "clip_files",
    "completion_file",
    "failure_file",
    "folder_table",
    "loss_log",
    "pair_files",
    "read_completion",
    "read_failure",
    "read_losses",
    "read_record",
    "snapshot_file",
    "snapshot_iteration",
    "snapshot_iterations",
    "snapshot_name",
]

RESULT = "result.png"
LOSSES = "losses.csv"
RECORD = "settings.json"
DONE = "done.json"
FAILED = "failed.json"
LEASE = "lease.json"
SNAPSHOTS = "snapshots"
CHECKPOINT = "checkpoint"  # a render's saved states (``tasks.storage.checkpoints``)
VIDEO, PREVIEW, SOURCE_PREVIEW = "result.mp4", "preview.webm", "source.webm"  # a clip's
CLIP_VIDEOS = (VIDEO, PREVIEW, SOURCE_PREVIEW)
M = TypeVar("M", bound=BaseModel)


class Status(StrEnum):
    """Where a pair stands: what its folder says (rendered, failed; pending, with neither record) and what a
    run did with it (skipped: finished already, or held by another run; cancelled: stopped before it finished;
    preempted: stopped by a preemption notice, its checkpoint saved for the rerun)."""

    RENDERED = "rendered"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    PENDING = "pending"


# A run's, in its summary's order; preempted is counted where there are such pairs.
RUN_STATUSES = (Status.RENDERED, Status.SKIPPED, Status.FAILED, Status.CANCELLED, Status.PREEMPTED)


class RecordError(ValueError):
    """A pair file that exists but does not hold a record (damaged, foreign, or cut short)."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # files from later versions may hold more


class InputFile(_Record):
    uri: str
    sha256: str = ""  # of the bytes rendered from; empty in a failure record


class LossRow(_Record):
    """One iteration of the loss log: the fields of ``nst_core.StepInfo``."""

    iteration: int
    content: float  # unweighted terms
    style: float
    tv: float
    total: float  # the weighted sum the optimiser minimised
    lr: float
    elapsed_s: float
    level: int = 1  # multi-scale level, 1 = the smallest (older logs have no levels)
    temporal: float = 0.0  # a clip's frame after the first: the temporal term (logs of stills have none)

    @classmethod
    def of(cls, step: StepInfo) -> LossRow:
        return cls(**vars(step))

    def weighted(self, settings: Settings) -> dict[str, float]:
        """The terms as they enter the total (``Settings.weighted``; the temporal term where there is one), and
        the total."""
        content, style, tv = settings.weighted(self.content, self.style, self.tv)
        temporal = {"temporal": settings.temporal_weight * self.temporal} if self.temporal else {}
        return {"content": content, "style": style, "tv": tv, **temporal, "total": self.total}


class RenderTimings(_Record):
    setup_s: float
    optimise_s: float
    ms_per_iteration: float
    evaluations: int
    wall_s: float  # the whole pair: inputs, render and writing


class Completion(_Record):
    """``done.json``: the pair finished for these inputs and settings (``fingerprint``)."""

    pair_id: str
    fingerprint: str
    final: LossRow
    wall_s: float
    device: str
    worker: str  # host:pid of the process that rendered it
    started_at: datetime
    finished_at: datetime


class RenderRecord(Completion):
    """``settings.json``: everything needed to know how a result was made."""

    row: int
    tags: list[str] = Field(default_factory=list)
    content: InputFile
    styles: list[InputFile]
    masks: dict[str, InputFile] = Field(default_factory=dict)  # by role: style mask 1, style image mask 1, keep mask
    settings: Settings
    precision: str
    timings: RenderTimings
    versions: dict[str, str] = Field(default_factory=dict)


class FailureRecord(_Record):
    """``failed.json``: enough to place the pair in the gallery and say why it failed."""

    pair_id: str
    row: int
    content: InputFile
    styles: list[InputFile]
    masks: dict[str, InputFile] = Field(default_factory=dict)  # as ``RenderRecord``'s
    tags: list[str] = Field(default_factory=list)
    settings: Settings
    error: str
    traceback: str = ""
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def pair_files(
    record: RenderRecord, image: Image.Image, losses: list[LossRow], snapshots: dict[int, Image.Image]
) -> dict[str, bytes]:
    """A finished pair's files, in writing order: ``done.json`` last."""
    files = {
        RESULT: encode_image(image, RESULT),
        LOSSES: loss_log(losses),
        RECORD: record.model_dump_json(indent=2).encode(),
    }
    files |= {snapshot_name(it): snapshot_file(snapshot) for it, snapshot in snapshots.items()}
    return files | {DONE: completion_file(record)}


def clip_files(
    record: RenderRecord, middle: Image.Image, frames: list[LossRow], videos: dict[str, bytes]
) -> dict[str, bytes]:
    """A finished clip's files, in writing order: ``done.json`` last. ``middle``: its middle frame (the still that
    stands for it); ``frames``: each frame's last loss row, its ``iteration`` the frame's number; ``videos``:
    ``CLIP_VIDEOS``."""
    files = {
        RESULT: encode_image(middle, RESULT),
        LOSSES: loss_log(frames),
        RECORD: record.model_dump_json(indent=2).encode(),
    }
    return files | {name: videos[name] for name in CLIP_VIDEOS} | {DONE: completion_file(record)}


def loss_log(rows: list[LossRow]) -> bytes:
    """``losses.csv``; its temporal column only where there is a temporal term."""
    import pandas as pd  # here: records are read where pandas is not needed (the CLI's start)

    exclude = None if any(row.temporal for row in rows) else {"temporal"}
    return pd.DataFrame([row.model_dump(exclude=exclude) for row in rows]).to_csv(index=False).encode()


def completion_file(record: RenderRecord) -> bytes:
    completion = Completion.model_validate(record.model_dump(include=set(Completion.model_fields)))
    return completion.model_dump_json(indent=2).encode()


def failure_file(record: FailureRecord) -> bytes:
    return record.model_dump_json(indent=2).encode()


def snapshot_name(iteration: int) -> str:
    return f"{SNAPSHOTS}/{iteration:05d}.png"


def snapshot_file(image: Image.Image) -> bytes:
    return encode_image(image, RESULT)


def snapshot_iteration(name: str) -> int | None:
    """The iteration of a snapshot's file name (``00040.png``, or a path ending so), else None."""
    stem, dot, ext = name.rsplit("/", 1)[-1].partition(".")
    return int(stem) if dot and ext == "png" and stem.isdigit() else None


def snapshot_iterations(settings: Settings) -> list[int]:
    """The iterations a finished render kept snapshots of (iterations count across levels)."""
    every = settings.snapshot_every
    return list(range(every, settings.total_iterations + 1, every)) if every else []


def read_completion(data: bytes) -> Completion:
    """Raises ``RecordError``."""
    return _parse(Completion, _json(data))


def read_record(record: bytes, done: bytes) -> RenderRecord:
    """A finished pair's record from its ``settings.json`` and ``done.json``. Raises ``RecordError``."""
    values = _json(done) | _json(record)  # older folders kept the final losses and times in done.json only
    values["settings"] = _upgrade(values.get("settings"))
    return _parse(RenderRecord, values)


def read_failure(data: bytes) -> FailureRecord:
    """Raises ``RecordError``."""
    values = _json(data)
    values["settings"] = _upgrade(values.get("settings"))
    return _parse(FailureRecord, values)


def read_losses(data: bytes) -> list[LossRow]:
    """The loss log. Raises ``RecordError``."""
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(data))
        return [LossRow.model_validate(row) for row in frame.to_dict("records")]
    except (ValueError, ValidationError, pd.errors.ParserError) as exc:
        raise RecordError(f"{LOSSES}: {exc}") from exc


def folder_table() -> str:
    """The pair folder as a Markdown table (the README holds the same one; a test keeps them equal)."""

    def fields(model: type[BaseModel]) -> str:
        return ", ".join(f"`{name}`" for name in model.model_fields)

    rows = [
        (RESULT, "the picture (PNG, RGB); a clip's middle frame"),
        (LOSSES, f"one row per iteration (a clip's: per frame, its last) (`LossRow`): {fields(LossRow)}"),
        (RECORD, f"how it was made (`RenderRecord`): {fields(RenderRecord)}"),
        (
            f"{SNAPSHOTS}/NNNNN.png",
            "with `snapshot_every`, the image at iteration NNNNN (at its level's size), written as it is taken",
        ),
        (
            f"{CHECKPOINT}/NNNNNN.pt, {CHECKPOINT}/latest.json",
            "while it renders: its newest two saved states (at iteration NNNNNN) and the pointer to them, with their "
            "checksums (see Checkpoints); gone once it completes",
        ),
        (VIDEO, "a clip's: the styled clip (H.264, the source's frame rate and sound)"),
        (PREVIEW, "a clip's: a small looping preview of it (VP9 webm)"),
        (SOURCE_PREVIEW, "a clip's: the same of the content clip"),
        (DONE, f"written last; without it the folder is unfinished (`Completion`): {fields(Completion)}"),
        (FAILED, f"why the last attempt failed; a success removes it (`FailureRecord`): {fields(FailureRecord)}"),
    ]
    return "\n".join(["| file | what it holds |", "|---|---|", *(f"| `{name}` | {text} |" for name, text in rows)])


def _upgrade(settings: Any) -> Any:
    """Settings of a folder written before normalisation and multi-scale existed mean what made them."""
    if isinstance(settings, dict) and "normalization" not in settings:
        return {"normalization": "reference", "start_size": 0} | settings
    return settings


def _json(data: bytes) -> dict[str, Any]:
    try:
        values = json.loads(data)
    except ValueError as exc:
        raise RecordError(f"not JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise RecordError(f"a JSON {type(values).__name__}, not a record")
    return values


def _parse(model: type[M], values: dict[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise RecordError(f"not a {model.__name__} ({where}: {first['msg']})") from exc
