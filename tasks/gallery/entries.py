"""The pairs a gallery shows, read from an output root's pair folders through ``tasks.storage.records``.

A finished pair's snapshots follow from its settings; the snapshots of a failed pair, or of a manifest's
pair that never finished (stopped), are listed from its folder: the last one is its partial picture.
A clip (its content a video or a folder of frames) is known by its frames' folder (``frames/<pair id>/``) or
its content's name; its folder holds no snapshots.
"""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nst_core import Settings
from nst_core.video import looks_like_clip
from tasks.storage.records import (
    DONE,
    FAILED,
    LOSSES,
    RECORD,
    SNAPSHOTS,
    FailureRecord,
    LossRow,
    RecordError,
    RenderRecord,
    Status,
    read_failure,
    read_losses,
    read_record,
    snapshot_iteration,
    snapshot_iterations,
)
from tasks.storage.root import FRAMES, RESERVED, OutputRoot

if TYPE_CHECKING:
    from tasks.manifest.read import Pair

__all__ = ["Entry", "read_entries"]

_FILES = (RECORD, DONE, FAILED, LOSSES)
SHORT = 90  # characters of a failure's reason in a grid cell


@dataclass
class Entry:
    """One pair as the gallery sees it."""

    pair_id: str
    status: Status  # rendered, failed or pending
    content: str
    styles: tuple[str, ...]
    settings: Settings | None = None  # None: a pending pair the gallery knows by id only
    record: RenderRecord | FailureRecord | None = None
    losses: list[LossRow] = field(default_factory=list)
    note: str = ""  # for a pending pair: the settings that would show its row's results
    snapshots: dict[int, int] = field(default_factory=dict)  # iteration -> file size (0: not listed), in order
    clip: bool = False  # a clip: its losses are one row per frame, its folder holds its videos
    masks: dict[str, str] = field(default_factory=dict)  # role (style mask 1, keep mask, ...) -> URI, as recorded

    @property
    def column(self) -> str:
        return "|".join(self.styles)

    @property
    def href(self) -> str:
        return f"pairs/{quote(self.pair_id, safe='')}.html"

    @property
    def rendered(self) -> RenderRecord | None:
        return self.record if isinstance(self.record, RenderRecord) else None

    @property
    def error(self) -> str:
        return self.record.error if isinstance(self.record, FailureRecord) else ""

    @property
    def short_error(self) -> str:
        """The reason's start, for a grid cell (the pair's page has it whole)."""
        return shorten(self.error)

    @property
    def partial(self) -> int | None:
        """The iteration of the last snapshot of a pair with no result (failed, or stopped), else None."""
        return None if self.rendered or not self.snapshots else max(self.snapshots)


def shorten(text: str, width: int = SHORT) -> str:
    """``text``'s first line, cut at a space (or mid-word if it must) with an ellipsis to ``width`` characters."""
    line = text.strip().split("\n", 1)[0]
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[width // 2 :] else cut) + "…"


def read_entries(out: str, pairs: list[Pair] | None = None) -> list[Entry]:
    """Every finished or failed pair under ``out``; with ``pairs`` (a manifest's): those pairs, in order.

    A manifest pair with no folder of its own is pending; if its row's inputs were rendered with
    other settings (the run had setting flags this call lacks), its note names the flags that match.
    """
    root = OutputRoot.open(out)
    found, folders = _found(root)
    clips = _names(root, FRAMES)
    for entry in found.values():
        entry.clip = entry.pair_id in clips or looks_like_clip(entry.content)
    if pairs is None:
        entries = sorted(found.values(), key=lambda e: (e.content, e.column, e.pair_id))
    else:
        ids = {p.pair_id for p in pairs}
        others = [e for e in found.values() if e.pair_id not in ids]
        entries = []
        for pair in pairs:
            entry = found.get(pair.pair_id)
            if entry is None:
                entry = Entry(
                    pair.pair_id,
                    Status.PENDING,
                    pair.content,
                    pair.styles,
                    pair.settings,
                    clip=pair.clip,
                    masks=pair.masks,
                )
                entry.note = _other_settings(pair, others)
            entries.append(entry)
    for entry in entries:
        if entry.rendered and not entry.clip:
            entry.snapshots = dict.fromkeys(snapshot_iterations(entry.rendered.settings), 0)
        elif entry.pair_id in folders:  # failed, or stopped: whatever snapshots it took
            entry.snapshots = _listed_snapshots(root, entry.pair_id)
    return entries


def _found(root: OutputRoot) -> tuple[dict[str, Entry], set[str]]:
    """The finished and failed pairs under ``root``, and the names of all its pair folders."""
    fs = root.fs
    folders = [p for p in fs.ls(root.path, detail=False) if _is_pair_folder(fs, p)] if fs.exists(root.path) else []
    blobs = fs.cat([f"{f}/{n}" for f in folders for n in _FILES], on_error="omit") if folders else {}
    entries = (_entry(posixpath.basename(f), {n: blobs.get(f"{f}/{n}") for n in _FILES}) for f in folders)
    return {entry.pair_id: entry for entry in entries if entry is not None}, {posixpath.basename(f) for f in folders}


def _names(root: OutputRoot, folder: str) -> set[str]:
    """The names in ``folder`` of ``root`` (none if it cannot be listed)."""
    try:
        return {posixpath.basename(p.rstrip("/")) for p in root.fs.ls(f"{root.path}/{folder}", detail=False)}
    except Exception:  # no such folder (FileNotFoundError), or a store that is away: known by their names only
        return set()


def _listed_snapshots(root: OutputRoot, pair_id: str) -> dict[int, int]:
    """A pair folder's snapshots: iteration -> size, in iteration order (none if it cannot be listed)."""
    try:
        files = root.fs.ls(root.pair(pair_id, SNAPSHOTS), detail=True)
    except Exception:  # no snapshots folder (FileNotFoundError), or a store that is away: no partial picture
        return {}
    found = {snapshot_iteration(f["name"]): int(f.get("size") or 0) for f in files if f.get("type") == "file"}
    return {it: found[it] for it in sorted(i for i in found if i is not None)}


def _is_pair_folder(fs: Any, path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return name not in RESERVED and not name.startswith(".") and fs.isdir(path)


def _entry(pair_id: str, blobs: dict[str, bytes | None]) -> Entry | None:
    """The pair in a folder, or None if it is unfinished (no completion record and no failure) or
    not a pair folder of ours. A damaged loss log only loses the chart."""
    record: RenderRecord | FailureRecord
    try:
        if blobs[RECORD] and blobs[DONE]:
            record = read_record(blobs[RECORD], blobs[DONE])
        elif blobs[FAILED]:
            record = read_failure(blobs[FAILED])
        else:
            return None
    except RecordError:
        return None
    status = Status.RENDERED if isinstance(record, RenderRecord) else Status.FAILED
    styles = tuple(s.uri for s in record.styles)
    masks = {role: mask.uri for role, mask in record.masks.items()}
    entry = Entry(pair_id, status, record.content.uri, styles, record.settings, record, masks=masks)
    if status == Status.RENDERED and blobs[LOSSES]:
        with contextlib.suppress(RecordError):
            entry.losses = read_losses(blobs[LOSSES])
    return entry


def _other_settings(pair: Pair, others: list[Entry]) -> str:
    """ "pass --flag value ..." for the one rendering of ``pair``'s row and inputs among ``others``, else ""."""
    same = [
        e
        for e in others
        if (e.content, e.styles) == (pair.content, pair.styles) and e.rendered and e.rendered.row == pair.row
    ]
    if len(same) != 1 or same[0].settings is None:
        return ""
    flags = same[0].settings.flags(pair.settings)
    if not flags:  # made by another version whose ids hashed other settings: no flag would match
        return ""
    return f"{same[0].pair_id} rendered this row with other settings: pass {flags} to show it"
