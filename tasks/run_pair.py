"""One manifest pair from start to end: lease, inputs, render, outputs; the body of the ``render_pair`` task.

Whatever goes wrong with one pair (its inputs, settings, weights, storage, the render itself) becomes
that pair's outcome with a one-line reason, and its ``failed.json``; nothing here ends the run. A pair
stopped by Ctrl-C or held by another run leaves its folder as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import pandas as pd
from PIL import Image

from nst_core import RenderResult, StepInfo, render
from nst_core.images import decode_image, encode_image
from tasks import stopping
from tasks.failures import failure_of
from tasks.inputs import fetch
from tasks.leases import Holder, Lease, acquire
from tasks.manifest import Pair
from tasks.retries import DEFAULT_RETRY_FOR_S, retry_transient
from tasks.storage import finished, pair_folder, write_failure, write_pair

__all__ = ["RESULT", "RunOptions", "failure_record", "run_pair"]

RESULT = "result.png"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What every pair of a run shares."""

    out: str  # output root, a path or URI
    run: str = "run"  # the run's key: inputs are fetched once per run
    timeout_s: float | None = None  # give up on a pair after this long
    retry_for_s: float = DEFAULT_RETRY_FOR_S  # keep retrying transient storage errors this long
    force: bool = False  # render even if finished


def run_pair(
    pair: Pair, options: RunOptions, device: str | None = None, on_step: Callable[[StepInfo], None] | None = None
) -> dict[str, Any]:
    """Render ``pair`` into ``options.out`` unless another run holds or finished it; return its outcome.

    The outcome's ``status`` is rendered, skipped, failed or cancelled, with a one-line ``reason``
    for all but rendered.
    """
    start = time.monotonic()
    base = {"pair_id": pair.pair_id, "row": pair.row, "output": f"{pair_folder(options.out, pair.pair_id)}/{RESULT}"}
    lease = None
    try:
        stopping.check()
        lease = retry_transient(lambda: acquire(pair_folder(options.out, pair.pair_id)), options.retry_for_s)
        if isinstance(lease, Holder):
            return {**base, "status": "skipped", "reason": f"being rendered by another run ({lease})"}
        if not options.force and retry_transient(
            lambda: finished(options.out, pair.pair_id, pair.fingerprint), options.retry_for_s
        ):
            return {**base, "status": "skipped", "reason": "finished by another run"}
        return {**base, "status": "rendered", **_render_and_store(pair, options, device, on_step, start)}
    except stopping.Stopped as exc:
        return {**base, "status": "cancelled", "reason": str(exc)}
    except Exception as exc:
        return _failed(pair, options, base, exc, device)
    finally:
        if isinstance(lease, Lease):
            lease.release()


def _render_and_store(
    pair: Pair,
    options: RunOptions,
    device: str | None,
    on_step: Callable[[StepInfo], None] | None,
    start: float,
) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat()
    data: dict[str, bytes] = {}

    def image(uri: str, role: str) -> Image.Image:
        data[uri] = fetch(uri, role, options.run, options.retry_for_s)
        return decode_image(data[uri], uri, role, max_pixels=pair.settings.max_pixels)

    content = image(pair.content, "content image")
    styles = [image(uri, "style image") for uri in pair.styles]
    settings = pair.settings if device is None else pair.settings.model_copy(update={"device": device})
    step = _checked(on_step, None if options.timeout_s is None else (start + options.timeout_s, options.timeout_s))
    result = retry_transient(lambda: render(content, styles, settings, on_step=step), options.retry_for_s)
    wall_s = time.monotonic() - start
    checksums = {uri: hashlib.sha256(blob).hexdigest() for uri, blob in data.items()}
    marker = {
        "pair_id": pair.pair_id,
        "fingerprint": pair.fingerprint,
        "final": dataclasses.asdict(result.losses[-1]),
        "wall_s": wall_s,
        "device": result.device,
        "worker": f"{socket.gethostname()}:{os.getpid()}",  # the process that rendered it
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    files = _files(pair, result, checksums, wall_s)
    retry_transient(lambda: write_pair(options.out, pair.pair_id, files, marker), options.retry_for_s)
    return marker


def _checked(
    on_step: Callable[[StepInfo], None] | None, deadline: tuple[float, float] | None
) -> Callable[[StepInfo], None]:
    """``on_step``, after stopping at the iteration where Ctrl-C or the timeout came."""

    def step(info: StepInfo) -> None:
        stopping.check()
        if deadline is not None and time.monotonic() > deadline[0]:
            raise TimeoutError(f"timed out after {deadline[1]:g} s (--timeout)")
        if on_step is not None:
            on_step(info)

    return step


def _failed(
    pair: Pair, options: RunOptions, base: dict[str, Any], exc: BaseException, device: str | None
) -> dict[str, Any]:
    """The failed outcome, recorded in the pair's ``failed.json`` where the store allows."""
    failure = failure_of(exc, pair.settings, device)
    try:
        record = failure_record(pair, failure.reason, failure.traceback)
        retry_transient(lambda: write_failure(options.out, pair.pair_id, record), min(options.retry_for_s, 30))
    except Exception as write_error:  # the store itself is the problem: the reason is reported anyway
        log.warning("could not record the failure of %s: %s", pair.pair_id, write_error)
    return {**base, "status": "failed", "reason": failure.reason, "traceback": failure.traceback}


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


def failure_record(pair: Pair, reason: str, traceback: str = "") -> dict[str, Any]:
    """What ``failed.json`` holds: enough for the gallery to place the pair and show its error."""
    return {
        "pair_id": pair.pair_id,
        "row": pair.row,
        "content": {"uri": pair.content},
        "styles": [{"uri": uri} for uri in pair.styles],
        "tags": list(pair.tags),
        "settings": pair.settings.model_dump(mode="json"),
        "error": reason,
        "traceback": traceback,
        "failed_at": datetime.now(UTC).isoformat(),
    }
