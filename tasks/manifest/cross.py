"""``stylebatch manifest cross``: every content image x every style image x every combination of swept settings.

A setting flag's alternatives are separated by ``|`` (``style_weight=1|3|10``). List settings, whose one
value already uses ``|`` (``style_layers=relu1_1|relu2_1``, ``lr_schedule=180:0.1|400:0.01``), separate
their alternatives by ``;``. Rows go content by content, then style by style, then through the sweeps in
the order they are given, the last one varying fastest. Local inputs are written relative to the folder
the manifest goes to, so that it travels with its images; URIs stay as they are.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import fsspec

from nst_core import InputError, Settings, SettingsError
from nst_core.io_errors import storage_error
from tasks.manifest.read import FILE_SETTINGS, IMAGE_SUFFIXES, is_file_reference
from tasks.storage.root import write_file

__all__ = ["LIST_SETTINGS", "cross_manifest", "parse_sweeps", "write_manifest"]


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) in (list, dict) or any(get_origin(a) in (list, dict) for a in get_args(annotation))


LIST_SETTINGS = tuple(name for name, info in Settings.model_fields.items() if _is_list(info.annotation))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_sweeps(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each given setting's alternatives, in order (one for a plain value); every combination validated.

    Raises:
        SettingsError: a value is invalid (alone or with another setting's), or two alternatives of a
            flag give the same render; the problem names the flag and the value.
    """
    sweeps = {name: _alternatives(name, value) for name, value in values.items()}
    combinations = [dict(zip(sweeps, chosen, strict=True)) for chosen in itertools.product(*sweeps.values())]
    seen: dict[str, dict[str, Any]] = {}
    for combination in combinations:
        try:
            settings = Settings.from_values(combination)
        except SettingsError as exc:
            raise _named(exc, combination, sweeps) from None
        key = json.dumps(settings.model_dump(mode="json", include=Settings.names(pixels=True)), sort_keys=True)
        if key in seen:
            name = next(n for n in sweeps if seen[key][n] != combination[n])
            same = f"{seen[key][name]} and {combination[name]} give the same render"
            raise SettingsError([(flag(name), same)])
        seen[key] = combination
    return sweeps


def _alternatives(name: str, value: Any) -> list[Any]:
    if not isinstance(value, str):
        return [value]
    parts = [part.strip() for part in value.split(";" if name in LIST_SETTINGS else "|")]
    if len(parts) > 1 and not all(parts):
        raise SettingsError([(f"{flag(name)} {value}", "an alternative is blank")])
    return parts


def _named(exc: SettingsError, combination: dict[str, Any], sweeps: Mapping[str, list[Any]]) -> SettingsError:
    """``exc`` with each problem as ``--flag value`` (and the other swept values it was tried with)."""
    swept = [name for name, alternatives in sweeps.items() if len(alternatives) > 1]
    problems = []
    for name, reason in exc.problems:
        given = f"{flag(name)} {combination[name]}" if name in combination else flag(name)
        others = " ".join(f"{flag(n)} {combination[n]}" for n in swept if n != name)
        problems.append((given, reason + (f" (with {others})" if others else "")))
    return SettingsError(problems)


def cross_manifest(content_dir: str, style_dir: str, sweeps: Mapping[str, Sequence[Any]], folder: str | None) -> str:
    """CSV of every content x style x combination of ``sweeps`` (see ``parse_sweeps``), in that order.

    Local inputs are written relative to ``folder`` (where the manifest goes; absolute if None).
    """
    rebase = _relative_to(folder)
    contents, styles = [rebase(p) for p in _list_images(content_dir)], [rebase(p) for p in _list_images(style_dir)]
    columns = ["content", "style", *sweeps]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    alternatives = [
        [rebase(v) if name in FILE_SETTINGS and is_file_reference(str(v)) else v for v in values]
        for name, values in sweeps.items()
    ]
    for content, style, *chosen in itertools.product(contents, styles, *alternatives):
        writer.writerow([content, style, *chosen])
    return buffer.getvalue()


def _relative_to(folder: str | None) -> Any:
    """``ref -> ref`` relative to ``folder`` for local paths (relative ones taken from the cwd); URIs kept."""
    base = Path(folder).resolve() if folder is not None else None  # as read_manifest resolves its folder

    def rebase(ref: str) -> str:
        if "://" in ref:
            return ref
        path = Path(ref).absolute()
        real = path.parent.resolve() / path.name  # the file's own name, even if it is a link
        return str(real) if base is None else os.path.relpath(real, base)

    return rebase


def _list_images(folder: str) -> Iterable[str]:
    """Image files directly in ``folder`` (path or URI), as absolute paths or URIs, sorted."""
    fs, path = fsspec.url_to_fs(folder)
    if not fs.isdir(path):
        raise InputError(f"not a folder: {folder}")
    names = sorted(p for p in fs.ls(path, detail=False) if p.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return [fs.unstrip_protocol(p) if "://" in folder else p for p in names]


def write_manifest(uri: str, text: str) -> None:
    """Write ``text`` to ``uri`` whole or not at all (``tasks.storage.root.write_file``).

    Raises:
        StorageError: ``uri`` cannot be written.
    """
    fs, path = fsspec.url_to_fs(uri)
    try:
        write_file(fs, path, text.encode())
    except Exception as exc:
        raise storage_error(exc, "manifest", uri) from exc
