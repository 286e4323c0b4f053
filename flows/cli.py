"""The ``stylebatch`` command. Every engine setting is a flag named after it in kebab case."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nst_core import NstError, RenderResult, Settings, StepInfo, render
from nst_core.images import write_image

console = Console(stderr=True)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def setting_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per ``Settings`` field (help = its description); unset options stay None."""
    for name, info in reversed(Settings.model_fields.items()):
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, {}) else f" [default: {default}]"
        if info.annotation is bool:
            flag = f"{_flag(name)}/--no-{_flag(name)[2:]}"
            command = click.option(flag, name, default=None, help=f"{info.description}{shown}")(command)
        else:
            command = click.option(_flag(name), name, default=None, metavar="VALUE", help=f"{info.description}{shown}")(
                command
            )
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
    except (NstError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        sys.exit(2)
    last = result.losses[-1]
    console.print(
        f"{result.settings.iterations} iterations on {result.device} in {result.timings.total_s:.1f} s "
        f"({result.timings.ms_per_iteration:.0f} ms/iteration); final loss {last.total:.4g}"
    )
    click.echo(output)


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
