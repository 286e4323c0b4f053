"""Optical flows of a clip's content frames, kept under ``<out>/flows/`` and shared by every style rendered from it.

A clip's flows are keyed by its frames' content (a hash of their pixels at the render's size) and the flow method:
one file per frame and earlier frame (``<key>/<t>-<earlier>.npz``: the backward flow and where it holds), written
atomically. A file that cannot be read is computed again.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from nst_core.video.chain import Motion, motion
from nst_core.video.flow import FlowMethod
from tasks.storage.root import FLOWS, OutputRoot, write_file

__all__ = ["FlowStore", "clip_key"]

log = logging.getLogger(__name__)


def clip_key(frames: Sequence[Image.Image], method: FlowMethod) -> str:
    """What a clip's flows depend on: its frames' pixels (at the render's size) and the flow method."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(f"{frame.size}".encode())
        digest.update(frame.tobytes())
    return f"{digest.hexdigest()[:20]}-{method}"


class FlowStore:
    """The flows of one clip's ``frames`` under ``root``; each computed at most once across runs."""

    def __init__(self, root: OutputRoot, frames: Sequence[Image.Image], method: FlowMethod):
        self.root, self.frames, self.method = root, frames, method
        self.folder = f"{root.path}/{FLOWS}/{clip_key(frames, method)}"

    def motion(self, frame: int, earlier: int) -> Motion:
        """How ``frame`` maps back to ``earlier``: read, or computed and kept (a store that fails is only logged)."""
        path = f"{self.folder}/{frame:06d}-{earlier:06d}.npz"
        try:
            with self.root.fs.open(path, "rb") as f:
                data = np.load(io.BytesIO(f.read()))
                return Motion(data["backward"], data["reliable"].astype(np.float32))
        except Exception:  # not there yet, or damaged: compute it
            pass
        found = motion(self.frames[frame], self.frames[earlier], self.method)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, backward=found.backward, reliable=found.reliable.astype(np.uint8))
        try:
            write_file(self.root.fs, path, buffer.getvalue())
        except Exception as exc:
            log.warning("could not keep the optical flow %s: %s", path, exc)
        return found
