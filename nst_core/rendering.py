"""Gatys et al.'s optimisation: render content images in the style of one or more images, alone or in batches.

``render_batch`` optimises jobs that share ``batch_key`` and tensor shapes together on one device
(``batch``): one forward and backward pass through the network for every image that asks for an
evaluation, and per image everything else: targets, loss weights, learning rate, optimiser state,
loss log. ``render`` is a batch of one. Levels: see ``levels``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from PIL import Image

from nst_core.batch import Batch, Track
from nst_core.checks import check_sizes
from nst_core.device import pick_device, pick_precision
from nst_core.errors import InputError
from nst_core.fastpath import prepare_network
from nst_core.images import as_rgb, load_image, long_side_size
from nst_core.results import BatchJob, ImageInput, RenderResult, StepInfo, Timings
from nst_core.settings import Settings

__all__ = [
    "PER_IMAGE",
    "BatchJob",
    "ImageInput",
    "RenderResult",
    "StepInfo",
    "Timings",
    "batch_key",
    "render",
    "render_batch",
]


# Settings that each image of a batch may have its own: they change its targets, loss or optimiser
# state, not the network's passes. Every other setting (the network, precision, device, memory format,
# any setting added later) must be the same across a batch.
PER_IMAGE = frozenset(
    {
        "content_layer_weights",
        "style_layer_weights",
        "content_weight",
        "style_weight",
        "tv_weight",
        "tv_norm",
        "style_weights",
        "style_scale",
        "init",
        "lr",
        "lr_schedule",
        "preserve_color",
        "seed",
        "snapshot_every",
        "max_pixels",
    }
)
_LEVELS = frozenset({"image_size", "start_size", "level_iterations", "iterations"})  # as Settings.levels()


def batch_key(settings: Settings) -> tuple:
    """What renders must share to be optimised as one batch: every setting but those in
    ``PER_IMAGE``, i.e. the network (backbone, weights, pooling, normalization, layers), every
    level's size and iterations, the optimiser, the device, precision and memory format."""
    shared = settings.model_dump(mode="json", exclude=PER_IMAGE | _LEVELS)
    return (json.dumps(shared, sort_keys=True), tuple(settings.levels()))


def render(
    content: ImageInput,
    styles: Sequence[ImageInput],
    settings: Settings | None = None,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
) -> RenderResult:
    """Optimise an image's pixels to match ``content``'s features and ``styles``' Gram matrices.

    Raises:
        InputError: an image is missing, unreadable, or too small for the chosen layers.
        SettingsError: settings that only the inputs can rule out (blend weights, device).
        WeightsNotFoundError, WeightsError: the backbone's weights are missing or do not fit.
        OptimisationError: the loss became infinite or NaN.
    """
    job = BatchJob(content, styles, settings or Settings())
    [result] = render_batch([job], on_step=None if on_step is None else lambda _, step: on_step(step))
    if isinstance(result, Exception):
        raise result
    return result


def render_batch(
    jobs: Sequence[BatchJob], *, on_step: Callable[[int, StepInfo], None] | None = None
) -> list[RenderResult | Exception]:
    """Render ``jobs`` together: a result per job, in order, or the exception that job raised (as
    ``render`` would); one job's failure never stops the others. ``on_step(job index, step)``.

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
    for group in _groups(tracks):
        for key, result in _render_group(group, opened_s, on_step).items():
            results[key] = result
    return results


def _track(key: int, job: BatchJob) -> Track:
    """A job's track, its images opened."""
    if not job.styles:
        raise InputError("at least one style image is needed")
    content = _open(job.content, "content image", job.settings)
    styles = [_open(style, "style image", job.settings) for style in job.styles]
    check_sizes(content.size, [style.size for style in styles], job.settings)
    return Track(key, job.settings, content, styles)


def _open(image: ImageInput, role: str, s: Settings) -> Image.Image:
    return load_image(image, role, max_pixels=s.max_pixels) if isinstance(image, str) else as_rgb(image, role)


def _groups(tracks: list[Track]) -> list[list[Track]]:
    """Tracks by batch key and by their image's (width, height) at every level, in order of first appearance."""
    groups: dict[tuple, list[Track]] = {}
    for track in tracks:
        shapes = tuple(long_side_size(track.content.size, size) for size, _ in track.s.levels())
        groups.setdefault((batch_key(track.s), shapes), []).append(track)
    return list(groups.values())


def _render_group(
    tracks: list[Track], opened_s: float, on_step: Callable[[int, StepInfo], None] | None
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
    batch = Batch(net, s, device, precision, on_step)
    setup_s = opened_s + time.perf_counter() - start
    optimise_s = batch.run(tracks)
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
