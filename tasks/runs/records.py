"""What a run reports, as typed records beside the pair folder's own (``tasks.storage.records``).

- ``Outcome``: how a render task left one pair (rendered, skipped, failed, cancelled, preempted), with why;
- ``RunSummary``: the counts and a ``SummaryRow`` per pair and per bad manifest row, and the gallery;
- ``GalleryResult``: where the gallery and its contact sheets are, what they show, notes for the user.

They travel as Prefect results and state data, and print as JSON (``model_dump_json``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tasks.storage.records import RUN_STATUSES, LossRow, Status

__all__ = ["GalleryResult", "Outcome", "RunSummary", "SummaryRow"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Outcome(_Record):
    """How a render task left a pair; ``reason`` says why for all but a rendered one."""

    pair_id: str
    row: int  # line in the manifest
    status: Status
    reason: str = ""
    output: str = ""  # the result's URI
    fingerprint: str = ""  # of a rendered pair: its inputs and settings (``Pair.fingerprint``)
    final: LossRow | None = None  # the last iteration's losses
    wall_s: float | None = None  # the pair from start to end: inputs, render, writing
    device: str = ""
    worker: str = ""  # host:pid
    frames: str = ""  # a clip's: frames done / frames, e.g. "12/48"
    resumed_at: int | None = None  # the iteration its render resumed at from a checkpoint (a clip's: of its frame)
    traceback: str = Field("", exclude=True)  # in the failure record and the task's log: state data stays small


class GalleryResult(_Record):
    """A gallery build: its index and contact sheets (URIs), how many pairs, contents and styles, notes; or the
    ``error`` that kept it from being built."""

    index: str = ""
    contact_sheets: list[str] = Field(default_factory=list)
    pairs: int = 0
    contents: int = 0
    styles: int = 0
    notes: list[str] = Field(default_factory=list)
    error: str = ""


class SummaryRow(_Record):
    """A pair of the run, or a bad manifest row (no ``id``)."""

    id: str
    row: int
    label: str = ""  # the pair for people (``Pair.label``)
    content: str = ""
    style: str = ""  # the styles, |-separated
    status: Status
    reason: str = ""
    final: LossRow | None = None
    time_s: float | None = None
    output: str = ""
    frames: str = ""  # a clip's: frames done / frames
    resumed_at: int | None = None  # the iteration it resumed at from a checkpoint


class RunSummary(_Record):
    """A run of a manifest: every pair and bad row, the counts, the time, the gallery."""

    manifest: str
    out: str
    rendered: int
    skipped: int
    failed: int
    cancelled: int
    preempted: int = 0
    total_s: float
    pairs: list[SummaryRow]
    gallery: GalleryResult = GalleryResult()

    @classmethod
    def of(cls, manifest: str, out: str, rows: list[SummaryRow], total_s: float) -> RunSummary:
        """The summary of ``rows`` (in manifest order), counted."""
        counts = {status.value: sum(row.status == status for row in rows) for status in RUN_STATUSES}
        return cls(manifest=manifest, out=out, **counts, total_s=total_s, pairs=rows)

    def totals(self) -> str:
        """``rendered 3, skipped 0, failed 1, cancelled 0 in 12.3 s`` (``, preempted 2`` after cancelled, where
        there are such pairs)"""
        shown = [status for status in RUN_STATUSES if status != Status.PREEMPTED or self.preempted]
        counts = ", ".join(f"{status} {getattr(self, status)}" for status in shown)
        return f"{counts} in {self.total_s:.1f} s"
