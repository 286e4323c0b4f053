"""Render one manifest pair and store its outputs: the body of the ``render_pair`` task."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import pandas as pd

from nst_core import RenderResult, StepInfo, render
from nst_core.images import decode_image, encode_image, read_bytes
from tasks.manifest import Pair
from tasks.storage import pair_folder, write_pair

__all__ = ["RESULT", "failure_record", "run_pair"]

RESULT = "result.png"


def run_pair(
    pair: Pair, out: str, device: str | None, on_step: Callable[[StepInfo], None] | None = None
) -> dict[str, Any]:
    """Read the inputs (keeping their checksums), render, write the outputs; return a small summary."""
    start, started_at = time.perf_counter(), datetime.now(UTC).isoformat()
    data = {pair.content: read_bytes(pair.content, "content image")}
    data |= {uri: read_bytes(uri, "style image") for uri in pair.styles}
    content = decode_image(data[pair.content], pair.content, "content image")
    styles = [decode_image(data[uri], uri, "style image") for uri in pair.styles]
    settings = pair.settings if device is None else pair.settings.model_copy(update={"device": device})
    result = render(content, styles, settings, on_step=on_step)
    wall_s = time.perf_counter() - start
    checksums = {uri: hashlib.sha256(blob).hexdigest() for uri, blob in data.items()}
    final = dataclasses.asdict(result.losses[-1])
    marker = {
        "pair_id": pair.pair_id,
        "fingerprint": pair.fingerprint,
        "final": final,
        "wall_s": wall_s,
        "device": result.device,
        "worker": f"{socket.gethostname()}:{os.getpid()}",  # the process that rendered it
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    write_pair(out, pair.pair_id, _files(pair, result, checksums, wall_s), marker)
    return {**marker, "row": pair.row, "output": f"{pair_folder(out, pair.pair_id)}/{RESULT}"}


def _files(pair: Pair, result: RenderResult, checksums: dict[str, str], wall_s: float) -> dict[str, bytes]:
    losses = pd.DataFrame([dataclasses.asdict(step) for step in result.losses]).to_csv(index=False)
    files = {
        RESULT: encode_image(result.image, RESULT),
        "losses.csv": losses.encode(),
        "settings.json": json.dumps(_metadata(pair, result, checksums, wall_s), indent=2).encode(),
    }
    for iteration, snapshot in result.snapshots.items():
        files[f"snapshots/{iteration:05d}.png"] = encode_image(snapshot, RESULT)
    return files


def _metadata(pair: Pair, result: RenderResult, checksums: dict[str, str], wall_s: float) -> dict[str, Any]:
    """Everything needed to know how a result was made (``settings.json``)."""
    return {
        "pair_id": pair.pair_id,
        "row": pair.row,
        "tags": list(pair.tags),
        "content": {"uri": pair.content, "sha256": checksums[pair.content]},
        "styles": [{"uri": uri, "sha256": checksums[uri]} for uri in pair.styles],
        "settings": result.settings.model_dump(mode="json"),
        "device": result.device,
        "precision": result.precision,
        "timings": {**dataclasses.asdict(result.timings), "wall_s": wall_s},
        "versions": {name: version(name) for name in ("stylebatch", "torch", "torchvision", "pillow")}
        | {"python": platform.python_version()},
    }


def failure_record(pair: Pair, error: BaseException) -> dict[str, Any]:
    """What ``failed.json`` holds: enough for the gallery to place the pair and show its error."""
    return {
        "pair_id": pair.pair_id,
        "row": pair.row,
        "content": {"uri": pair.content},
        "styles": [{"uri": uri} for uri in pair.styles],
        "tags": list(pair.tags),
        "settings": pair.settings.model_dump(mode="json"),
        "error": f"{type(error).__name__}: {error}",
        "failed_at": datetime.now(UTC).isoformat(),
    }
