"""The ``render_manifest`` flow: every pair of a manifest rendered in its own task."""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
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
from prefect.states import Cancelled, Crashed, Failed, State
from prefect.utilities.urls import url_for

from flows.executors import cluster_has_gpus, dask_gpu_annotation, task_runner
from flows.signals import stop_requests
from tasks.manifest.read import Pair, manifest_name
from tasks.render import (
    build_gallery_task,
    check_output,
    load_manifest,
    render_batch,
    render_chains,
    render_pair,
    select_pairs,
)
from tasks.runs import progress, stopping
from tasks.runs.failures import failure_of
from tasks.runs.links import Links, md_code, md_link
from tasks.runs.options import RunOptions
from tasks.runs.pairs import batches
from tasks.runs.records import GalleryResult, Outcome, RunSummary
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
from tasks.storage.records import RUN_STATUSES, Status

__all__ = ["render_manifest", "render_pairs", "verdict"]

F = TypeVar("F", bound=Callable[..., Any])


def _with_run_options(fn: F) -> F:
    """``fn(manifest, defaults=None, **options)`` with one keyword parameter per ``RunOptions`` field in its
    signature and docstring: Prefect reads a flow's parameters from them (deployments, the UI's form)."""
    signature = inspect.signature(fn)
    fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    knobs = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info.default, annotation=info.annotation)
        for name, info in RunOptions.model_fields.items()
    ]
    fn.__signature__ = signature.replace(parameters=[*fixed, *knobs])  # type: ignore[attr-defined]
    fn.__doc__ = (fn.__doc__ or "") + "".join(
        f"\n        {name}: {info.description}" for name, info in RunOptions.model_fields.items()
    )
    return fn


def _run_name() -> str:
    return f"render-{manifest_name(str(flow_run.parameters.get('manifest', 'manifest')))}"


def verdict(statuses: list[Status], data: Any) -> Any:
    """``data`` as the run's end, in the state that says how it went (the Prefect UI's runs list shows it):
    Completed (``data`` itself) when nothing failed; Failed when something failed and nothing rendered (or was
    finished already); Failed named ``Partial`` when some rendered and some failed; Cancelled after a stop request;
    Crashed named ``Preempted`` after a preemption notice (SIGTERM: the machine went away, a rerun resumes).
    The message counts the pairs, e.g. ``3 rendered, 1 failed``."""
    counts = {status: statuses.count(status) for status in RUN_STATUSES}
    message = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status == Status.RENDERED)
    if counts[Status.PREEMPTED] or stopping.preempted():
        return Crashed(name="Preempted", message=f"preempted: {message}", data=data)
    if counts[Status.CANCELLED] or stopping.stop_requested():
        return Cancelled(message=f"stopped: {message}", data=data)
    if not counts[Status.FAILED]:
        return data
    if counts[Status.RENDERED] or counts[Status.SKIPPED]:
        return Failed(name="Partial", message=message, data=data)
    return Failed(message=message, data=data)


@flow(name="render-manifest", flow_run_name=_run_name)
@_with_run_options
def render_manifest(manifest: str, defaults: dict[str, Any] | None = None, **options: Any) -> RunSummary | State:
    """Render every pair of ``manifest`` into ``out``; finished pairs are skipped unless ``force``. The run ends
    Completed, Partial, Failed, Cancelled or Preempted (``verdict``), with the ``RunSummary`` as its result in every
    case. Where the flow runs in its process's main thread (a deployment's run, ``serve``), SIGTERM and Ctrl-C reach
    it as they reach ``stylebatch run`` (``flows.signals``): SIGTERM saves the running renders' checkpoints.

    The run's artifacts: progress (pairs finished), a table of the pairs, a Markdown report and the contact sheets
    as images where a browser can open them (``tasks.runs.links``).

    Args:
        manifest: path or URI of the CSV manifest.
        defaults: settings for the manifest's blank cells (names as in ``nst_core.Settings``)."""
    with _stop_requests():
        return _render_manifest(manifest, defaults, RunOptions.of(**options))


def _stop_requests() -> contextlib.AbstractContextManager[None]:
    """``flows.signals.stop_requests`` where the flow runs in its process's main thread. Prefect's engine installs
    its own SIGTERM handler around each flow run, subflows too: each flow's body installs this one again."""
    return stop_requests() if threading.current_thread() is threading.main_thread() else contextlib.nullcontext()


def _render_manifest(manifest: str, defaults: dict[str, Any] | None, run: RunOptions) -> RunSummary | State:
    start = time.perf_counter()
    logger = get_run_logger()
    run_id = str(flow_run.get_id())
    parsed = load_manifest(manifest, defaults, run.retry_for_s)
    check_output(run)
    for error in parsed.errors:
        logger.error("%s: %s", parsed.uri, error)
    todo, skipped = select_pairs(parsed.pairs, run)
    bad = row_problems(parsed)
    logger.info(
        "%d pairs: %d to render, %d finished already, %d bad rows",
        len(parsed.pairs) + len(bad),
        len(todo),
        len(skipped),
        len(bad),
    )
    labels = {pair.pair_id: pair.label for pair in parsed.pairs}
    progress.emit(progress.RunPlanned(len(todo), labels, bad, flow_run.get_flow_run_ui_url()))
    key = artifact_key(parsed)
    renders = render_pairs.with_options(task_runner=task_runner(run.executor), flow_run_name=f"render-pairs-{key}")
    artifact = create_progress_artifact(0.0 if todo else 100.0, key=key, description="pairs finished")
    outcomes, tasks_url = [], None
    if todo:
        state = renders(todo, run, run_id, cluster_has_gpus(run.executor), artifact, return_state=True)
        outcomes = state.result(raise_on_failure=False)
        if isinstance(outcomes, BaseException):  # the subflow itself broke (not a pair): the run fails with it
            raise outcomes
        tasks_url = url_for("flow-run", obj_id=state.state_details.flow_run_id)
    forget_run(run_id)
    if stopping.stop_requested():
        gallery = GalleryResult(error="not rebuilt: the run was stopped")
    else:
        gallery = build_gallery_task(run.out, parsed.pairs, parsed.uri, row_problems(parsed))
    summary = summarise(parsed, run.out, outcomes, skipped, time.perf_counter() - start)
    summary = summary.model_copy(update={"gallery": gallery})
    _publish(summary, key, Links.of(run), tasks_url)
    logger.info("%s; outputs in %s", summary.totals(), summary.out)
    return verdict([row.status for row in summary.pairs], summary)


def _publish(summary: RunSummary, key: str, links: Links, tasks_url: str | None) -> None:
    """The pairs' table, the report (with a link to the render tasks' run) and the contact sheets (where a
    browser opens them) on this run."""
    manifest = md_code(summary.manifest)
    rows = table_rows(summary.pairs, links)
    create_table_artifact(rows, key=f"{key}-pairs", description=table_description(summary))
    report = markdown_report(summary, links) + (f"\n\n{md_link('Render tasks', tasks_url)}" if tasks_url else "")
    create_markdown_artifact(report, key=f"{key}-report", description=f"Run of {manifest}")
    for n, url in enumerate(sheet_urls(summary.gallery, links), start=1):
        create_image_artifact(url, key=f"{key}-contact-sheet-{n}", description=f"Contact sheet {n} of {manifest}")


@flow(name="render-pairs", validate_parameters=False)
def render_pairs(
    pairs: list[Pair], options: RunOptions, run_id: str, gpu_resources: bool, artifact: UUID
) -> list[Outcome] | State:
    """Fan the pairs out to render tasks on this flow's task runner; one GPU each where workers have GPUs. Ends
    in the state its outcomes call for (``verdict``), with them as its result.

    ``artifact`` is the parent run's progress artifact (the one its UI page shows), updated as pairs end.
    """
    stills, clips = [p for p in pairs if not p.clip], [p for p in pairs if p.clip]
    submitted: dict[PrefectFuture[Any], list[Pair]] = {}
    with _stop_requests(), dask_gpu_annotation() if gpu_resources else contextlib.nullcontext():
        if options.batch_size > 1:  # pairs of one batch key together (tasks.runs.pairs.batches)
            groups = batches(stills, options.batch_size)
            futures = render_batch.map(groups, options=unmapped(options), run_id=unmapped(run_id)) if groups else []
        else:
            groups = [[pair] for pair in stills]
            futures = render_pair.map(stills, options=unmapped(options), run_id=unmapped(run_id)) if stills else []
        submitted |= dict(zip(futures, groups, strict=True))
        if clips:  # chains of frames; frame t of up to batch_size chains together
            chains = batches(clips, options.batch_size)
            futures = render_chains.map(chains, options=unmapped(options), run_id=unmapped(run_id))
            submitted |= dict(zip(futures, chains, strict=True))
        outcomes = _collect(submitted, artifact)
    return verdict([outcome.status for outcome in outcomes], outcomes)


def _collect(futures: dict[PrefectFuture[Any], list[Pair]], artifact: UUID) -> list[Outcome]:
    """Wait for the render tasks, updating the progress artifact as each ends; after Ctrl-C, start no more."""
    outcomes: list[Outcome] = []
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


def _outcomes(future: PrefectFuture[Any], pairs: list[Pair]) -> list[Outcome]:
    """What a render task returned for its pairs (a failed task's outcomes are its Failed state's data)."""
    if future.wrapped_future.cancelled():
        if stopping.preempted():
            return [_ended(pair, Status.PREEMPTED, "not started (SIGTERM)") for pair in pairs]
        return [_ended(pair, Status.CANCELLED, "not started (Ctrl-C)") for pair in pairs]
    try:
        outcome = future.result(raise_on_failure=False)
    except Exception as exc:  # the task could not run at all (a worker died, the API went away)
        outcome = exc
    if isinstance(outcome, Outcome | list):
        return outcome if isinstance(outcome, list) else [outcome]
    reason = (
        failure_of(outcome).reason if isinstance(outcome, BaseException) else f"the render task ended with {outcome!r}"
    )
    return [_ended(pair, Status.FAILED, reason) for pair in pairs]


def _ended(pair: Pair, status: Status, reason: str) -> Outcome:
    return Outcome(pair_id=pair.pair_id, row=pair.row, status=status, reason=reason)
