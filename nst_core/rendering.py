"""Gatys et al.'s optimisation: render content images in the style of one or more images, alone or in batches.

``render_batch`` optimises jobs that share ``batch_key`` and tensor shapes together on one device
(``batch``): one forward and backward pass through the network for every image that asks for an
evaluation, and per image everything else: targets, loss weights, learning rate, optimiser state,
loss log. ``render`` is a batch of one. Levels: see ``levels``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from PIL import Image

from nst_core.batch import Batch, OnSnapshot, Track
from nst_core.checkpoints import Checkpoints, TrackState
from nst_core.checks import check_sizes
from nst_core.device import pick_device, pick_precision
from nst_core.errors import InputError
from nst_core.images import as_rgb, load_image, long_side_size
from nst_core.network import prepare_network
from nst_core.regions import Masks
from nst_core.results import BatchJob, ImageInput, RenderResult, StepInfo, Timings
from nst_core.settings import Settings

T = TypeVar("T")

__all__ = [
    "BatchJob",
    "ImageInput",
    "RenderResult",
    "StepInfo",
    "Timings",
    "batch_key",
    "group_batches",
    "render",
    "render_batch",
]


def batch_key(settings: Settings) -> str:
    """What renders must share to be optimised as one batch: every setting but those each image may have
    its own (``Settings.names(per_image=True)``), i.e. the network (backbone, weights, pooling,
    normalization, layers), every level's size and iterations, the optimiser, the device, precision
    and the speed switches."""
    shared = settings.model_dump(mode="json", exclude=Settings.names(per_image=True))
    return json.dumps(shared, sort_keys=True)


def group_batches(items: Iterable[T], key: Callable[[T], Hashable], size: int | None = None) -> list[list[T]]:
    """``items`` grouped by ``key``, in order of first appearance; a group of ``size`` is full, and the next
    item of its key starts another (so a group is ordered by its first item)."""
    filling: dict[Hashable, list[T]] = {}
    groups: list[list[T]] = []
    for item in items:
        k = key(item)
        if k not in filling or len(filling[k]) == size:
            filling[k] = []
            groups.append(filling[k])
        filling[k].append(item)
    return groups


def render(
    content: ImageInput,
    styles: Sequence[ImageInput],
    settings: Settings | None = None,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_snapshot: Callable[[int, Image.Image], None] | None = None,
    style_masks: Sequence[ImageInput] = (),
    style_image_masks: Sequence[ImageInput | None] = (),
) -> RenderResult:
    """Optimise an image's pixels to match ``content``'s features and ``styles``' Gram matrices (each style's
    where its mask in ``style_masks`` is white, from the part of its image that ``style_image_masks`` selects:
    ``nst_core.regions``).

    ``on_step(step)`` after each iteration; ``on_snapshot(iteration, image)`` as each snapshot is taken
    (``settings.snapshot_every``); an exception raised by either ends the render.

    Raises:
        InputError: an image is missing, unreadable, or too small for the chosen layers.
        SettingsError: settings that only the inputs can rule out (blend weights, device).
        WeightsNotFoundError, WeightsError: the backbone's weights are missing or do not fit.
        OptimisationError: the loss became infinite or NaN.
    """
    job = BatchJob(content, styles, settings or Settings(), None, style_masks, style_image_masks)
    [result] = render_batch(
        [job],
        on_step=None if on_step is None else lambda _, step: on_step(step),
        on_snapshot=None if on_snapshot is None else lambda _, iteration, image: on_snapshot(iteration, image),
    )
    if isinstance(result, Exception):
        raise result
    return result


def render_batch(
    jobs: Sequence[BatchJob],
    *,
    on_step: Callable[[int, StepInfo], None] | None = None,
    on_snapshot: OnSnapshot | None = None,
    checkpoints: Checkpoints | None = None,
    resume: dict[int, TrackState] | None = None,
) -> list[RenderResult | Exception]:
    """Render ``jobs`` together: a result per job, in order, or the exception that job raised (as
    ``render`` would); one job's failure never stops the others. ``on_step(job index, step)``,
    ``on_snapshot(job index, iteration, image)``. ``checkpoints``: when to take the images' states and where
    they go; ``resume``: states to go on from (by job index), as ``checkpoints.save`` got them: the render then
    ends exactly as it would have without the interruption (on the same device, torch and inputs, in a batch
    of the same jobs). Jobs resumed from different iterations render in sub-batches of their own.

    Jobs are optimised in sub-batches of one ``batch_key`` and one tensor shape at every level
    (different aspect ratios are never padded together), one sub-batch after another.
    """
    start = time.perf_counter()
    results: list[RenderResult | Exception | None] = [None] * len(jobs)
    tracks = []
    for key, job in enumerate(jobs):
        try:
            tracks.append(_track(key, job))
        except Exception as exc:
            results[key] = exc
    opened_s = time.perf_counter() - start
    resume = resume or {}

    def key(track: Track) -> tuple:  # images resumed from another iteration cannot step with these
        state = resume.get(track.key)
        return _shape_key(track), None if state is None else (state.level, state.iteration)

    for group in group_batches(tracks, key):
        states = {track.key: resume[track.key] for track in group if track.key in resume}
        for key, result in _render_group(group, opened_s, on_step, on_snapshot, checkpoints, states).items():
            results[key] = result
    return results


def _track(key: int, job: BatchJob) -> Track:
    """A job's track, its images opened."""
    if not job.styles:
        raise InputError("at least one style image is needed")
    s = job.settings
    content = _open(job.content, "content image", s)
    styles = [_open(style, "style image", s) for style in job.styles]
    check_sizes(content.size, [style.size for style in styles], s)
    if not (job.style_masks or any(job.style_image_masks) or s.keep_mask):
        return Track(key, s, content, styles, job.guide)
    if not all(job.style_masks):
        raise InputError("a style mask is blank: every style needs its mask")
    masks = Masks(
        tuple(_open(mask, "style mask", s) for mask in job.style_masks),
        tuple(None if mask is None else _open(mask, "style image mask", s) for mask in job.style_image_masks),
        None if s.keep_mask is None else _open(job.keep_mask or s.keep_mask, "keep mask", s),
    )
    masks.check(content.size, [style.size for style in styles], s)
    return Track(key, s, content, styles, job.guide, masks)


def _open(image: ImageInput, role: str, s: Settings) -> Image.Image:
    return load_image(image, role, max_pixels=s.max_pixels) if isinstance(image, str) else as_rgb(image, role)


def _shape_key(track: Track) -> tuple:
    """A track's batch key and its image's (width, height) at every level: what a sub-batch shares."""
    return batch_key(track.s), tuple(long_side_size(track.content.size, size) for size, _ in track.s.levels())


def _render_group(
    tracks: list[Track],
    opened_s: float,
    on_step: Callable[[int, StepInfo], None] | None,
    on_snapshot: OnSnapshot | None,
    checkpoints: Checkpoints | None = None,
    states: dict[int, TrackState] | None = None,
) -> dict[int, RenderResult | Exception]:
    """Render one sub-batch: load its network, optimise, make each track's result or keep its error."""
    start = time.perf_counter()
    s = tracks[0].s
    try:
        device = pick_device(s.device)
        precision = pick_precision(s.precision, device)
        net = prepare_network(s, device, precision)
    except Exception as exc:  # the device, the weights: every job of the batch fails alike
        return {track.key: exc for track in tracks}
    batch = Batch(net, s, device, precision, on_step, on_snapshot, checkpoints)
    setup_s = opened_s + time.perf_counter() - start
    optimise_s = batch.run(tracks, states)
    total = s.total_iterations
    results: dict[int, RenderResult | Exception] = {}
    for track in tracks:
        if track.error is not None:
            results[track.key] = track.error
            continue
        timings = Timings(setup_s, optimise_s, 1000 * optimise_s / total, track.evaluations)
        results[track.key] = RenderResult(
            track.result, track.log, timings, str(device), precision, track.s, track.snapshots
        )
    return results
