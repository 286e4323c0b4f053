"""The ``render_manifest`` flow: every pair of a manifest rendered in its own task."""

from __future__ import annotations

import contextlib
import time
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from flows.executors import cluster_has_gpus, dask_gpu_annotation, task_runner
from tasks.manifest.read import Pair, manifest_name
from tasks.render import build_gallery_task, check_output, load_manifest, render_batch, render_pair, select_pairs
from tasks.runs import progress, stopping
from tasks.runs.failures import failure_of
from tasks.runs.links import Links, md_code
from tasks.runs.options import BATCH_SIZE, EXECUTOR, LINK_EXPIRY_S, LOG_EVERY, OUT, RETRY_FOR_S, RunOptions
from tasks.runs.pairs import batches
from tasks.runs.report import (
    artifact_key,
    markdown_report,
    row_problems,
    sheet_urls,
    summarise,
    table_description,
    table_rows,
)
from tasks.storage.inputs import forget_run

__all__ = ["render_manifest", "render_pairs"]


def _run_name() -> str:
    return f"render-{manifest_name(str(flow_run.parameters.get('manifest', 'manifest')))}"


@flow(name="render-manifest", flow_run_name=_run_name)
def render_manifest(
    manifest: str,
    out: str = OUT,
    defaults: dict[str, Any] | None = None,
    force: bool = False,
    log_every: int = LOG_EVERY,
    timeout_s: float | None = None,
    executor: str = EXECUTOR,
    retry_for_s: float = RETRY_FOR_S,
    public_url: str | None = None,
    link_expiry_s: int = LINK_EXPIRY_S,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Render every pair of ``manifest`` into ``out``; finished pairs are skipped unless ``force``.

    Args:
        manifest: path or URI of the CSV manifest.
        out: output root, a path or URI (``s3://bucket/prefix``).
        defaults: settings for the manifest's blank cells (names as in ``nst_core.Settings``).
        force: render pairs again even if finished.
        log_every: log the loss terms every N iterations.
        timeout_s: give up on a pair after this many seconds.
        executor: ``local``, ``dask-local`` or ``tcp://host:port`` (see ``flows.executors``).
        retry_for_s: retry transient storage and network errors for up to this many seconds.
        public_url: where ``out`` is served over http(s): the artifacts' links are this + the path under ``out``.
        link_expiry_s: without ``public_url``, links to S3 outputs are presigned for this long (at most 7 days).
        batch_size: render up to this many pairs of one ``nst_core.batch_key`` together on one device.

    The run's artifacts: progress (pairs finished), a table of the pairs, a Markdown report and the contact sheets
    as images where a browser can open them (``tasks.runs.links``).
    """
    start = time.perf_counter()
    logger = get_run_logger()
    links = Links(out, public_url, link_expiry_s)
    options = RunOptions(out, str(flow_run.get_id()), timeout_s, retry_for_s, force, batch_size)
    parsed = load_manifest(manifest, defaults, retry_for_s)
    check_output(options)
    for error in parsed.errors:
        logger.error("%s: %s", parsed.uri, error)
    todo, skipped = select_pairs(parsed.pairs, out, force)
    bad = row_problems(parsed)
    logger.info(
        "%d pairs: %d to render, %d finished already, %d bad rows",
        len(parsed.pairs) + len(bad),
        len(todo),
        len(skipped),
        len(bad),
    )
    progress.emit(progress.RunPlanned(len(todo), bad, flow_run.get_flow_run_ui_url()))
    key = artifact_key(parsed)
    renders = render_pairs.with_options(task_runner=task_runner(executor), flow_run_name=f"render-pairs-{key}")
    artifact = create_progress_artifact(0.0 if todo else 100.0, key=key, description="pairs finished")
    outcomes = renders(todo, options, log_every, cluster_has_gpus(executor), artifact) if todo else []
    forget_run(options.run)
    if stopping.stop_requested():
        gallery = {"error": "not rebuilt: the run was stopped"}
    else:
        gallery = build_gallery_task(out, parsed.pairs, parsed.uri)
    summary = {**summarise(parsed, out, outcomes, skipped, time.perf_counter() - start), "gallery": gallery}
    _publish(summary, key, links)
    logger.info(
        "rendered %(rendered)d, skipped %(skipped)d, failed %(failed)d, cancelled %(cancelled)d in %(total_s).1f s; "
        "outputs in %(out)s",
        summary,
    )
    return summary


def _publish(summary: dict[str, Any], key: str, links: Links) -> None:
    """The pairs' table, the report and the contact sheets (where a browser opens them) on this run."""
    manifest = md_code(summary["manifest"])
    rows = table_rows(summary["pairs"], links)
    create_table_artifact(rows, key=f"{key}-pairs", description=table_description(summary))
    create_markdown_artifact(markdown_report(summary, links), key=f"{key}-report", description=f"Run of {manifest}")
    for n, url in enumerate(sheet_urls(summary["gallery"], links), start=1):
        create_image_artifact(url, key=f"{key}-contact-sheet-{n}", description=f"Contact sheet {n} of {manifest}")


@flow(name="render-pairs", validate_parameters=False)
def render_pairs(
    pairs: list[Pair], options: RunOptions, log_every: int, gpu_resources: bool, artifact: UUID
) -> list[dict[str, Any]]:
    """Fan the pairs out to render tasks on this flow's task runner; one GPU each where workers have GPUs.

    ``artifact`` is the parent run's progress artifact (the one its UI page shows), updated as pairs end.
    """
    with dask_gpu_annotation() if gpu_resources else contextlib.nullcontext():
        if options.batch_size > 1:  # pairs of one batch key together (tasks.runs.pairs.batches)
            groups = batches(pairs, options.batch_size)
            futures = render_batch.map(groups, options=unmapped(options), log_every=unmapped(log_every))
        else:
            groups = [[pair] for pair in pairs]
            futures = render_pair.map(pairs, options=unmapped(options), log_every=unmapped(log_every))
    return _collect(dict(zip(futures, groups, strict=True)), artifact)


def _collect(futures: dict[PrefectFuture[Any], list[Pair]], artifact: UUID) -> list[dict[str, Any]]:
    """Wait for the render tasks, updating the progress artifact as each ends; after Ctrl-C, start no more."""
    outcomes: list[dict[str, Any]] = []
    total = sum(len(pairs) for pairs in futures.values())
    for future in as_completed(list(futures)):
        if stopping.stop_requested():
            for other in futures:
                other.wrapped_future.cancel()  # only those not started yet; running renders stop themselves
        for outcome in _outcomes(future, futures[future]):
            outcomes.append(outcome)
            progress.emit(progress.PairEnded(outcome))
        update_progress_artifact(artifact, 100 * len(outcomes) / total)
    return outcomes


def _outcomes(future: PrefectFuture[Any], pairs: list[Pair]) -> list[dict[str, Any]]:
    """What a render task returned for its pairs (a failed task's outcomes are its Failed state's data)."""
    bases = [{"pair_id": pair.pair_id, "row": pair.row} for pair in pairs]
    if future.wrapped_future.cancelled():
        return [{**base, "status": "cancelled", "reason": "not started (Ctrl-C)"} for base in bases]
    try:
        outcome = future.result(raise_on_failure=False)
    except Exception as exc:  # the task could not run at all (a worker died, the API went away)
        outcome = exc
    if isinstance(outcome, dict | list):
        return outcome if isinstance(outcome, list) else [outcome]
    reason = (
        failure_of(outcome).reason if isinstance(outcome, BaseException) else f"the render task ended with {outcome!r}"
    )
    return [{**base, "status": "failed", "reason": reason} for base in bases]
