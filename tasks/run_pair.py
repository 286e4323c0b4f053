"""One manifest pair from start to end: lease, inputs, render, outputs; the body of the ``render_pair`` task.

Whatever goes wrong with one pair (its inputs, settings, weights, storage, the render itself) becomes
that pair's outcome with a one-line reason, and its failure record; nothing here ends the run. A pair
stopped by Ctrl-C or held by another run leaves its folder as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import platform
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from PIL import Image

from nst_core import RenderResult, StepInfo, render
from nst_core.images import decode_image
from tasks import stopping
from tasks.failures import failure_of
from tasks.inputs import fetch
from tasks.leases import Holder, Lease, acquire
from tasks.manifest import Pair
from tasks.options import RunOptions
from tasks.records import RESULT, FailureRecord, InputFile, LossRow, RenderRecord, RenderTimings, pair_files
from tasks.retries import retry_transient
from tasks.storage import finished, pair_folder, write_failure, write_pair

__all__ = ["failure_record", "run_pair"]

log = logging.getLogger(__name__)


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
    started_at = datetime.now(UTC)
    data: dict[str, bytes] = {}

    def image(uri: str, role: str) -> Image.Image:
        data[uri] = fetch(uri, role, options.run, options.retry_for_s)
        return decode_image(data[uri], uri, role, max_pixels=pair.settings.max_pixels)

    content = image(pair.content, "content image")
    styles = [image(uri, "style image") for uri in pair.styles]
    settings = pair.settings if device is None else pair.settings.model_copy(update={"device": device})
    step = _checked(on_step, None if options.timeout_s is None else (start + options.timeout_s, options.timeout_s))
    result = retry_transient(lambda: render(content, styles, settings, on_step=step), options.retry_for_s)
    checksums = {uri: hashlib.sha256(blob).hexdigest() for uri, blob in data.items()}
    record = _record(pair, result, checksums, started_at, time.monotonic() - start)
    files = pair_files(record, result.image, [LossRow.of(step) for step in result.losses], result.snapshots)
    retry_transient(lambda: write_pair(options.out, pair.pair_id, files), options.retry_for_s)
    return record.model_dump(mode="json", include={"fingerprint", "final", "wall_s", "device", "worker"})


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
    """The failed outcome, recorded in the pair's failure record where the store allows."""
    failure = failure_of(exc, pair.settings, device)
    try:
        record = failure_record(pair, failure.reason, failure.traceback)
        retry_transient(lambda: write_failure(options.out, pair.pair_id, record), min(options.retry_for_s, 30))
    except Exception as write_error:  # the store itself is the problem: the reason is reported anyway
        log.warning("could not record the failure of %s: %s", pair.pair_id, write_error)
    return {**base, "status": "failed", "reason": failure.reason, "traceback": failure.traceback}


def _record(
    pair: Pair, result: RenderResult, checksums: dict[str, str], started_at: datetime, wall_s: float
) -> RenderRecord:
    return RenderRecord(
        pair_id=pair.pair_id,
        fingerprint=pair.fingerprint,
        final=LossRow.of(result.losses[-1]),
        wall_s=wall_s,
        device=result.device,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started_at=started_at,
        finished_at=datetime.now(UTC),
        row=pair.row,
        tags=list(pair.tags),
        content=InputFile(uri=pair.content, sha256=checksums[pair.content]),
        styles=[InputFile(uri=uri, sha256=checksums[uri]) for uri in pair.styles],
        settings=result.settings,
        precision=result.precision,
        timings=RenderTimings(**dataclasses.asdict(result.timings), wall_s=wall_s),
        versions={name: version(name) for name in ("stylebatch", "torch", "torchvision", "pillow")}
        | {"python": platform.python_version()},
    )


def failure_record(pair: Pair, reason: str, traceback: str = "") -> FailureRecord:
    """The failure record: enough for the gallery to place the pair and show its error."""
    return FailureRecord(
        pair_id=pair.pair_id,
        row=pair.row,
        content=InputFile(uri=pair.content),
        styles=[InputFile(uri=uri) for uri in pair.styles],
        tags=list(pair.tags),
        settings=pair.settings,
        error=reason,
        traceback=traceback,
    )
