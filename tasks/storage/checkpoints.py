"""A pair's checkpoints in its folder, to resume its render where it stopped (``nst_core.checkpoints``).

``<out>/<pair_id>/checkpoint/`` holds the states (``NNNNNN.pt``: the iteration, ``torch.save`` of
``TrackState.dump()``) and ``latest.json``, the pointer: the render's identity and the newest two states with
their checksums. A state is written whole first, then the pointer (each write atomic): a crash between the
two leaves the pointer on the states before, and a state whose bytes do not match its checksum is passed
over for the one before it. Older states are deleted once the pointer has moved on. The pair's folder is
replaced when it completes, checkpoints and all.
"""

from __future__ import annotations

import hashlib
import io

import torch
from pydantic import ValidationError

from nst_core.checkpoints import TrackState
from nst_core.io_errors import storage_error
from tasks.storage.records import CHECKPOINT, _Record
from tasks.storage.root import OutputRoot, write_file

__all__ = ["CHECKPOINT", "Pointer", "Saved", "read_checkpoint", "write_checkpoint"]

POINTER = f"{CHECKPOINT}/latest.json"
KEEP = 2  # states kept: the newest, and the one before it should the newest be damaged


class Saved(_Record):
    """One state in the pointer."""

    file: str  # relative to the pair's folder
    sha256: str
    level: int
    iteration: int


class Pointer(_Record):
    """``checkpoint/latest.json``: what the states belong to, and the newest ones, newest first."""

    identity: dict[str, str]
    saved: list[Saved]


def write_checkpoint(root: OutputRoot, pair_id: str, state: TrackState, identity: dict[str, str]) -> None:
    """Save ``state`` of the render ``identity`` names, then point to it (the state before it kept).

    Raises ``StorageError``."""
    try:
        _write(root, pair_id, state, identity)
    except Exception as exc:
        raise storage_error(exc, "checkpoint", root.pair_uri(pair_id, CHECKPOINT)) from exc


def _write(root: OutputRoot, pair_id: str, state: TrackState, identity: dict[str, str]) -> None:
    buffer = io.BytesIO()
    torch.save(state.dump(), buffer)
    data = buffer.getvalue()
    entry = Saved(
        file=f"{CHECKPOINT}/{state.iteration:06d}.pt",
        sha256=hashlib.sha256(data).hexdigest(),
        level=state.level,
        iteration=state.iteration,
    )
    before = _pointer(root, pair_id)
    kept = [s for s in before.saved if s.file != entry.file] if before and before.identity == identity else []
    write_file(root.fs, root.pair(pair_id, entry.file), data)
    pointer = Pointer(identity=identity, saved=[entry, *kept][:KEEP])
    write_file(root.fs, root.pair(pair_id, POINTER), pointer.model_dump_json(indent=2).encode())
    current = {s.file for s in pointer.saved}
    for old in before.saved if before else []:
        if old.file not in current:
            root.fs.rm_file(root.pair(pair_id, old.file))


def read_checkpoint(root: OutputRoot, pair_id: str, identity: dict[str, str]) -> tuple[TrackState | None, str]:
    """The newest whole state of the render ``identity`` names, or None and why not (empty: there is none).

    Raises ``StorageError``."""
    try:
        return _read(root, pair_id, identity)
    except Exception as exc:
        raise storage_error(exc, "checkpoint", root.pair_uri(pair_id, CHECKPOINT)) from exc


def _read(root: OutputRoot, pair_id: str, identity: dict[str, str]) -> tuple[TrackState | None, str]:
    pointer = _pointer(root, pair_id)
    if pointer is None:
        return None, ""
    changed = [
        k for k in sorted(identity.keys() | pointer.identity.keys()) if identity.get(k) != pointer.identity.get(k)
    ]
    if changed:
        what = ", ".join(f"{k} {pointer.identity.get(k)!r} -> {identity.get(k)!r}" for k in changed)
        return None, f"its checkpoint is of another render ({what}): starting from iteration 0"
    for saved in pointer.saved:
        try:
            data = root.fs.cat_file(root.pair(pair_id, saved.file))
        except FileNotFoundError:
            continue
        if hashlib.sha256(data).hexdigest() == saved.sha256:
            return TrackState.load(torch.load(io.BytesIO(data), weights_only=True)), ""
    return None, "its checkpoints are damaged: starting from iteration 0"


def _pointer(root: OutputRoot, pair_id: str) -> Pointer | None:
    try:
        return Pointer.model_validate_json(root.fs.cat_file(root.pair(pair_id, POINTER)))
    except (FileNotFoundError, ValidationError):
        return None
