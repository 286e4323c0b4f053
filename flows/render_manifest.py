"""The ``render_manifest`` flow: every pair of a manifest rendered in its own task."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.runtime import flow_run

from flows.executors import cluster_has_gpus, dask_gpu_annotation, task_runner
from tasks.manifest import Pair, manifest_name
from tasks.render import build_gallery_task, load_manifest, render_pair, select_pairs
from tasks.report import artifact_key, markdown_report, row_problems, summarise, table_rows

__all__ = ["progress_listeners", "render_manifest", "render_pairs"]

# Called as (finished, total, outcome) whenever a pair ends: the CLI's progress bar listens here.
progress_listeners: list[Callable[[int, int, dict[str, Any]], None]] = []

for _name in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "httpx", "werkzeug"):
    logging.getLogger(_name).setLevel(logging.WARNING)  # no per-request logs from storage libraries


def _run_name() -> str:
    return f"render-{manifest_name(str(flow_run.parameters.get('manifest', 'manifest')))}"


@flow(name="render-manifest", flow_run_name=_run_name)
def render_manifest(
    manifest: str,
    out: str = "renders",
    defaults: dict[str, Any] | None = None,
    force: bool = False,
    log_every: int = 50,
    timeout_s: float | None = None,
    executor: str = "local",
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
    """
    start = time.perf_counter()
    logger = get_run_logger()
    parsed = load_manifest(manifest, defaults)
    for error in parsed.errors:
        logger.error("%s: %s", parsed.uri, error)
    todo, skipped = select_pairs(parsed.pairs, out, force)
    logger.info(
        "%d pairs: %d to render, %d finished already, %d bad rows",
        len(parsed.pairs) + len(row_problems(parsed)),
        len(todo),
        len(skipped),
        len(row_problems(parsed)),
    )
    key = artifact_key(parsed)
    renders = render_pairs.with_options(task_runner=task_runner(executor), flow_run_name=f"render-pairs-{key}")
    outcomes = renders(todo, out, log_every, timeout_s, cluster_has_gpus(executor), key) if todo else []
    gallery = build_gallery_task(out, manifest, defaults)
    summary = {**summarise(parsed, out, outcomes, skipped, time.perf_counter() - start), "gallery": gallery}
    create_table_artifact(table_rows(summary["pairs"]), key=f"{key}-pairs", description=f"Pairs of {manifest}")
    create_markdown_artifact(markdown_report(summary), key=f"{key}-report", description=f"Run of {manifest}")
    logger.info(
        "rendered %(rendered)d, skipped %(skipped)d, failed %(failed)d in %(total_s).1f s; outputs in %(out)s", summary
    )
    return summary


@flow(name="render-pairs", validate_parameters=False)
def render_pairs(
    pairs: list[Pair], out: str, log_every: int, timeout_s: float | None, gpu_resources: bool, key: str
) -> list[dict[str, Any]]:
    """Fan the pairs out to render tasks on this flow's task runner; one GPU each where workers have GPUs."""
    with dask_gpu_annotation() if gpu_resources else contextlib.nullcontext():
        futures = render_pair.with_options(timeout_seconds=timeout_s).map(
            pairs, out=unmapped(out), log_every=unmapped(log_every)
        )
    return _collect(dict(zip(futures, pairs, strict=True)), key)


def _collect(futures: dict[Any, Pair], key: str) -> list[dict[str, Any]]:
    """Wait for the render tasks, updating the progress artifact (and listeners) as each ends."""
    artifact = create_progress_artifact(0.0, key=key, description="pairs rendered")
    outcomes = []
    for done, future in enumerate(as_completed(list(futures)), start=1):
        pair = futures[future]
        try:
            outcomes.append({"status": "rendered", **future.result()})
        except Exception as exc:
            outcomes.append({"status": "failed", "pair_id": pair.pair_id, "row": pair.row, "reason": str(exc)})
        update_progress_artifact(artifact, 100 * done / len(futures))
        for listener in progress_listeners:
            listener(done, len(futures), outcomes[-1])
    return outcomes
