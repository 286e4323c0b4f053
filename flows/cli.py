"""The ``stylebatch`` command. Every engine setting is a flag named after it in kebab case.

Commands import torch, torchvision, Prefect and Dask only when they need them, so that ``--help``
answers at once and ``validate`` takes about as long as reading the images.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, get_args, get_origin

import click
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.markup import escape

from nst_core import NstError, Settings
from tasks.runs.options import (
    BATCH_SIZE,
    EXECUTOR,
    GALLERY_PORT,
    LINK_EXPIRY_S,
    LOG_EVERY,
    MAX_LINK_EXPIRY_S,
    OUT,
    RETRY_FOR_S,
)

if TYPE_CHECKING:
    from nst_core import RenderResult

console = Console(stderr=True)
T = TypeVar("T")
SAME_STOP_S = 2.0  # a second SIGINT or SIGTERM sooner than this after the first is the same stop


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(info: FieldInfo) -> str:
    """A field's description, with its choices when it is a Literal."""
    choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
    return (info.description or "") + (f" One of: {', '.join(choices)}." if choices else "")


def setting_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per ``Settings`` field (help = its description); unset options stay None."""
    for name, info in reversed(Settings.model_fields.items()):
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, {}) else f" [default: {default}]"
        flags = f"{_flag(name)}/--no-{_flag(name)[2:]}" if info.annotation is bool else _flag(name)
        metavar = None if info.annotation is bool else "VALUE"
        option = click.option(flags, name, default=None, metavar=metavar, help=f"{_help(info)}{shown}")
        command = option(command)
    return command


def settings_from(values: dict[str, Any]) -> Settings:
    return Settings.from_values({k: v for k, v in values.items() if k in Settings.model_fields})


def defaults_from(values: dict[str, Any]) -> dict[str, Any]:
    """The setting flags given on the command line, validated (they are defaults for blank cells)."""
    try:
        return settings_from(values).model_dump(exclude_unset=True)
    except NstError as exc:
        _fail(exc)


def endpoint_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        callback=_set_endpoint,
        expose_value=False,
        help="S3-compatible endpoint (MinIO ...); sets AWS_ENDPOINT_URL.",
    )(command)


def _set_endpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        os.environ["AWS_ENDPOINT_URL"] = value  # s3fs (botocore) reads it, here and in child processes


def link_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--public-url`` and ``--link-expiry``: where the Prefect UI's links point (``tasks.runs.links``)."""
    command = click.option(
        "--link-expiry",
        "link_expiry_s",
        type=click.IntRange(1, MAX_LINK_EXPIRY_S),
        default=LINK_EXPIRY_S,
        show_default=True,
        metavar="SECONDS",
        help="Presigned links to S3 outputs in the Prefect UI work this long (S3 allows 7 days at most).",
    )(command)
    return click.option(
        "--public-url",
        metavar="URL",
        callback=_check_public_url,
        help="Where --out is served over http(s) (a web server, a CDN, `stylebatch gallery OUT --serve`): "
        "the Prefect UI links to URL/<path under --out>.",
    )(command)


def _check_public_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from tasks.runs.links import check_link_options

    try:
        check_link_options(value, LINK_EXPIRY_S)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("public_url: ")) from exc
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version("stylebatch"), "--version", prog_name="stylebatch")
def main() -> None:
    """stylebatch: batch neural style transfer."""


@main.command("render-one")
@click.argument("content")
@click.argument("styles", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output image path or URI (.png, .jpg).")
@setting_options
def render_one(content: str, styles: tuple[str, ...], output: str, **values: Any) -> None:
    """Render CONTENT in the style of STYLE [STYLE...] and write it to --output."""
    from nst_core.images import write_image

    try:
        settings = settings_from(values)
        result = _render_with_progress(content, list(styles), settings)
        write_image(result.image, output)
        for iteration, snapshot in result.snapshots.items():
            write_image(snapshot, _snapshot_path(output, iteration))
    except Exception as exc:
        _fail_render(exc)
    last = result.losses[-1]
    console.print(
        f"{result.settings.total_iterations} iterations on {result.device} in {result.timings.total_s:.1f} s "
        f"({result.timings.ms_per_iteration:.0f} ms/iteration); final loss {last.total:.4g}"
    )
    click.echo(output)


def _fail_render(exc: Exception) -> NoReturn:
    """Exit 2 with one line for what a render's inputs, settings, weights or device can cause; else re-raise."""
    expected = (
        isinstance(exc, NstError | OSError | ValueError | MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    )
    if not expected:
        raise exc
    from tasks.runs.failures import failure_of

    _fail(failure_of(exc).reason)


@main.command("settings")
def settings_table() -> None:
    """Print every setting with its default and meaning, as a Markdown table."""
    click.echo(markdown_settings_table())


def markdown_settings_table() -> str:
    """The settings as a Markdown table (the README embeds it; a test keeps the two equal)."""
    rows = ["| setting (flag, manifest column) | default | meaning |", "|---|---|---|"]
    defaults = Settings().model_dump(mode="json")
    for name, info in Settings.model_fields.items():
        value = defaults[name]
        shown = "|".join(map(str, value)) if isinstance(value, list) else value
        shown = "" if shown in (None, {}) else f"`{shown}`"
        rows.append(f"| `{name}` (`{_flag(name)}`) | {_cell(shown)} | {_cell(_help(info))} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@main.command("run")
@click.argument("manifest")
@click.option("--out", default=OUT, show_default=True, help="Output root: a path or URI (s3://bucket/prefix).")
@click.option("--force", is_flag=True, help="Render pairs again even if they are finished.")
@click.option("--log-every", default=LOG_EVERY, show_default=True, help="Log the loss terms every N iterations.")
@click.option("--timeout", "timeout_s", type=float, help="Give up on a pair after this many seconds.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=BATCH_SIZE,
    show_default=True,
    help="Render up to N pairs together on one device: pairs of one network, size, optimiser and precision "
    "(README: Scaling out).",
)
@click.option(
    "--retry-for",
    "retry_for_s",
    type=float,
    default=RETRY_FOR_S,
    show_default=True,
    help="Retry transient storage and network errors (connections, timeouts, throttling) for up to this many seconds.",
)
@endpoint_option
@click.option(
    "--executor",
    default=EXECUTOR,
    show_default=True,
    help="local (threads here), dask-local (a Dask cluster here: one worker per GPU) or tcp://HOST:PORT "
    "(an existing Dask scheduler).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Print Prefect's logs and every failure's traceback.")
@link_options
@setting_options
def run(
    manifest: str,
    out: str,
    force: bool,
    log_every: int,
    timeout_s: float | None,
    batch_size: int,
    retry_for_s: float,
    executor: str,
    quiet: bool,
    verbose: bool,
    public_url: str | None,
    link_expiry_s: int,
    **values: Any,
) -> None:
    """Render every pair of MANIFEST; setting flags are defaults for the manifest's blank cells.

    Ctrl-C (or SIGTERM) stops the run at the running renders' next iteration and prints the summary
    (exit code 130); a second Ctrl-C, 2 s or more later, exits at once. Exit code 1 if a pair failed, 2 if the
    run could not start.
    """
    from flows.temporary_server import ServerError, prefect_api
    from tasks.runs import stopping

    defaults = defaults_from(values)
    flow_args = dict(force=force, log_every=log_every, timeout_s=timeout_s, executor=executor, retry_for_s=retry_for_s)
    flow_args |= dict(public_url=public_url, link_expiry_s=link_expiry_s, batch_size=batch_size)
    verbosity = "quiet" if quiet else "verbose" if verbose else "normal"
    with _interrupts(on_second=_stop_now):
        try:
            _check_manifest(manifest, defaults, retry_for_s)
            _check_output(out, retry_for_s)
            imports = functools.partial(importlib.import_module, "flows.render_manifest")
            with prefect_api(imports, _say if not quiet else lambda line: None) as (_, temporary):
                summary = _run_flow(manifest, out, defaults, flow_args, verbosity, not temporary)
        except ServerError as exc:
            _fail(exc)
        except stopping.Stopped:
            _fail("stopped before the run started", code=130)
    from flows.console import print_summary

    print_summary(summary, Console())
    sys.exit(130 if stopping.stop_requested() else 1 if summary["failed"] else 0)


def _check_manifest(manifest: str, defaults: dict[str, Any], retry_for_s: float) -> None:
    """One error, before anything starts or is written, if MANIFEST cannot be read or used at all."""
    from tasks.manifest.read import read_manifest
    from tasks.storage.retries import retry_transient

    try:
        reason = retry_transient(lambda: read_manifest(manifest, defaults), retry_for_s).unusable
    except NstError as exc:
        _fail(exc)
    if reason is not None:
        _fail(reason)


def _check_output(out: str, retry_for_s: float) -> None:
    """One error up front, before any server starts, if ``out`` cannot be written."""
    from tasks.storage.folders import check_writable
    from tasks.storage.retries import retry_transient

    try:
        retry_transient(lambda: check_writable(out), retry_for_s)
    except NstError as exc:
        _fail(exc)


def _run_flow(
    manifest: str,
    out: str,
    defaults: dict[str, Any],
    flow_args: dict[str, Any],
    verbosity: Literal["quiet", "normal", "verbose"],
    ui_url: bool,
) -> dict[str, Any]:
    """The flow's summary; its own failure becomes one line (exit 2 for what a user can fix, else 1)."""
    from prefect import tags

    from flows.console import RunDisplay
    from flows.render_manifest import render_manifest
    from tasks.manifest.read import manifest_name
    from tasks.runs import stopping

    stopping.check()
    with RunDisplay(console, verbosity, ui_url), tags("stylebatch", f"manifest-{manifest_name(manifest)}"):
        try:
            return _in_thread(lambda: render_manifest(manifest, out, defaults, **flow_args))
        except stopping.Stopped:
            raise
        except NstError as exc:  # the output root or the manifest itself cannot be read
            _fail(exc)
        except Exception as exc:
            if verbosity == "verbose":
                raise
            from tasks.runs.failures import failure_of

            _fail(f"the run failed: {failure_of(exc).reason} (--verbose shows where)", code=1)


def _in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread, so that this (main) thread keeps handling signals; Prefect then installs none."""
    result: list[T] = []
    error: list[BaseException] = []
    context = contextvars.copy_context()  # Prefect's settings and tags live in context variables

    def target() -> None:
        try:
            result.append(context.run(work))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="stylebatch run")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if error:
        raise error[0]
    return result[0]


@contextlib.contextmanager
def _interrupts(on_second: Callable[[], None]) -> Iterator[None]:
    """First SIGINT or SIGTERM: ask the run to stop; one at least ``SAME_STOP_S`` later: ``on_second()`` and
    exit 130 at once. Sooner, it is the same stop delivered twice (``uv run`` forwards a signal that its
    process group got already: a script's ``kill -INT -- -PGID``, a supervisor's SIGTERM) and is ignored."""
    from tasks.runs import stopping

    first: list[float] = []

    def handle(signum: int, frame: object) -> None:
        if not first:
            first.append(time.monotonic())
            stopping.request_stop()
            console.print(
                "stopping: running renders stop at their next iteration "
                f"(Ctrl-C again, {SAME_STOP_S:g} s or more from now, to quit at once)"
            )
        elif time.monotonic() - first[0] >= SAME_STOP_S:
            on_second()
            os._exit(130)

    saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _stop_now() -> None:
    """What a second Ctrl-C does before the process exits: release this run's leases, stop its server."""
    from flows.temporary_server import kill_all
    from tasks.storage.leases import release_all

    release_all(timeout_s=5)
    kill_all()


@main.command("serve")
@click.argument("manifest")
@click.option("--cron", required=True, help='When to run, in cron syntax (UTC), e.g. "0 2 * * *".')
@click.option("--out", default=OUT, show_default=True, help="Output root: a path or URI (s3://bucket/prefix).")
@click.option("--executor", default=EXECUTOR, show_default=True, help="As for run.")
@click.option("--batch-size", type=click.IntRange(min=1), default=BATCH_SIZE, show_default=True, help="As for run.")
@link_options
@setting_options
def serve(
    manifest: str,
    cron: str,
    out: str,
    executor: str,
    batch_size: int,
    public_url: str | None,
    link_expiry_s: int,
    **values: Any,
) -> None:
    """Render MANIFEST on a schedule from this process (needs a Prefect server: PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    if not (os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()):  # or a profile, prefect.toml, .env
        _fail(
            "serve needs a Prefect server for its schedule: start one with `prefect server start` "
            "and set PREFECT_API_URL (embedded mode runs no scheduler)"
        )
    defaults = defaults_from(values)
    from flows.render_manifest import render_manifest
    from tasks.manifest.read import manifest_name

    parameters = {"manifest": manifest, "out": out, "defaults": defaults, "executor": executor}
    parameters |= {"public_url": public_url, "link_expiry_s": link_expiry_s, "batch_size": batch_size}
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

    try:
        pairs = read_manifest(manifest, defaults_from(values)).pairs if manifest else None
        built = build_gallery(out, pairs, manifest)
    except NstError as exc:
        _fail(exc)
    console.print(f"{built['pairs']} pairs: {built['contents']} contents x {built['styles']} styles", highlight=False)
    for note in built["notes"]:
        console.print(f"note: {note}", style="yellow", highlight=False)
    click.echo(built["index"])
    if serve:
        _serve_gallery(out, port)


def _serve_gallery(out: str, port: int) -> None:
    """Serve OUT on 127.0.0.1 until Ctrl-C; print the gallery's URL (stdout) once it answers."""
    from tasks.gallery.serve import INDEX, gallery_server

    try:
        server = gallery_server(out, port)
    except OSError as exc:
        _fail(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} (--port 0 picks a free port)")
    console.print(f"serving {out} on 127.0.0.1 (Ctrl-C stops)", highlight=False)
    click.echo(f"http://127.0.0.1:{server.server_address[1]}/{INDEX}")
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            console.print("stopped", highlight=False)


@main.command("validate")
@click.argument("manifest")
@endpoint_option
@setting_options
def validate(manifest: str, **values: Any) -> None:
    """Check MANIFEST without rendering: columns, settings, ids, that every input decodes, and the weights.

    Prints each problem as `row N, column C: reason` (rows that share one are listed together); exit code 1 if any.
    """
    from tasks.manifest.read import read_manifest
    from tasks.manifest.validate import validate as problems_of

    try:
        parsed = read_manifest(manifest, defaults_from(values))
    except NstError as exc:
        _fail(exc)
    problems = problems_of(parsed)
    for problem in problems:
        click.echo(str(problem))
    if parsed.rows == 0 and not problems:
        _fail(parsed.unusable or "", code=1)
    console.print(f"{parsed.rows} rows, {len(problems)} problems", highlight=False)
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
        _fail(exc)
    rows = text.count("\n") - 1  # the header's line is not a row
    console.print(f"{rows} rows", highlight=False)
    click.echo(text if output is None else output, nl=output is not None)


def _say(line: str) -> None:
    console.print(line, highlight=False)


def _fail(problem: Exception | str, code: int = 2) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(str(problem))}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)


def _render_with_progress(content: str, styles: list[str], settings: Settings) -> RenderResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from flows.console import step_text
    from nst_core import StepInfo, render

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rendering", total=settings.total_iterations, losses="", speed="")

        def on_step(step: StepInfo) -> None:
            losses = f"{step_text(step)} total {step.total:.4g}"
            speed = f"{step.iteration / step.elapsed_s:.1f} it/s"
            progress.update(task, completed=step.iteration, losses=losses, speed=speed)

        return render(content, styles, settings, on_step=on_step)


def _snapshot_path(output: str, iteration: int) -> str:
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}_{iteration:05d}{path.suffix}"))
