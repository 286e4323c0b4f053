"""Clip rows from start to end: chains of frames (``nst_core.video.chain``) on the pipeline.

A clip row renders frame after frame. Each frame is written like a pair (``frames/<pair id>/<NNNNNN>/``, its
completion record last), so that a chain that is stopped or killed resumes at its first unfinished frame, from
that frame's checkpoint where it has one (``tasks.runs.resume``), and renders no finished frame again; the chain
holds one lease. The chains of a batch render in lockstep: frame t of
each, together, on one device (``nst_core.render_batch``). A failure stops its own chain only. When a chain's last
frame is written, the clip is assembled in the pair's folder (``clip_files``), its completion record last. Optical
flows come from ``tasks.storage.flows``: once per clip, for every style rendered from it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from PIL import Image

from nst_core import BatchJob, RenderResult, StepInfo
from nst_core.checkpoints import TrackState
from nst_core.images import decode_image, resize_long_side
from nst_core.video.chain import frame_job, frame_settings, previous_frames
from nst_core.video.clips import FrameRange, probe_clip, read_frames
from nst_core.video.encode import encode_preview, encode_video
from tasks.manifest.read import Pair
from tasks.runs.options import RunOptions
from tasks.runs.pairs import (
    BatchStep,
    RunContext,
    claim_all,
    ended_outcome,
    masked_job,
    pair_outcome,
    read_images,
    release_lease,
    render_jobs,
    store_result,
)
from tasks.runs.records import Outcome
from tasks.runs.resume import Saver, identity, resumable
from tasks.storage.flows import FlowStore
from tasks.storage.folders import finished, write_pair
from tasks.storage.leases import Lease
from tasks.storage.records import (
    CLIP_VIDEOS,
    DONE,
    PREVIEW,
    RECORD,
    RESULT,
    SOURCE_PREVIEW,
    VIDEO,
    RenderRecord,
    RenderTimings,
    Status,
    clip_files,
    read_record,
)
from tasks.storage.retries import retry_transient
from tasks.storage.root import OutputRoot, frame_folder

__all__ = ["chain_iterations", "run_chains"]

OnStart = Callable[[int, int], None]  # (index of the pair in its batch, iterations of its whole chain)


def chain_iterations(pair: Pair, frames: int) -> int:
    """Optimisation steps of a whole chain of ``frames``."""
    return sum(frame_settings(pair.settings, index).total_iterations for index in range(frames))


@dataclasses.dataclass
class _Chain:
    """One clip's chain in progress."""

    pair: Pair
    frames: list[Image.Image]  # the content frames at the render's size
    fps: Fraction
    audio: bool  # the clip has a sound track, which the result keeps
    styles: list[Image.Image]
    masks: dict[str, Image.Image]  # by role (``Pair.masks``)
    checksums: dict[str, str]
    flows: FlowStore
    start: int  # the first frame to render
    done: dict[int, Image.Image]  # stylised frames, read back or rendered
    ids: dict[str, str]  # the render's identity (``tasks.runs.resume``)
    resume: TrackState | None = None  # where the first frame to render resumes
    error: Exception | None = None
    failed_at: int = 0  # the frame it stopped at

    def fail(self, exc: Exception, index: int) -> None:
        self.error, self.failed_at = exc, index

    @property
    def resumed_at(self) -> int | None:
        """The iteration of the whole chain that it resumed at from a frame's checkpoint, if it did."""
        return None if self.resume is None else chain_iterations(self.pair, self.start) + self.resume.iteration

    def frame_pair(self, index: int) -> Pair:
        return dataclasses.replace(self.pair, pair_id=frame_folder(self.pair.pair_id, index))

    def job_of(self, index: int, device: str | None) -> BatchJob:
        still = masked_job(self.pair, self.frames[index], self.styles, self.masks, device)
        follows = previous_frames(index, still.settings.long_term) if still.settings.temporal_weight else []
        earlier = [(self.done[i], self.flows.motion(index, i)) for i in follows]
        return frame_job(still, index, earlier)


def run_chains(
    pairs: Sequence[Pair],
    options: RunOptions,
    device: str | None = None,
    on_step: BatchStep | None = None,
    run_id: str = "run",
    on_start: OnStart | None = None,
) -> list[Outcome]:
    """Render the clip rows ``pairs`` (of one ``nst_core.batch_key``) in lockstep; return each one's outcome."""
    start = time.monotonic()
    run = RunContext(options, OutputRoot.open(options.out), run_id, device)
    outcomes: dict[int, Outcome] = {}
    leases: dict[int, Lease] = {}

    def opened(index: int, pair: Pair) -> _Chain:
        chain = _open(pair, run)
        if on_start is not None:
            on_start(index, chain_iterations(pair, len(chain.frames)))
        return chain

    try:
        chains = claim_all(pairs, run, opened, outcomes, leases)
        _render_frames(chains, run, start, on_step)
        for index, chain in chains.items():
            try:
                if chain.error is not None:
                    outcome = ended_outcome(chain.pair, run, chain.error, where=f"frame {chain.failed_at}: ")
                else:
                    outcome = _assemble(chain, run, time.monotonic() - start)
            except Exception as exc:
                outcome = ended_outcome(chain.pair, run, exc)
            frames = f"{len(chain.done)}/{len(chain.frames)}"
            outcomes[index] = outcome.model_copy(update={"frames": frames, "resumed_at": chain.resumed_at})
    finally:
        for lease in leases.values():
            release_lease(lease, options.retry_for_s)
    return [outcomes[index] for index in range(len(pairs))]


def _open(pair: Pair, run: RunContext) -> _Chain:
    """The chain's frames, styles and flows, and where it resumes: its first unfinished frame (the frames it
    follows read back from their folders)."""
    s, retry_for_s = pair.settings, run.options.retry_for_s
    selection = FrameRange(s.frame_start, s.frame_end, s.frame_step)
    frames = retry_transient(
        lambda: read_frames(pair.content, selection, s.max_frames, role="content clip"), retry_for_s
    )
    info = probe_clip(pair.content, role="content clip")
    frames = [resize_long_side(frame, s.image_size) for frame in frames]
    images, checksums = read_images(pair, run)
    styles, masks = images[: len(pair.styles)], dict(zip(pair.masks, images[len(pair.styles) :], strict=True))
    flows = FlowStore(run.root, frames, s.flow)
    checksums[pair.content] = flows.folder.rsplit("/", 1)[-1]  # the clip's frames' hash
    ids = identity(pair, checksums, run.device)
    chain = _Chain(pair, frames, info.fps / s.frame_step, info.has_audio, styles, masks, checksums, flows, 0, {}, ids)
    if run.options.force:
        return chain
    while chain.start < len(frames) and finished(
        run.options.out, frame_folder(pair.pair_id, chain.start), pair.fingerprint
    ):
        chain.start += 1
    if chain.start < len(frames):
        label = f"{pair.label} frame {chain.start}"
        chain.resume = resumable(run.root, chain.frame_pair(chain.start), label, ids, retry_for_s)
    for index in range(chain.start):  # read back the frames the rest follow, and every frame for the clip
        data = run.root.fs.cat_file(run.root.pair(frame_folder(pair.pair_id, index), RESULT))
        chain.done[index] = decode_image(data, run.root.pair_uri(frame_folder(pair.pair_id, index), RESULT), "frame")
    return chain


def _render_frames(chains: dict[int, _Chain], run: RunContext, start: float, on_step: BatchStep | None) -> None:
    """Frame t of every live chain together, t = 0, 1, ...; each written as it is done."""
    longest = max((len(chain.frames) for chain in chains.values()), default=0)
    for t in range(longest):
        live = [i for i, c in chains.items() if c.error is None and c.start <= t < len(c.frames)]
        jobs, order = [], []
        for i in live:
            try:
                jobs.append(chains[i].job_of(t, run.device))
                order.append(i)
            except Exception as exc:
                chains[i].fail(exc, t)
        offsets = {i: chain_iterations(chains[i].pair, t) for i in order}
        step = None if on_step is None else _counted(on_step, offsets)
        frames = [chains[i].frame_pair(t) for i in order]
        saver = Saver.of(run.root, frames, [chains[i].ids for i in order])
        resume = {job: chains[i].resume for job, i in enumerate(order) if chains[i].resume and chains[i].start == t}
        results = render_jobs(jobs, run.options, start, step, order, lambda *_: None, saver, resume)
        for i, result in zip(order, results, strict=True):
            try:
                if isinstance(result, Exception):
                    raise result
                _store_frame(chains[i], t, result, run, start)
            except Exception as exc:
                chains[i].fail(exc, t)


def _store_frame(chain: _Chain, index: int, result: RenderResult, run: RunContext, start: float) -> None:
    """Write frame ``index``'s folder, its completion record last."""
    frame, started_at = chain.frame_pair(index), datetime.now(UTC) - timedelta(seconds=result.timings.total_s)

    def write() -> None:
        store_result(frame, run.options.out, result, chain.checksums, started_at, time.monotonic() - start)

    retry_transient(write, run.options.retry_for_s)
    chain.done[index] = result.image


def _counted(on_step: BatchStep, offsets: dict[int, int]) -> BatchStep:
    """``on_step`` with each frame's iterations counted on from the frames before it."""

    def step(index: int, info: StepInfo) -> None:
        on_step(index, dataclasses.replace(info, iteration=offsets[index] + info.iteration))

    return step


def _assemble(chain: _Chain, run: RunContext, wall_s: float) -> Outcome:
    """Write the clip's folder, its completion record last; return its outcome."""
    pair, images = chain.pair, [chain.done[i] for i in range(len(chain.frames))]
    frames = [_frame_record(chain, run, i) for i in range(len(images))]
    with tempfile.TemporaryDirectory(prefix="stylebatch-clip-") as tmp:
        paths = {name: str(Path(tmp, name)) for name in CLIP_VIDEOS}
        audio_start_s = pair.settings.frame_start / (chain.fps * pair.settings.frame_step)
        audio_from = pair.content if chain.audio else None
        encode_video(images, paths[VIDEO], chain.fps, audio_from=audio_from, audio_start_s=float(audio_start_s))
        encode_preview(images, paths[PREVIEW], chain.fps)
        encode_preview(chain.frames, paths[SOURCE_PREVIEW], chain.fps)
        videos = {name: Path(path).read_bytes() for name, path in paths.items()}
    record = _clip_record(chain, frames, wall_s)
    losses = [frame.final.model_copy(update={"iteration": i}) for i, frame in enumerate(frames)]
    files = clip_files(record, images[len(images) // 2], losses, videos)
    retry_transient(lambda: write_pair(run.options.out, pair.pair_id, files), run.options.retry_for_s)
    details = record.model_dump(include={"fingerprint", "final", "wall_s", "device", "worker"})
    return pair_outcome(pair, run, Status.RENDERED, **details).model_copy(
        update={"output": run.root.pair_uri(pair.pair_id, VIDEO)}
    )


def _frame_record(chain: _Chain, run: RunContext, index: int) -> RenderRecord:
    folder = frame_folder(chain.pair.pair_id, index)
    read = run.root.fs.cat_file
    return retry_transient(
        lambda: read_record(read(run.root.pair(folder, RECORD)), read(run.root.pair(folder, DONE))),
        run.options.retry_for_s,
    )


def _clip_record(chain: _Chain, frames: list[RenderRecord], wall_s: float) -> RenderRecord:
    """The clip's record: its last frame's, for the whole clip (its id, its times summed over the frames)."""
    last = frames[-1]
    timings = RenderTimings(
        setup_s=sum(f.timings.setup_s for f in frames),
        optimise_s=sum(f.timings.optimise_s for f in frames),
        ms_per_iteration=sum(f.timings.optimise_s for f in frames)
        * 1000
        / max(1, chain_iterations(chain.pair, len(frames))),
        evaluations=sum(f.timings.evaluations for f in frames),
        wall_s=wall_s,
    )
    return last.model_copy(
        update={
            "pair_id": chain.pair.pair_id,
            "wall_s": wall_s,
            "started_at": frames[0].started_at,
            "settings": chain.pair.settings,
            "timings": timings,
        }
    )
