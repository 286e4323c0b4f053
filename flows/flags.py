"""Command-line flags made from the models: one per ``Settings`` field and one per ``RunOptions`` field.

A flag is its field's name in kebab case (``image_size``: ``--image-size``; ``timeout_s``, in seconds:
``--timeout``), its help the field's description, its default the field's. Setting flags default to
unset: they are defaults for a manifest's blank cells, validated together (``settings_from``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import click
from annotated_types import Ge, Gt, Le
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from nst_core import Settings
from tasks.runs.options import RunOptions

__all__ = [
    "endpoint_option",
    "flag",
    "markdown_settings_table",
    "run_options",
    "setting_options",
    "settings_from",
]

F = Callable[..., Any]


def flag(name: str) -> str:
    """A field's flag: kebab case, without the ``_s`` of seconds."""
    return "--" + name.removesuffix("_s").replace("_", "-")


def _help(info: FieldInfo) -> str:
    """A field's description, with its choices when it is a Literal."""
    choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
    return (info.description or "") + (f" One of: {', '.join(choices)}." if choices else "")


def setting_options(command: F) -> F:
    """Add one option per ``Settings`` field (help = its description); unset options stay None."""
    for name, info in reversed(Settings.model_fields.items()):
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, {}) else f" [default: {default}]"
        flags = f"{flag(name)}/--no-{flag(name)[2:]}" if info.annotation is bool else flag(name)
        metavar = None if info.annotation is bool else "VALUE"
        command = click.option(flags, name, default=None, metavar=metavar, help=f"{_help(info)}{shown}")(command)
    return command


def settings_from(values: Mapping[str, Any]) -> Settings:
    """The settings given as flags (unset ones are None). Raises ``SettingsError``."""
    return Settings.from_values({k: v for k, v in values.items() if k in Settings.model_fields})


def run_options(command: F) -> F:
    """Add one option per ``RunOptions`` field, with the field's default, range and check."""
    for name, info in reversed(RunOptions.model_fields.items()):
        command = click.option(flag(name), name, **_run_option(name, info))(command)
    return command


def _run_option(name: str, info: FieldInfo) -> dict[str, Any]:
    """click's option arguments for a ``RunOptions`` field."""
    if info.annotation is bool:
        return {"is_flag": True, "help": info.description}
    bounds = {type(m): m for m in info.metadata if isinstance(m, Ge | Gt | Le)}
    low = getattr(bounds.get(Ge), "ge", getattr(bounds.get(Gt), "gt", None))
    high = getattr(bounds.get(Le), "le", None)
    number = {int: click.IntRange, float: click.FloatRange}.get(_without_none(info.annotation))
    kind = None if number is None else number(min=low, max=high, min_open=Gt in bounds)
    return {
        "type": kind,
        "default": info.default,
        "show_default": info.default is not None,
        "metavar": "SECONDS" if name.endswith("_s") else None,
        "help": info.description,
        "callback": None if kind is not None else _checked(name),
    }


def _without_none(annotation: Any) -> Any:
    """``T`` of ``T | None``."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    return args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation


def _checked(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback that checks a value as ``RunOptions`` does, as a usage error naming the flag."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            RunOptions.model_validate({name: value})
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"].removeprefix("Value error, ")) from exc
        return value

    return check


def endpoint_option(command: F) -> F:
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


def markdown_settings_table() -> str:
    """The settings as a Markdown table (the README embeds it; a test keeps the two equal)."""
    rows = ["| setting (flag, manifest column) | default | meaning |", "|---|---|---|"]
    defaults = Settings().model_dump(mode="json")
    for name, info in Settings.model_fields.items():
        value = defaults[name]
        shown = "|".join(map(str, value)) if isinstance(value, list) else value
        shown = "" if shown in (None, {}) else f"`{shown}`"
        rows.append(f"| `{name}` (`{flag(name)}`) | {_cell(shown)} | {_cell(_help(info))} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
