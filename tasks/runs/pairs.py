"""Manifest pairs from start to end: lease, inputs, render, outputs; the body of the render tasks.

Pairs of one batch (``run_batch``) are rendered together by ``nst_core.render_batch``; everything
else is each pair's own: its lease, its inputs, its ``Outcome``, its failure record, its snapshots
(written into its folder as they are taken, so that a pair that fails or is stopped keeps its partial
picture), its checkpoints (``tasks.runs.resume``: a render resumes from its pair's), its outputs written
and marked done on their own. ``run_pair`` is a batch of one. Whatever goes wrong with one pair (its inputs,
settings, weights, storage, the render itself) becomes that pair's outcome with a one-line reason, and its
failure record; nothing here ends the run. A pair stopped by Ctrl-C or SIGTERM, or held by another run,
leaves its folder as it was, but for the snapshots and checkpoints it took.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import platform
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TypeVar

from PIL import Image

from nst_core import BatchJob, RenderResult, StepInfo, StorageError, batch_key, render_batch
from nst_core.checkpoints import TrackState
from nst_core.images import decode_image, read_bytes
from nst_core.rendering import group_batches
from tasks.manifest.read import Pair
from tasks.runs import stopping
from tasks.runs.failures import failure_of
from tasks.runs.options import RunOptions
from tasks.runs.records import Outcome
from tasks.runs.resume import Saver, identity, resumable
from tasks.storage.folders import finished, write_failure, write_pair
from tasks.storage.inputs import fetch
from tasks.storage.leases import Holder, Lease, acquire
from tasks.storage.records import (
    RESULT,
    SNAPSHOTS,
    FailureRecord,
    InputFile,
    LossRow,
    RenderRecord,
    RenderTimings,
    Status,
    pair_files,
    snapshot_file,
    snapshot_iteration,
    snapshot_name,
)
from tasks.storage.retries import retry_transient
from tasks.storage.root import OutputRoot, write_file

__all__ = [
    "BatchStep",
    "RunContext",
    "batches",
    "claim_all",
    "ended_outcome",
    "failure_record",
    "masked_job",
    "pair_outcome",
    "read_images",
    "release_lease",
    "render_jobs",
    "run_batch",
    "run_pair",
    "store_result",
    "unfinished",
]

log = logging.getLogger(__name__)
BatchStep = Callable[[int, StepInfo], None]  # (index of the pair in its batch, step)
T = TypeVar("T")
Snapshot = Callable[[int, int, Image.Image], None]  # (index of the job in its render_batch, iteration, image)


@dataclasses.dataclass(frozen=True)
class _Inputs:
    content: Image.Image
    styles: list[Image.Image]
    masks: dict[str, Image.Image]  # by role (``Pair.masks``)
    checksums: dict[str, str]  # uri -> sha256 of the bytes rendered


@dataclasses.dataclass(frozen=True)
class _Started:
    """A claimed pair's inputs, its render's identity, and where it resumes (its state, the snapshots before)."""

    inputs: _Inputs
    ids: dict[str, str]
    state: TrackState | None
    snapshots: dict[int, Image.Image]


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What the pairs of a batch share: the options, the output root, the run (inputs are read once per run)."""

    options: RunOptions
    root: OutputRoot
    run_id: str
    device: str | None


def run_pair(
    pair: Pair,
    options: RunOptions,
    device: str | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    run_id: str = "run",
) -> Outcome:
    """Render ``pair`` into ``options.out`` unless another run holds or finished it; return its outcome."""
    step = None if on_step is None else lambda _, info: on_step(info)
    return run_batch([pair], options, device, step, run_id)[0]


def run_batch(
    pairs: Sequence[Pair],
    options: RunOptions,
    device: str | None = None,
    on_step: BatchStep | None = None,
    run_id: str = "run",
) -> list[Outcome]:
    """Render ``pairs`` (ideally of one ``nst_core.batch_key``) together; return each pair's outcome, as run_pair."""
    start, started_at = time.monotonic(), datetime.now(UTC)
    run = RunContext(options, OutputRoot.open(options.out), run_id, device)
    outcomes: dict[int, Outcome] = {}
    leases: dict[int, Lease] = {}

    def opened(_: int, pair: Pair) -> _Started:
        inputs = _fetch(pair, run)
        ids = identity(pair, inputs.checksums, device)
        state = resumable(run.root, pair, pair.label, ids, options.retry_for_s)
        return _Started(inputs, ids, state, _earlier_snapshots(pair, run, state.iteration if state else 0))

    try:
        started = claim_all(pairs, run, opened, outcomes, leases)
        order = list(started)
        mine = [pairs[i] for i in order]
        jobs = [_job(pairs[i], started[i].inputs, device) for i in order]
        saver = Saver.of(run.root, mine, [started[i].ids for i in order])
        resume = {job: started[i].state for job, i in enumerate(order) if started[i].state}
        results = render_jobs(jobs, options, start, on_step, order, _snapshot_writer(run, mine), saver, resume)
        for index, result in zip(order, results, strict=True):
            pair, begun = pairs[index], started[index]
            try:
                if isinstance(result, Exception):
                    outcomes[index] = ended_outcome(pair, run, result, batch_size=len(order))
                else:
                    result = dataclasses.replace(result, snapshots=begun.snapshots | result.snapshots)
                    outcome = _store(pair, run, result, begun.inputs.checksums, started_at, start)
                    resumed_at = begun.state.iteration if begun.state else None
                    outcomes[index] = outcome.model_copy(update={"resumed_at": resumed_at})
            except Exception as exc:
                outcomes[index] = ended_outcome(pair, run, exc)
    finally:
        for lease in leases.values():
            release_lease(lease, options.retry_for_s)
    return [outcomes[index] for index in range(len(pairs))]


def unfinished(pairs: Sequence[Pair], options: RunOptions) -> tuple[list[Pair], list[Pair]]:
    """(to render, finished already): every pair if ``options.force``. A pair whose completion record cannot be
    read now is to render: its render task reports why."""

    def done(pair: Pair) -> bool:
        try:
            return not options.force and finished(options.out, pair.pair_id, pair.fingerprint)
        except StorageError:
            return False

    finished_pairs = [pair for pair in pairs if done(pair)]
    return [pair for pair in pairs if pair not in finished_pairs], finished_pairs


def batches(pairs: Sequence[Pair], size: int) -> list[list[Pair]]:
    """``pairs`` in batches of at most ``size`` that share ``nst_core.batch_key``, in manifest order: a
    batch is ordered by its first pair, and fills up before the next of its key starts."""
    return group_batches(pairs, lambda pair: batch_key(pair.settings), size)


def pair_outcome(pair: Pair, run: RunContext, status: Status, **details: object) -> Outcome:
    return Outcome(
        pair_id=pair.pair_id, row=pair.row, status=status, output=run.root.pair_uri(pair.pair_id, RESULT), **details
    )


def claim_all(
    pairs: Sequence[Pair],
    run: RunContext,
    opened: Callable[[int, Pair], T],
    outcomes: dict[int, Outcome],
    leases: dict[int, Lease],
) -> dict[int, T]:
    """Claim each of ``pairs`` (by index) into ``leases``, and return what ``opened(index, pair)`` makes of those
    claimed; the outcome of each pair skipped (held or finished by another run) or failed goes into ``outcomes``."""
    result: dict[int, T] = {}
    for index, pair in enumerate(pairs):
        try:
            claim = _claim(pair, run)
            if isinstance(claim, str):
                outcomes[index] = pair_outcome(pair, run, Status.SKIPPED, reason=claim)
                continue
            leases[index] = claim
            result[index] = opened(index, pair)
        except Exception as exc:
            outcomes[index] = ended_outcome(pair, run, exc)
    return result


def _claim(pair: Pair, run: RunContext) -> Lease | str:
    """The pair's lease, or why it is skipped (held by another run, or finished meanwhile)."""
    stopping.check()
    retry_for_s = run.options.retry_for_s
    owner = uuid.uuid4().hex  # the same in every try (``acquire``)
    lease = retry_transient(lambda: acquire(run.root, pair.pair_id, owner), retry_for_s)
    if isinstance(lease, Holder):
        return f"being rendered by another run ({lease})"
    if not run.options.force and retry_transient(
        lambda: finished(run.options.out, pair.pair_id, pair.fingerprint), retry_for_s
    ):
        release_lease(lease, retry_for_s)
        return "finished by another run"
    return lease


def release_lease(lease: Lease, retry_for_s: float) -> None:
    """Release ``lease``, riding out a short outage; one left behind goes stale, and another run takes it over."""
    try:
        retry_transient(lease.release, min(retry_for_s, 30))
    except StorageError as exc:
        log.warning("could not release the lease %s: %s", lease.path, exc.cause)


def _fetch(pair: Pair, run: RunContext) -> _Inputs:
    [content, *images], checksums = read_images(pair, run, [(pair.content, "content image")])
    styles = images[: len(pair.styles)]
    return _Inputs(content, styles, dict(zip(pair.masks, images[len(styles) :], strict=True)), checksums)


def read_images(
    pair: Pair, run: RunContext, first: list[tuple[str, str]] = ()
) -> tuple[list[Image.Image], dict[str, str]]:
    """The images ``first`` ((uri, role), ...), ``pair``'s styles, then its masks, each read once per run; and the
    sha256 of each one's bytes, by URI."""
    data: dict[str, bytes] = {}

    def image(uri: str, role: str) -> Image.Image:
        def read() -> bytes:
            return retry_transient(lambda: read_bytes(uri, role), run.options.retry_for_s)

        data[uri] = fetch(uri, role, run.run_id, read)
        return decode_image(data[uri], uri, role, max_pixels=pair.settings.max_pixels)

    reads = [*first, *((uri, "style image") for uri in pair.styles), *((uri, role) for role, uri in pair.masks.items())]
    images = [image(uri, role) for uri, role in reads]
    return images, {uri: hashlib.sha256(blob).hexdigest() for uri, blob in data.items()}


def _earlier_snapshots(pair: Pair, run: RunContext, resumed_at: int) -> dict[int, Image.Image]:
    """The snapshots of an earlier attempt up to the iteration the render resumes at, read back; those after it
    are deleted, so that the folder's snapshots are this render's (best effort: left behind, they would only be
    shown as the partial picture of a pair that fails early)."""
    fs, folder = run.root.fs, run.root.pair(pair.pair_id, SNAPSHOTS)
    kept: dict[int, Image.Image] = {}
    try:
        for path in fs.find(folder) if fs.exists(folder) else []:
            iteration = snapshot_iteration(path)
            if iteration is not None and iteration <= resumed_at:
                kept[iteration] = decode_image(fs.cat_file(path), path, "snapshot")
            else:
                fs.rm_file(path)
    except Exception as exc:
        log.warning("could not read or delete the old snapshots of %s: %s", pair.pair_id, failure_of(exc).reason)
    return kept


def _snapshot_writer(run: RunContext, pairs: Sequence[Pair]) -> Snapshot:
    """Write each snapshot into the folder of ``pairs[job]`` as it is taken (one atomic write; no completion
    record, so the folder stays unfinished). A snapshot that cannot be written is logged, and the render goes on."""

    def write(job: int, iteration: int, image: Image.Image) -> None:
        pair_id = pairs[job].pair_id
        try:
            write_file(run.root.fs, run.root.pair(pair_id, snapshot_name(iteration)), snapshot_file(image))
        except Exception as exc:
            log.warning("could not write snapshot %d of %s: %s", iteration, pair_id, failure_of(exc).reason)

    return write


def _job(pair: Pair, inputs: _Inputs, device: str | None) -> BatchJob:
    return masked_job(pair, inputs.content, inputs.styles, inputs.masks, device)


def masked_job(
    pair: Pair, content: Image.Image, styles: list[Image.Image], masks: dict[str, Image.Image], device: str | None
) -> BatchJob:
    """The render of ``pair``'s ``content`` (a still, or a clip's frame) with its styles and masks, as read."""
    settings = pair.settings if device is None else pair.settings.model_copy(update={"device": device})
    style_masks = [masks[f"style mask {n}"] for n in range(1, len(pair.style_masks) + 1)]
    on_styles = [masks.get(f"style image mask {n}") for n in range(1, len(pair.style_image_masks) + 1)]
    return BatchJob(content, styles, settings, None, style_masks, on_styles, masks.get("keep mask"))


def render_jobs(
    jobs: list[BatchJob],
    options: RunOptions,
    start: float,
    on_step: BatchStep | None,
    order: list[int],
    on_snapshot: Snapshot,
    saver: Saver | None = None,
    resume: dict[int, TrackState] | None = None,
) -> list[RenderResult | Exception]:
    """``render_batch``; the jobs that fail on a transient storage error (weights or an init image on a
    flaky store) are rendered again, together, until ``options.retry_for_s`` is spent. ``on_snapshot`` takes
    the job's index in ``jobs``; ``saver`` saves the jobs' checkpoints, and ``resume`` has the states to resume
    jobs from (by index in ``jobs``)."""
    resume = resume or {}
    deadline = None if options.timeout_s is None else (start + options.timeout_s, options.timeout_s)
    results: list[RenderResult | Exception | None] = [None] * len(jobs)
    todo = list(range(len(jobs)))

    def attempt() -> None:
        nonlocal todo
        tried = list(todo)

        def snapshot(job: int, iteration: int, image: Image.Image) -> None:
            on_snapshot(tried[job], iteration, image)

        step = _checked(on_step, deadline, [order[i] for i in tried], saving=saver is not None)
        rendered = render_batch(
            [jobs[i] for i in tried],
            on_step=step,
            on_snapshot=snapshot,
            checkpoints=None if saver is None else saver.hook(tried),
            resume={job: resume[i] for job, i in enumerate(tried) if i in resume},
        )
        for i, result in zip(tried, rendered, strict=True):
            results[i] = result
        todo = [i for i in tried if isinstance(results[i], StorageError) and results[i].transient]
        if todo:
            raise results[todo[0]]

    if jobs:
        try:
            retry_transient(attempt, options.retry_for_s)
        except StorageError as exc:  # given up: the error says after how many tries
            results[todo[0]] = exc
    return results


def _checked(
    on_step: BatchStep | None, deadline: tuple[float, float] | None, indices: list[int], saving: bool = False
) -> BatchStep:
    """``on_step`` with the pairs' ``indices`` in the batch, after stopping a render at the iteration
    where Ctrl-C or the timeout came (the timeout counts from the batch's start); where the render is
    ``saving`` checkpoints, a preemption notice is left to its saver (which saves, then stops it)."""

    def step(job: int, info: StepInfo) -> None:
        if not (saving and stopping.preempted()):
            stopping.check()
        if deadline is not None and time.monotonic() > deadline[0]:
            raise TimeoutError(f"timed out after {deadline[1]:g} s (--timeout)")
        if on_step is not None:
            on_step(indices[job], info)

    return step


def _store(
    pair: Pair, run: RunContext, result: RenderResult, checksums: dict[str, str], started_at: datetime, start: float
) -> Outcome:
    """Write the pair's folder, its completion record last; return its outcome."""

    def write() -> RenderRecord:
        return store_result(pair, run.options.out, result, checksums, started_at, time.monotonic() - start)

    record = retry_transient(write, run.options.retry_for_s)
    details = record.model_dump(include={"fingerprint", "final", "wall_s", "device", "worker"})
    return pair_outcome(pair, run, Status.RENDERED, **details)


def store_result(
    pair: Pair, out: str, result: RenderResult, checksums: dict[str, str], started_at: datetime, wall_s: float
) -> RenderRecord:
    """Write a rendered pair's folder under ``out`` (its completion record last); return its record.

    ``checksums``: the sha256 of each input's bytes, by URI. Raises ``StorageError``.
    """
    record = _record(pair, result, checksums, started_at, wall_s)
    files = pair_files(record, result.image, [LossRow.of(step) for step in result.losses], result.snapshots)
    write_pair(out, pair.pair_id, files)
    return record


def ended_outcome(pair: Pair, run: RunContext, exc: Exception, batch_size: int = 1, where: str = "") -> Outcome:
    """The outcome of a pair that did not render (in a batch of ``batch_size``): cancelled or preempted (its
    folder untouched but for its snapshots and checkpoints), or failed and recorded in its failure record where
    the store allows. ``where``: a clip's frame it stopped at, e.g. ``frame 12: ``, before the reason."""
    if isinstance(exc, stopping.Stopped):
        status = Status.PREEMPTED if isinstance(exc, stopping.Preempted) else Status.CANCELLED
        return pair_outcome(pair, run, status, reason=where + str(exc))
    failure = failure_of(exc, pair.settings, run.device, batch_size)
    failure = dataclasses.replace(failure, reason=where + failure.reason)
    try:
        record = failure_record(pair, failure.reason, failure.traceback)
        retry_for_s = min(run.options.retry_for_s, 30)
        retry_transient(lambda: write_failure(run.options.out, pair.pair_id, record), retry_for_s)
    except Exception as write_error:  # the store itself is the problem: the reason is reported anyway
        log.warning("could not record the failure of %s: %s", pair.pair_id, write_error)
    return pair_outcome(pair, run, Status.FAILED, reason=failure.reason, traceback=failure.traceback)


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
        masks={role: InputFile(uri=uri, sha256=checksums[uri]) for role, uri in pair.masks.items()},
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
        masks={role: InputFile(uri=uri) for role, uri in pair.masks.items()},
        tags=list(pair.tags),
        settings=pair.settings,
        error=reason,
        traceback=traceback,
    )
