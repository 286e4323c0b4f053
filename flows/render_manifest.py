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
from tasks.manifest import Manifest, Pair
from tasks.render import build_gallery_task, load_manifest, render_pair, select_pairs
from tasks.storage import pair_folder

__all__ = ["progress_listeners", "render_manifest", "render_pairs"]

# Called as (finished, total, outcome) whenever a pair ends: the CLI's progress bar listens here.
progress_listeners: list[Callable[[int, int, dict[str, Any]], None]] = []

for _name in ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3", "httpx", "werkzeug"):
    logging.getLogger(_name).setLevel(logging.WARNING)  # no per-request logs from storage libraries


def _run_name() -> str:
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    return f"render-{Manifest(manifest, [], []).name}"


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
        len(parsed.pairs) + len(_row_problems(parsed)),
        len(todo),
        len(skipped),
        len(_row_problems(parsed)),
    )
    key = _progress_key(parsed)
    renders = render_pairs.with_options(task_runner=task_runner(executor), flow_run_name=f"render-pairs-{key}")
    outcomes = renders(todo, out, log_every, timeout_s, cluster_has_gpus(executor), key) if todo else []
    gallery = build_gallery_task(out, manifest, defaults)
    summary = {**_summary(parsed, out, outcomes, skipped, time.perf_counter() - start), "gallery": gallery}
    create_table_artifact(_linked(summary["pairs"]), key=f"{key}-pairs", description=f"Pairs of {manifest}")
    create_markdown_artifact(_report(summary), key=f"{key}-report", description=f"Run of {manifest}")
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


def _summary(
    parsed: Manifest, out: str, outcomes: list[dict[str, Any]], skipped: list[Pair], total_s: float
) -> dict[str, Any]:
    by_id = {p.pair_id: p for p in parsed.pairs}
    rows = [_row(by_id[o["pair_id"]], out, o) for o in outcomes]
    rows += [_row(p, out, {"status": "skipped"}) for p in skipped]
    rows += [
        {"id": "", "row": row, "content": "", "style": "", "status": "failed", "reason": reason}
        for row, reason in _row_problems(parsed).items()
    ]
    rows.sort(key=lambda r: r["row"])
    count = {s: sum(r["status"] == s for r in rows) for s in ("rendered", "skipped", "failed")}
    return {"manifest": parsed.uri, "out": out, **count, "total_s": total_s, "pairs": rows}


def _row(pair: Pair, out: str, outcome: dict[str, Any]) -> dict[str, Any]:
    final = outcome.get("final", {})
    return {
        "id": pair.pair_id,
        "row": pair.row,
        "content": pair.content,
        "style": "|".join(pair.styles),
        "status": outcome["status"],
        "reason": outcome.get("reason", ""),
        **{f"{term}_loss": final.get(term) for term in ("content", "style", "tv", "total")},
        "time_s": outcome.get("wall_s"),
        "output": f"{pair_folder(out, pair.pair_id)}/result.png",
    }


def _progress_key(parsed: Manifest) -> str:
    return "render-" + "".join(c if c.isalnum() else "-" for c in parsed.name.lower()).strip("-")


def _linked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows whose output is a Markdown link (the UI renders it) when the result exists."""
    return [{**r, "output": f"[result.png]({r['output']})" if r["status"] != "failed" else ""} for r in rows]


def _report(summary: dict[str, Any]) -> str:
    gallery = summary["gallery"]
    lines = [
        f"# {summary['manifest']}",
        f"**{summary['rendered']}** rendered, **{summary['skipped']}** skipped, **{summary['failed']}** failed "
        f"in {summary['total_s']:.1f} s.",
        f"- Outputs: `{summary['out']}`",
        f"- Gallery: [{gallery['index']}]({gallery['index']}), {gallery['contents']} contents x "
        f"{gallery['styles']} styles",
    ]
    if gallery["contact_sheet"]:
        lines.append(f"\n![contact sheet]({gallery['contact_sheet']})")
    failed = [r for r in summary["pairs"] if r["status"] == "failed"]
    lines += ["", "## Failed", *(f"- row {r['row']} {r['id']}: {r['reason']}" for r in failed)] if failed else []
    return "\n".join(lines)


def _row_problems(parsed: Manifest) -> dict[int, str]:
    """Each bad manifest row once, with all of its problems."""
    problems: dict[int, list[str]] = {}
    for error in parsed.errors:
        problems.setdefault(error.row, []).append(f"column {error.column}: {error.reason}")
    return {row: "; ".join(reasons) for row, reasons in problems.items()}
