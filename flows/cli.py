"""The ``stylebatch`` command. Every engine setting is a flag named after it in kebab case."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any, Literal, NoReturn, get_args, get_origin

import click
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nst_core import NstError, RenderResult, Settings, StepInfo, render
from nst_core.images import write_image
from tasks.gallery import build_gallery
from tasks.manifest import cross_manifest, manifest_name, read_manifest
from tasks.validation import check_inputs

console = Console(stderr=True)


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """stylebatch: batch neural style transfer."""


@main.command("render-one")
@click.argument("content")
@click.argument("styles", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output image path or URI (.png, .jpg).")
@setting_options
def render_one(content: str, styles: tuple[str, ...], output: str, **values: Any) -> None:
    """Render CONTENT in the style of STYLE [STYLE...] and write it to --output."""
    try:
        settings = settings_from(values)
        result = _render_with_progress(content, list(styles), settings)
        write_image(result.image, output)
        for iteration, snapshot in result.snapshots.items():
            write_image(snapshot, _snapshot_path(output, iteration))
    except (NstError, ValueError, OSError) as exc:
        _fail(exc)
    last = result.losses[-1]
    console.print(
        f"{result.settings.iterations} iterations on {result.device} in {result.timings.total_s:.1f} s "
        f"({result.timings.ms_per_iteration:.0f} ms/iteration); final loss {last.total:.4g}"
    )
    click.echo(output)


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
@click.option("--out", default="renders", show_default=True, help="Output root: a path or URI (s3://bucket/prefix).")
@click.option("--force", is_flag=True, help="Render pairs again even if they are finished.")
@click.option("--log-every", default=50, show_default=True, help="Log the loss terms every N iterations.")
@click.option("--timeout", "timeout_s", type=float, help="Give up on a pair after this many seconds.")
@click.option(
    "--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (MinIO ...); sets AWS_ENDPOINT_URL."
)
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="local (threads here), dask-local (a Dask cluster here: one worker per GPU) or tcp://HOST:PORT "
    "(an existing Dask scheduler).",
)
@setting_options
def run(
    manifest: str,
    out: str,
    force: bool,
    log_every: int,
    timeout_s: float | None,
    endpoint_url: str | None,
    executor: str,
    **values: Any,
) -> None:
    """Render every pair of MANIFEST; setting flags are defaults for the manifest's blank cells."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url  # s3fs (botocore) reads it, here and in child processes
    try:
        defaults = settings_from(values).model_dump(exclude_unset=True)
    except NstError as exc:
        _fail(exc)
    from prefect import tags

    from flows.render_manifest import progress_listeners, render_manifest

    with _pair_progress() as listener, tags("stylebatch", f"manifest-{manifest_name(manifest)}"):
        progress_listeners.append(listener)
        try:
            summary = render_manifest(manifest, out, defaults, force, log_every, timeout_s, executor)
        finally:
            progress_listeners.remove(listener)
    console.print(f"gallery: {summary['gallery']['index']}", highlight=False)
    for row in summary["pairs"]:
        if row["status"] == "failed":
            console.print(f"[red]failed[/red] row {row['row']} {row['id']}: {row['reason']}", highlight=False)
    console.print(
        f"rendered {summary['rendered']}, skipped {summary['skipped']}, failed {summary['failed']} "
        f"in {summary['total_s']:.1f} s; outputs in {summary['out']}"
    )
    sys.exit(1 if summary["failed"] else 0)


@contextlib.contextmanager
def _pair_progress() -> Iterator[Callable[[int, int, dict[str, Any]], None]]:
    with Progress(
        TextColumn("pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as bar:
        task = bar.add_task("pairs", total=None)

        def listener(done: int, total: int, outcome: dict[str, Any]) -> None:
            bar.update(task, completed=done, total=total)

        yield listener


@main.command("serve")
@click.argument("manifest")
@click.option("--cron", required=True, help='When to run, in cron syntax (UTC), e.g. "0 2 * * *".')
@click.option("--out", default="renders", show_default=True, help="Output root: a path or URI (s3://bucket/prefix).")
@click.option("--executor", default="local", show_default=True, help="As for run.")
@setting_options
def serve(manifest: str, cron: str, out: str, executor: str, **values: Any) -> None:
    """Render MANIFEST on a schedule from this process (needs a Prefect server: PREFECT_API_URL)."""
    from prefect.settings import PREFECT_API_URL

    if not (os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()):  # or a profile, prefect.toml, .env
        _fail(
            ValueError(
                "serve needs a Prefect server for its schedule: start one with `prefect server start` "
                "and set PREFECT_API_URL (embedded mode runs no scheduler)"
            )
        )
    try:
        defaults = settings_from(values).model_dump(exclude_unset=True)
    except NstError as exc:
        _fail(exc)
    from flows.render_manifest import render_manifest

    parameters = {"manifest": manifest, "out": out, "defaults": defaults, "executor": executor}
    render_manifest.serve(
        name=f"serve-{manifest_name(manifest)}", cron=cron, parameters=parameters, tags=["stylebatch", "serve"]
    )


@main.command("gallery")
@click.argument("out")
@click.option("--manifest", help="Show this manifest's pairs, in its order (unrendered ones as pending).")
@setting_options
def gallery(out: str, manifest: str | None, **values: Any) -> None:
    """Build OUT/gallery/ (index.html and contact_sheet.png) from the results under OUT.

    With --manifest, give the setting flags the run was given: pair ids depend on them.
    """
    try:
        built = build_gallery(out, manifest, settings_from(values).model_dump(exclude_unset=True))
    except NstError as exc:
        _fail(exc)
    console.print(f"{built['pairs']} pairs: {built['contents']} contents x {built['styles']} styles", highlight=False)
    click.echo(built["index"])


@main.command("validate")
@click.argument("manifest")
@setting_options
def validate(manifest: str, **values: Any) -> None:
    """Check MANIFEST without rendering: columns, settings, ids, and that every input decodes."""
    try:
        parsed = read_manifest(manifest, settings_from(values).model_dump(exclude_unset=True))
    except NstError as exc:
        _fail(exc)
    problems = [str(error) for error in parsed.errors]
    for pair in parsed.pairs:
        problems += [f"row {pair.row}, column {column}: {reason}" for column, reason in check_inputs(pair)]
    for problem in problems:
        click.echo(problem)
    rows = {p.row for p in parsed.pairs} | {e.row for e in parsed.errors if e.row > 1}
    console.print(f"{len(rows)} rows, {len(problems)} problems", highlight=False)
    sys.exit(1 if problems else 0)


@main.group("manifest")
def manifest_group() -> None:
    """Write manifests."""


@manifest_group.command("cross")
@click.argument("content_dir")
@click.argument("style_dir")
@setting_options
def cross(content_dir: str, style_dir: str, **values: Any) -> None:
    """Print a manifest of every image in CONTENT_DIR x every image in STYLE_DIR (setting flags become columns)."""
    try:
        given = {k: v for k, v in values.items() if v is not None}
        settings_from(given)
        click.echo(cross_manifest(content_dir, style_dir, given), nl=False)
    except NstError as exc:
        _fail(exc)


def _fail(exc: Exception) -> NoReturn:
    console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    sys.exit(2)


def _render_with_progress(content: str, styles: list[str], settings: Settings) -> RenderResult:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rendering", total=settings.iterations, losses="", speed="")

        def on_step(step: StepInfo) -> None:
            losses = f"content {step.content:.3g} style {step.style:.3g} tv {step.tv:.3g} total {step.total:.4g}"
            speed = f"{step.iteration / step.elapsed_s:.1f} it/s"
            progress.update(task, completed=step.iteration, losses=losses, speed=speed)

        return render(content, styles, settings, on_step=on_step)


def _snapshot_path(output: str, iteration: int) -> str:
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}_{iteration:05d}{path.suffix}"))
