"""The pipeline's Prefect tasks: thin wrappers over the plain modules of ``tasks``' wings (the only module of
``tasks`` that imports Prefect). The flow (``flows.render_manifest``) composes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from nst_core import StepInfo
from tasks.gallery.build import build_gallery
from tasks.manifest.read import Manifest, Pair
from tasks.runs import progress
from tasks.runs.chains import run_chains
from tasks.runs.checks import check_output_root, open_manifest
from tasks.runs.devices import device_slot
from tasks.runs.failures import failure_of
from tasks.runs.options import RunOptions
from tasks.runs.pairs import run_batch, unfinished
from tasks.runs.records import GalleryResult, Outcome
from tasks.runs.report import step_text
from tasks.storage.records import Status

__all__ = [
    "build_gallery_task",
    "check_output",
    "load_manifest",
    "render_batch",
    "render_chains",
    "render_pair",
    "select_pairs",
]


@task(cache_policy=NO_CACHE)
def load_manifest(manifest: str, defaults: dict[str, Any] | None, retry_for_s: float) -> Manifest:
    """The parsed manifest; the run fails if no row of it can render (a required column missing, no rows)."""
    return open_manifest(manifest, defaults, retry_for_s)


@task(cache_policy=NO_CACHE)
def check_output(options: RunOptions) -> None:
    """Fail the run before any render if the output root cannot be written."""
    check_output_root(options.out, options.retry_for_s)


@task(cache_policy=NO_CACHE)
def select_pairs(pairs: list[Pair], options: RunOptions) -> tuple[list[Pair], list[Pair]]:
    """(to render, finished already): no model is loaded for a finished pair."""
    return unfinished(pairs, options)


# No Prefect retries: storage errors are retried where they happen (tasks.storage.retries), so a flaky write
# never renders a pair again, and a pair's own failure is its outcome, not an exception.
@task(task_run_name="render {pair.label}", cache_policy=NO_CACHE)
def render_pair(pair: Pair, options: RunOptions, run_id: str) -> Outcome | State:
    """Render one pair on a free GPU (or the CPU); a failed pair ends as a Failed task run with its reason."""
    [outcome] = _render_on_a_device([pair], options, run_id)
    if outcome.status == Status.FAILED:  # the UI shows the reason as the state's message, the traceback as a log
        return Failed(message=outcome.reason, data=outcome)
    return outcome


def _batch_name(parameters: dict[str, Any]) -> str:
    pairs = parameters["pairs"]
    return f"render {pairs[0].label} +{len(pairs) - 1}"


@task(task_run_name=_batch_name, cache_policy=NO_CACHE)
def render_batch(pairs: list[Pair], options: RunOptions, run_id: str) -> list[Outcome] | State:
    """Render pairs of one batch key together on a free GPU (or the CPU): one outcome per pair, as
    ``render_pair``'s; a batch with a failed pair ends as a Failed task run naming it."""
    return _ended_batch(pairs, _render_on_a_device(pairs, options, run_id))


def _chains_name(parameters: dict[str, Any]) -> str:
    pairs = parameters["pairs"]
    return f"render clip {pairs[0].label}" + (f" +{len(pairs) - 1}" if len(pairs) > 1 else "")


@task(task_run_name=_chains_name, cache_policy=NO_CACHE)
def render_chains(pairs: list[Pair], options: RunOptions, run_id: str) -> list[Outcome] | State:
    """Render clip rows of one batch key on a free GPU (or the CPU), frame t of each together
    (``tasks.runs.chains``): one outcome per clip; with a failed clip, a Failed task run naming it."""
    return _ended_batch(pairs, _render_on_a_device(pairs, options, run_id, clips=True))


def _ended_batch(pairs: list[Pair], outcomes: list[Outcome]) -> list[Outcome] | State:
    failed = [f"{outcome.pair_id}: {outcome.reason}" for outcome in outcomes if outcome.status == Status.FAILED]
    if failed:
        return Failed(message=f"{len(failed)} of {len(pairs)} pairs failed; {'; '.join(failed)}", data=outcomes)
    return outcomes


def _render_on_a_device(pairs: list[Pair], options: RunOptions, run_id: str, clips: bool = False) -> list[Outcome]:
    """``run_batch`` (``run_chains``: ``clips``) on a free GPU (or the CPU), with progress events and the loss
    terms in the task's log; the outcomes without their tracebacks (state data stays small: the log and the
    failure records have them)."""
    logger = get_run_logger()
    who = {pair.pair_id: f"{pair.pair_id}: " if len(pairs) > 1 else "" for pair in pairs}  # a batch's log names them
    totals = {index: pair.settings.total_iterations for index, pair in enumerate(pairs)}
    steps = [
        _step_logger(pair, options.log_every, logger, who[pair.pair_id], totals, i) for i, pair in enumerate(pairs)
    ]

    def started(index: int, iterations: int) -> None:
        pair, totals[index] = pairs[index], iterations
        progress.emit(progress.PairStarted(pair.pair_id, pair.label, pair.row, iterations))

    with device_slot() as device:
        on_step = lambda index, step: steps[index](step)  # noqa: E731
        if clips:
            outcomes = run_chains(pairs, options, device, on_step, run_id, on_start=started)
        else:
            for index in range(len(pairs)):
                started(index, totals[index])
            outcomes = run_batch(pairs, options, device, on_step, run_id)
    for outcome in outcomes:
        if outcome.status == Status.FAILED:
            logger.error("%s%s\n%s", who[outcome.pair_id], outcome.reason, outcome.traceback)
    return [outcome.model_copy(update={"traceback": ""}) for outcome in outcomes]


def _step_logger(
    pair: Pair, log_every: int, logger: Any, prefix: str, totals: dict[int, int], index: int
) -> Callable[[StepInfo], None]:
    """Report ``pair``'s steps as progress events, and its weighted loss terms every ``log_every`` iterations
    (of ``totals[index]``: a clip's, all its frames', is known once its clip is read)."""

    def on_step(step: StepInfo) -> None:
        total = totals[index]
        progress.emit(progress.PairStep(pair.pair_id, step))
        if step.iteration == 1 or step.iteration % log_every == 0 or step.iteration == total:
            text = step_text(step, pair.settings)
            logger.info("%siteration %d/%d: %s (%.1f s)", prefix, step.iteration, total, text, step.elapsed_s)

    return on_step


@task(name="build-gallery", cache_policy=NO_CACHE)
def build_gallery_task(out: str, pairs: list[Pair], manifest: str, problems: dict[int, str]) -> GalleryResult:
    """Write ``<out>/gallery/`` of the run's pairs (``manifest``'s) and bad rows (``problems``); say why not
    instead of failing the run."""
    try:
        return build_gallery(out, pairs, manifest, problems)
    except Exception as exc:  # the store went away, a bug: the summary and artifacts still matter more
        get_run_logger().warning("the gallery could not be built: %s", failure_of(exc).reason)
        return GalleryResult(error=failure_of(exc).reason)
