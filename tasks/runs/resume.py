"""Checkpoints on the pipeline: when a render saves its state, where, and resuming a pair from it.

A render saves the state of each of its images (``nst_core.checkpoints``) into the pair's folder
(``tasks.storage.checkpoints``) every ``checkpoint_every_s`` seconds of rendering, and at once when a
preemption notice comes (SIGTERM: ``tasks.runs.stopping``), then stops. The next run that takes the pair,
a rerun, a retry or another worker after its lease went stale, resumes from the newest good checkpoint
of the same render: ``identity`` names it (the pair's fingerprint, its inputs' bytes, the weights, the
torch version and the device type). Any other checkpoint is passed over, with one line saying why.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence

import fsspec
import torch

from nst_core.catalogue import RANDOM_WEIGHTS, imagenet_cache_path
from nst_core.checkpoints import Checkpoints, TrackState
from nst_core.device import pick_device
from tasks.manifest.read import Pair
from tasks.runs import stopping
from tasks.runs.failures import failure_of
from tasks.storage.checkpoints import read_checkpoint, write_checkpoint
from tasks.storage.retries import retry_transient
from tasks.storage.root import OutputRoot

__all__ = ["MAX_OVERHEAD", "Saver", "identity", "resumable"]

log = logging.getLogger(__name__)
MAX_OVERHEAD = 0.02  # of the render's time: a checkpoint that took w s to write is followed by one w / 0.02 s later


def identity(pair: Pair, checksums: dict[str, str], device: str | None) -> dict[str, str]:
    """What a checkpoint of ``pair``'s render must match to be resumed from: its settings and inputs as named
    (the fingerprint), the inputs' bytes (``checksums``, by URI), the weights, the torch version and the device
    type (``device``: the run's, else the pair's setting)."""
    inputs = hashlib.sha256("\n".join(f"{uri} {checksums[uri]}" for uri in sorted(checksums)).encode())
    try:
        device_type = pick_device(device or pair.settings.device).type
    except Exception:  # the render reports it
        device_type = device or pair.settings.device
    return {
        "fingerprint": pair.fingerprint,
        "inputs": inputs.hexdigest(),
        "weights": _weights_version(pair.settings.weights, pair.settings.backbone),
        "torch": torch.__version__,
        "device": device_type,
    }


def _weights_version(weights: str, backbone: str) -> str:
    """The weights and the version of their file (its modification time or ETag), without reading it."""
    if RANDOM_WEIGHTS.match(weights):
        return weights
    uri = str(imagenet_cache_path(backbone)) if weights == "imagenet" else weights
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        return f"{uri} {fs.ukey(path)}"
    except Exception:  # missing or unreadable: the render says so
        return uri


def resumable(root: OutputRoot, pair: Pair, label: str, ids: dict[str, str], retry_for_s: float) -> TrackState | None:
    """The state to resume ``pair``'s render from (its folder, here ``pair.pair_id``), or None; ``label`` names it
    in the line that says why a checkpoint is not used."""
    if not pair.settings.checkpoint_every_s:
        return None
    state, why = retry_transient(lambda: read_checkpoint(root, pair.pair_id, ids), retry_for_s)
    if why:
        log.warning("row %d %s: %s", pair.row, label, why)
    elif state is not None:
        log.info("row %d %s: resuming at iteration %d from its checkpoint", pair.row, label, state.iteration)
    return state


class Saver:
    """The checkpoints of one batch's pairs (each in its ``pair_id``'s folder; ``ids[job]``: its render's
    ``identity``): due every ``checkpoint_every_s`` seconds (the smallest of the batch's), but never so often that
    writing them takes more than ``MAX_OVERHEAD`` of the time, and at once on a preemption notice, after which the
    render stops (``Preempted``). A checkpoint that cannot be written is logged, and the render goes on. Pairs with
    ``checkpoint_every_s`` 0 save none."""

    def __init__(self, root: OutputRoot, pairs: Sequence[Pair], ids: Sequence[dict[str, str]]):
        self.root, self.folders, self.ids = root, [pair.pair_id for pair in pairs], ids
        self.saving = {job for job, pair in enumerate(pairs) if pair.settings.checkpoint_every_s}
        self.every_s = min((pairs[job].settings.checkpoint_every_s for job in self.saving), default=0.0)
        self.last, self.wait_s = time.monotonic(), self.every_s

    @classmethod
    def of(cls, root: OutputRoot, pairs: Sequence[Pair], ids: Sequence[dict[str, str]]) -> Saver | None:
        """The saver of these pairs, or None where none of them saves checkpoints."""
        saver = cls(root, pairs, ids)
        return saver if saver.saving else None

    def hook(self, jobs: Sequence[int]) -> Checkpoints:
        """The engine's hook for a render of the ``jobs`` (indices in ``pairs``), in that order."""
        return Checkpoints(self.due, lambda states: self.save({jobs[key]: state for key, state in states.items()}))

    def due(self) -> bool:
        return stopping.preempted() or time.monotonic() - self.last >= self.wait_s

    def save(self, states: dict[int, TrackState]) -> None:
        """Write each job's state; after a preemption notice, raise ``Preempted`` to stop the render."""
        start = time.monotonic()
        for job, state in states.items():
            if job not in self.saving:
                continue
            try:
                write_checkpoint(self.root, self.folders[job], state, self.ids[job])
            except Exception as exc:
                log.warning("could not save the checkpoint of %s: %s", self.folders[job], failure_of(exc).reason)
        self.last = time.monotonic()
        self.wait_s = max(self.every_s, (self.last - start) / MAX_OVERHEAD)
        stopping.check()
