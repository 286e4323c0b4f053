"""The ``stylebatch`` command: its subcommands. Flags come from the models (``flows.flags``), signals and the
run's thread are ``flows.signals``'s, the terminal is ``flows.console`` (a run's display: ``flows.display``; its
summary: ``flows.summary``).

Commands import torch, torchvision, Prefect and Dask only when they need them, so that ``--help``
answers at once and ``validate`` takes about as long as reading the images.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from importlib.metadata import version
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import click

from flows.console import console, fail, say
from flows.flags import (
    endpoint_option,
    markdown_settings_table,
    run_options,
    setting_options,
    settings_from,
)
from nst_core import NstError
from tasks.runs.options import GALLERY_PORT, RunOptions

if TYPE_CHECKING:
    from tasks.manifest.read import Pair
    from tasks.runs.records import RunSummary

Verbosity = Literal["quiet", "normal", "verbose"]


def defaults_from(values: dict[str, Any]) -> dict[str, Any]:
    """The setting flags given on the command line, validated (they are defaults for blank cells)."""
    try:
        return settings_from(values).model_dump(exclude_unset=True)
    except NstError as exc:
        fail(exc)


def _options(values: dict[str, Any]) -> RunOptions:
    """The ``RunOptions`` among a command's values (each flag was checked as it was parsed)."""
    return RunOptions(**{k: v for k, v in values.items() if k in RunOptions.model_fields})


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("stylebatch"), "--version", prog_name="stylebatch")
def main() -> None:
    """stylebatch: batch neural style transfer."""


@main.command("render-one")
@click.argument("content")
@click.argument("styles", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output image path or URI (.png, .jpg).")
@click.option("--style-masks", default="", help="One mask per style, separated by |: white where that style applies.")
@click.option("--style-image-masks", default="", help="One mask per style image, separated by | (blank: all of it).")
@setting_options
def render_one(
    content: str, styles: tuple[str, ...], output: str, style_masks: str, style_image_masks: str, **values: Any
) -> None:
    """Render CONTENT in the style of STYLE [STYLE...] and write it to --output."""
    from flows.display import render_with_progress
    from nst_core.images import write_image

    masks = {
        name: _entries(cell) for name, cell in (("style_masks", style_masks), ("style_image_masks", style_image_masks))
    }
    try:
        result = render_with_progress(content, list(styles), settings_from(values), **masks)
        write_image(result.image, output)
        for iteration, snapshot in result.snapshots.items():
            write_image(snapshot, _snapshot_path(output, iteration))
    except Exception as exc:
        _fail_render(exc)
    last = result.losses[-1]
    say(
        f"{result.settings.total_iterations} iterations on {result.device} in {result.timings.total_s:.1f} s "
        f"({result.timings.ms_per_iteration:.0f} ms/iteration); final loss {last.total:.4g}"
    )
    click.echo(output)


def _entries(cell: str) -> list[str | None]:
    """A ``|``-separated flag's entries, blank ones as None."""
    return [part.strip() or None for part in cell.split("|")] if cell else []


def _fail_render(exc: Exception) -> NoReturn:
    """Exit 2 with one line for what a render's inputs, settings, weights or device can cause; else re-raise."""
    expected = (
        isinstance(exc, NstError | OSError | ValueError | MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    )
    if not expected:
        raise exc
    from tasks.runs.failures import failure_of

    fail(failure_of(exc).reason)


def _snapshot_path(output: str, iteration: int) -> str:
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}_{iteration:05d}{path.suffix}"))


@main.command("settings")
def settings_table() -> None:
    """Print every setting with its default and meaning, as a Markdown table."""
    click.echo(markdown_settings_table())


@main.command("run")
@click.argument("manifest")
@run_options
@endpoint_option
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Print Prefect's logs and every failure's traceback.")
@setting_options
def run(manifest: str, quiet: bool, verbose: bool, **values: Any) -> None:
    """Render every pair of MANIFEST; setting flags are defaults for the manifest's blank cells.

    Ctrl-C stops the run at the running renders' next iteration and prints the summary (exit code 130); a
    second Ctrl-C, 2 s or more later, exits at once. SIGTERM (a preemption notice) does the same after each
    running render has saved its checkpoint, and exits 75: a rerun resumes them. Exit code 1 if a pair
    failed, 2 if the run could not start.
    """
    from flows.signals import stop_requests
    from flows.summary import print_summary
    from flows.temporary_server import ServerError, prefect_api
    from tasks.runs import stopping
    from tasks.runs.checks import check_output_root, open_manifest

    defaults, options = defaults_from(values), _options(values)
    verbosity: Verbosity = "quiet" if quiet else "verbose" if verbose else "normal"
    with stop_requests():
        try:
            parsed = open_manifest(manifest, defaults, options.retry_for_s)  # before anything starts or is written
            check_output_root(options.out, options.retry_for_s)
            imports = functools.partial(importlib.import_module, "flows.render_manifest")
            with prefect_api(imports, (lambda line: None) if quiet else say) as (_, temporary):
                summary = _run_flow(manifest, parsed.pairs, defaults, options, verbosity, not temporary)
        except (NstError, ServerError) as exc:
            fail(exc)
        except stopping.Stopped as exc:
            fail(f"{exc}: the run had not started", code=stopping.exit_code())
        summary_file = _write_summary(summary, options.retry_for_s)
    print_summary(summary, summary_file)
    sys.exit(stopping.exit_code() or (1 if summary.failed else 0))


def _write_summary(summary: RunSummary, retry_for_s: float) -> str:
    """Where the summary file was written, or why it was not (the summary is printed either way)."""
    from tasks.runs.failures import failure_of
    from tasks.runs.report import write_summary

    try:
        return write_summary(summary, retry_for_s)
    except Exception as exc:  # the store went away; a stop request while waiting to try again
        return f"not written: {failure_of(exc).reason}"


def _run_flow(
    manifest: str, pairs: list[Pair], defaults: dict[str, Any], options: RunOptions, verbosity: Verbosity, ui_url: bool
) -> RunSummary:
    """The flow's summary; its own failure becomes one line (exit 2 for what a user can fix, else 1). ``pairs``:
    the manifest's, as the flow will read them (the display's settings of each pair)."""
    from prefect import tags

    from flows.display import RunDisplay
    from flows.render_manifest import render_manifest
    from flows.signals import in_thread
    from tasks.manifest.read import manifest_name
    from tasks.runs import stopping

    stopping.check()
    flow_args = options.model_dump()
    with RunDisplay(console, verbosity, ui_url, pairs), tags("stylebatch", f"manifest-{manifest_name(manifest)}"):
        try:
            state = in_thread(lambda: render_manifest(manifest, defaults, return_state=True, **flow_args))
            summary = state.result(raise_on_failure=False)  # the summary in every end but the flow's own failure
            if isinstance(summary, BaseException):
                raise summary
            return summary
        except stopping.Stopped:
            raise
        except NstError as exc:  # the output root or the manifest itself cannot be read
            fail(exc)
        except Exception as exc:
            if verbosity == "verbose":
                raise
            from tasks.runs.failures import failure_of

            fail(f"the run failed: {failure_of(exc).reason} (--verbose shows where)", code=1)


@main.command("serve")
@click.argument("manifest")
@click.option("--cron", required=True, help='When to run, in cron syntax (UTC), e.g. "0 2 * * *".')
@run_options
@setting_options
def serve(manifest: str, cron: str, **values: Any) -> None:
    """Render MANIFEST on a schedule from this process (needs a Prefect server: PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    if not (os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()):  # or a profile, prefect.toml, .env
        fail(
            "serve needs a Prefect server for its schedule: start one with `prefect server start` "
            "and set PREFECT_API_URL (embedded mode runs no scheduler)"
        )
    defaults = defaults_from(values)
    from flows.render_manifest import render_manifest
    from tasks.manifest.read import manifest_name

    parameters = {"manifest": manifest, "defaults": defaults, **_options(values).model_dump()}
    render_manifest.serve(
        name=f"serve-{manifest_name(manifest)}", cron=cron, parameters=parameters, tags=["stylebatch", "serve"]
    )


@main.command("gallery")
@click.argument("out")
@click.option("--manifest", help="Show this manifest's pairs, in its order (unrendered ones as pending).")
@click.option("--serve", is_flag=True, help="Then serve OUT over HTTP on 127.0.0.1 until Ctrl-C.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=GALLERY_PORT,
    show_default=True,
    help="Port of --serve (0: a free one).",
)
@endpoint_option
@setting_options
def gallery(out: str, manifest: str | None, serve: bool, port: int, **values: Any) -> None:
    """Build OUT/gallery/ (index.html, pages per pair, content and style, contact sheets) from the results under OUT.

    With --manifest, give the setting flags the run was given: pair ids depend on them (a pair
    rendered with other settings is still shown, with the flags that would match it).

    With --serve, then serve OUT at http://127.0.0.1:PORT/gallery/index.html until Ctrl-C (from another
    machine: ssh -L PORT:127.0.0.1:PORT HOST).
    """
    from tasks.gallery.build import build_gallery
    from tasks.manifest.read import read_manifest
    from tasks.runs.report import row_problems

    try:
        parsed = read_manifest(manifest, defaults_from(values)) if manifest else None
        pairs, problems = (parsed.pairs, row_problems(parsed)) if parsed else (None, None)
        built = build_gallery(out, pairs, manifest, problems)
    except NstError as exc:
        fail(exc)
    say(f"{built.pairs} pairs: {built.contents} contents x {built.styles} styles")
    for note in built.notes:
        console.print(f"note: {note}", style="yellow", highlight=False, markup=False)
    click.echo(built.index)
    if serve:
        _serve_gallery(out, port)


def _serve_gallery(out: str, port: int) -> None:
    """Serve OUT on 127.0.0.1 until Ctrl-C; print the gallery's URL (stdout) once it answers."""
    from tasks.gallery.serve import gallery_server
    from tasks.storage.root import INDEX

    try:
        server = gallery_server(out, port)
    except OSError as exc:
        fail(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} (--port 0 picks a free port)")
    say(f"serving {out} on 127.0.0.1 (Ctrl-C stops)")
    click.echo(f"http://127.0.0.1:{server.server_address[1]}/{INDEX}")
    # Ctrl-C stops it whatever this process was started with: a parent may leave SIGINT ignored or blocked.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            say("stopped")


@main.command("validate")
@click.argument("manifest")
@endpoint_option
@setting_options
def validate(manifest: str, **values: Any) -> None:
    """Check MANIFEST without rendering: every check run applies before it renders (columns, settings, ids,
    that every input decodes and is large enough at every level, the device, the weights).

    Prints each problem as `row N, column C: reason` (rows that share one are listed together); exit code 1 if any.
    """
    from tasks.manifest.read import read_manifest
    from tasks.manifest.validate import validate as problems_of

    try:
        parsed = read_manifest(manifest, defaults_from(values))
    except NstError as exc:
        fail(exc)
    problems = problems_of(parsed)
    for problem in problems:
        click.echo(str(problem))
    if parsed.rows == 0 and not problems:
        fail(parsed.unusable or "", code=1)
    say(f"{parsed.rows} rows, {len(problems)} problems")
    sys.exit(1 if problems else 0)


@main.group("manifest")
def manifest_group() -> None:
    """Write manifests."""


@manifest_group.command("cross")
@click.argument("content_dir")
@click.argument("style_dir")
@click.option("-o", "--output", metavar="FILE", help="Write the manifest to FILE (path or URI) instead of stdout.")
@setting_options
def cross(content_dir: str, style_dir: str, output: str | None, **values: Any) -> None:
    """Write a manifest of every image in CONTENT_DIR x every image in STYLE_DIR x every setting sweep.

    Setting flags become columns. Values separated by | sweep a setting (--style-weight '1|3|10'); list
    settings, whose values use | already, separate theirs by ; (--style-layers 'relu1_1|relu2_1;relu3_1').
    Rows go content by content, style by style, then through the sweeps in the order of their flags.
    Local paths are written relative to FILE's folder, or to the current folder when printing to stdout.
    """
    from tasks.manifest.cross import cross_manifest, parse_sweeps, write_manifest

    given = {k: v for k, v in values.items() if v is not None}  # click keeps the command line's order
    folder = "." if output is None else None if "://" in output else os.path.dirname(output) or "."
    try:
        text = cross_manifest(content_dir, style_dir, parse_sweeps(given), folder)
        if output is not None:
            write_manifest(output, text)
    except NstError as exc:
        fail(exc)
    rows = text.count("\n") - 1  # the header's line is not a row
    say(f"{rows} rows")
    click.echo(text if output is None else output, nl=output is not None)
