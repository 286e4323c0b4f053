"""Prefect tasks of the pipeline: thin wrappers over plain modules."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from nst_core import StepInfo, StorageError
from tasks import progress
from tasks.devices import device_slot
from tasks.failures import failure_of
from tasks.gallery import build_gallery
from tasks.manifest import Manifest, Pair, read_manifest
from tasks.options import LOG_EVERY, RunOptions
from tasks.retries import retry_transient
from tasks.run_pair import run_pair
from tasks.storage import check_writable, finished

__all__ = ["build_gallery_task", "check_output", "load_manifest", "render_pair", "select_pairs"]


@task(cache_policy=NO_CACHE)
def load_manifest(manifest: str, defaults: dict[str, Any] | None) -> Manifest:
    return read_manifest(manifest, defaults)


@task(cache_policy=NO_CACHE)
def check_output(options: RunOptions) -> None:
    """Fail the run before any render if the output root cannot be written."""
    retry_transient(lambda: check_writable(options.out), options.retry_for_s)


@task(cache_policy=NO_CACHE)
def select_pairs(pairs: list[Pair], out: str, force: bool) -> tuple[list[Pair], list[Pair]]:
    """(to render, already finished): finished pairs are skipped unless ``force``; no model is loaded.

    A pair whose marker cannot be read now is handed to its render task, which reports why.
    """
    finished_pairs = [] if force else [p for p in pairs if _finished(out, p)]
    return [p for p in pairs if p not in finished_pairs], finished_pairs


def _finished(out: str, pair: Pair) -> bool:
    try:
        return finished(out, pair.pair_id, pair.fingerprint)
    except StorageError:
        return False


# No Prefect retries: storage errors are retried where they happen (tasks.retries), so a flaky write
# never renders a pair again, and a pair's own failure is its outcome, not an exception.
@task(task_run_name="render-{pair.pair_id}", cache_policy=NO_CACHE)
def render_pair(pair: Pair, options: RunOptions, log_every: int = LOG_EVERY) -> dict[str, Any] | State:
    """Render one pair on a free GPU (or the CPU); a failed pair ends as a Failed task run with its reason."""
    logger = get_run_logger()

    def on_step(step: StepInfo) -> None:
        progress.emit(progress.PairStep(pair.pair_id, step))
        if step.iteration == 1 or step.iteration % log_every == 0 or step.iteration == pair.settings.total_iterations:
            logger.info(
                "iteration %d/%d: content %.4g style %.4g tv %.4g total %.4g (%.1f s)",
                step.iteration,
                pair.settings.total_iterations,
                step.content,
                step.style,
                step.tv,
                step.total,
                step.elapsed_s,
            )

    with device_slot() as device:
        progress.emit(progress.PairStarted(pair.pair_id, pair.row, pair.settings.total_iterations))
        outcome = run_pair(pair, options, device, on_step)
    if outcome["status"] == "failed":  # the UI shows the reason as the state's message, the traceback as a log
        logger.error("%s\n%s", outcome["reason"], outcome["traceback"])
        return Failed(message=outcome["reason"], data={k: v for k, v in outcome.items() if k != "traceback"})
    return outcome


@task(name="build-gallery", cache_policy=NO_CACHE)
def build_gallery_task(out: str, pairs: list[Pair]) -> dict[str, Any]:
    """Write ``<out>/gallery/`` of the run's pairs; say why not instead of failing the run."""
    try:
        return build_gallery(out, pairs)
    except Exception as exc:  # the store went away, a bug: the summary and artifacts still matter more
        get_run_logger().warning("the gallery could not be built: %s", failure_of(exc).reason)
        return {"error": failure_of(exc).reason}
