"""CSV manifests of content x style pairs: parsing into ``Pair``s, with an error per bad row.

A row's settings are its non-blank setting columns over the run's defaults over ``Settings``'s own.
Paths are relative to the manifest's folder unless absolute or a URI (``s3://``, ``https://`` ...).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from nst_core import InputError, Settings, SettingsError
from nst_core.catalogue import RANDOM_WEIGHTS
from nst_core.images import read_bytes
from nst_core.settings import INIT_MODES, parse_list
from nst_core.video import looks_like_clip
from tasks.storage.root import RESERVED

__all__ = [
    "FILE_SETTINGS",
    "IMAGE_SUFFIXES",
    "Manifest",
    "Pair",
    "RowError",
    "is_file_reference",
    "label_cells",
    "labelled",
    "manifest_name",
    "read_manifest",
]

REQUIRED = ("content", "style")
MASK_COLUMNS = ("style_masks", "style_image_masks")  # aligned with ``style``
COLUMNS = ("id", *REQUIRED, *MASK_COLUMNS, "tags", *Settings.model_fields)
FILE_SETTINGS = ("init", "weights", "keep_mask")  # settings that may name a file, relative to the manifest
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
HEADER = 1  # the header's line: its errors are missing required columns
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_EXTRA = "\0extra"  # csv.DictReader's key for fields beyond the header


@dataclass(frozen=True)
class Pair:
    """One render: inputs as resolved URIs, validated settings, and where it came from."""

    pair_id: str
    row: int  # line in the manifest
    content: str
    styles: tuple[str, ...]
    settings: Settings
    tags: tuple[str, ...] = ()
    label: str = ""  # for people: ``content x style``, and what tells it from its variants (``labelled``)
    clip: bool = False  # the content is a clip (``nst_core.video.looks_like_clip``): a chain of frames
    style_masks: tuple[str, ...] = ()  # one per style: where it applies on the content (none: blended everywhere)
    style_image_masks: tuple[str, ...] = ()  # one per style: which part of its image ("": all of it), or none

    @property
    def masks(self) -> dict[str, str]:
        """Its masks' URIs by what they are: ``style mask N``, ``style image mask N``, ``keep mask``."""
        found = {f"style mask {n}": uri for n, uri in enumerate(self.style_masks, start=1)}
        found |= {f"style image mask {n}": uri for n, uri in enumerate(self.style_image_masks, start=1) if uri}
        return found | ({"keep mask": self.settings.keep_mask} if self.settings.keep_mask else {})

    @property
    def masked(self) -> bool:
        """Whether masks place its styles or keep pixels (``nst_core.regions``)."""
        return bool(self.masks)

    @property
    def fingerprint(self) -> str:
        """Hash of the resolved inputs and every setting that changes the pixels (a clip's settings for a clip,
        the masks' for a row with masks)."""
        payload: dict[str, Any] = {"content": self.content, "styles": self.styles}
        payload["settings"] = _pixel_settings(self.settings, self.clip, self.masked)
        if self.masked:
            payload |= {"style_masks": self.style_masks, "style_image_masks": self.style_image_masks}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RowError:
    """A problem of a manifest row, or one that several rows share (``validate`` reports those once)."""

    rows: tuple[int, ...]  # lines in the manifest; 1 is the header
    column: str
    reason: str

    @classmethod
    def at(cls, row: int, column: str, reason: str) -> RowError:
        return cls((row,), column, reason)

    @property
    def row(self) -> int:
        """The (first) row."""
        return self.rows[0]

    def __str__(self) -> str:
        return f"{_rows(self.rows)}, column {self.column}: {self.reason}"


def _rows(rows: tuple[int, ...]) -> str:
    """``row 3`` or ``rows 2-4, 7``."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"{'rows' if len(rows) > 1 else 'row'} {text}"


@dataclass(frozen=True)
class Manifest:
    uri: str
    pairs: list[Pair]  # the rows that render
    errors: list[RowError]  # every problem, in file order
    rejected: list[Pair] = field(default_factory=list)  # bad rows whose inputs can still be checked

    @property
    def name(self) -> str:
        return manifest_name(self.uri)

    @property
    def rows(self) -> int:
        """How many rows the manifest has (good and bad)."""
        return len({p.row for p in self.pairs} | {e.row for e in self.errors if e.row > HEADER})

    @property
    def unusable(self) -> str | None:
        """Why no row of the manifest can render (a required column is missing, or there is no row), or None."""
        missing = [error.column for error in self.errors if error.row == HEADER]  # the header's only errors
        if missing:
            columns = " and ".join(missing) + (" columns" if len(missing) > 1 else " column")
            return f"manifest {self.uri}: its header has no {columns} (a manifest needs {' and '.join(REQUIRED)})"
        if self.rows == 0:
            return f"manifest {self.uri} has a header but no rows"
        return None


def manifest_name(uri: str) -> str:
    """A manifest's file name without its extension: names its runs, artifacts and tags."""
    return posixpath.splitext(posixpath.basename(uri.rstrip("/")))[0]


def read_manifest(uri: str, defaults: Mapping[str, Any] | None = None) -> Manifest:
    """Parse ``uri`` with ``defaults`` for blank cells.

    Raises:
        SettingsError: a default is bad (once, not once per row).
        StorageError: the file itself cannot be read.
        InputError: it is not UTF-8 CSV text.
    """
    Settings.from_values(dict(defaults or {}))
    data = read_bytes(uri, "manifest")
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")), restkey=_EXTRA)
        header = [name.strip() for name in reader.fieldnames or []]
        return _read(uri, reader, header, defaults or {})
    except UnicodeDecodeError as exc:
        raise InputError(f"manifest {uri}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from exc
    except csv.Error as exc:
        raise InputError(f"manifest {uri}: not a CSV file ({exc})") from exc


def _read(uri: str, reader: csv.DictReader, header: list[str], defaults: Mapping[str, Any]) -> Manifest:
    """The manifest of ``reader``'s rows."""
    reader.fieldnames = header
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        return Manifest(uri, [], [RowError.at(HEADER, column, "required column is missing") for column in missing])
    base = _folder(uri)
    pairs, errors, rejected = [], [], []
    for record in reader:
        pair, row_errors = _parse_row(reader.line_num, record, base, defaults)
        errors += row_errors
        if pair is not None:
            (rejected if row_errors else pairs).append(pair)
    kept, duplicates = _drop_duplicates(pairs, errors)
    return Manifest(uri, labelled(kept), sorted(errors, key=lambda e: e.row), rejected + duplicates)


def _parse_row(
    row: int, record: dict[str, Any], base: str, defaults: Mapping[str, Any]
) -> tuple[Pair | None, list[RowError]]:
    """The row's pair (None only if its inputs or settings cannot be made out) and all its problems."""
    errors = (
        [RowError.at(row, "(row)", f"{len(record[_EXTRA])} more fields than the header")] if _EXTRA in record else []
    )
    cells = {k: v.strip() for k, v in record.items() if k != _EXTRA and v is not None}
    for column in FILE_SETTINGS:  # file references in setting cells are relative to the manifest too
        if is_file_reference(cells.get(column, "")):
            cells[column] = _resolve(cells[column], base)
    errors += [
        RowError.at(row, k, "missing: the row has fewer fields than the header") for k, v in record.items() if v is None
    ]
    errors += [RowError.at(row, k, "required") for k in REQUIRED if k in cells and not cells[k]]
    errors += [_unknown_column(row, k) for k, v in cells.items() if k not in COLUMNS and v]
    settings, problems = _row_settings(row, cells, defaults)
    errors += problems
    if settings is None or not cells.get("content") or not cells.get("style"):
        return None, errors
    # Paths and URIs may contain commas: only "|" separates styles.
    content, styles = _resolve(cells["content"], base), tuple(_resolve(s, base) for s in _split(cells["style"]))
    if settings.style_weights is not None and len(settings.style_weights) != len(styles):
        errors.append(
            RowError.at(row, "style_weights", f"{len(settings.style_weights)} weights for {len(styles)} styles")
        )
    masks, mask_errors = _masks(row, cells, base, len(styles))
    errors += mask_errors
    tags = tuple(parse_list(cells.get("tags", "")))
    pair = Pair("", row, content, styles, settings, tags, clip=looks_like_clip(cells["content"]), **masks)
    user_id = cells.get("id", "")
    if user_id in RESERVED:
        errors.append(RowError.at(row, "id", f"{user_id!r} is reserved for the folder of {RESERVED[user_id]}"))
    elif user_id and not SAFE_ID.match(user_id):
        errors.append(
            RowError.at(row, "id", f"{user_id!r} is not a safe folder name: use letters, digits, '.', '_', '-'")
        )
    if user_id and not errors:  # a name the user chose names the pair for people too
        return replace(pair, pair_id=user_id, label=user_id), errors
    return replace(pair, pair_id=_auto_id(pair)), errors


def _masks(
    row: int, cells: dict[str, str], base: str, styles: int
) -> tuple[dict[str, tuple[str, ...]], list[RowError]]:
    """The row's mask columns, resolved, and their problems: one entry per style, each
    ``style_masks`` entry given."""
    masks, errors = {}, []
    for column in MASK_COLUMNS:
        if not cells.get(column):
            continue
        entries = [part.strip() for part in cells[column].split("|")]
        if len(entries) != styles:
            errors.append(RowError.at(row, column, f"{len(entries)} masks for {styles} styles: give one per style"))
        elif column == "style_masks" and not all(entries):
            errors.append(RowError.at(row, column, "a mask is blank: every style needs its mask"))
        else:
            masks[column] = tuple(_resolve(entry, base) if entry else "" for entry in entries)
    return masks, errors


def _row_settings(
    row: int, cells: dict[str, str], defaults: Mapping[str, Any]
) -> tuple[Settings | None, list[RowError]]:
    """The row's settings and their problems; with problems, the settings without the bad cells (to check inputs)."""
    given = {k: v for k, v in cells.items() if k in Settings.model_fields and v}  # blank: the default
    try:
        return Settings.from_values({**defaults, **given}), []
    except SettingsError as exc:
        problems = exc.problems
    errors = [RowError.at(row, name, reason) for name, reason in problems]
    try:
        good = {k: v for k, v in given.items() if k not in {name for name, _ in problems}}
        return Settings.from_values({**defaults, **good}), errors
    except SettingsError:  # problems that depend on each other
        return None, errors


def _unknown_column(row: int, column: str) -> RowError:
    close = get_close_matches(column, COLUMNS, n=1)
    return RowError.at(row, column, "unknown setting" + (f"; did you mean {close[0]!r}?" if close else ""))


def _drop_duplicates(pairs: list[Pair], errors: list[RowError]) -> tuple[list[Pair], list[Pair]]:
    """(first row of each id, later rows with the same id); each later row gets an error."""
    first: dict[str, int] = {}
    kept, duplicates = [], []
    for pair in pairs:
        if pair.pair_id in first:
            errors.append(RowError.at(pair.row, "id", f"duplicate id {pair.pair_id!r} (row {first[pair.pair_id]})"))
            duplicates.append(pair)
        else:
            first[pair.pair_id] = pair.row
            kept.append(pair)
    return kept, duplicates


def labelled(pairs: list[Pair]) -> list[Pair]:
    """``pairs`` with their labels, e.g. ``astronaut x composition_vii`` (a multiplication sign; each style's mask in
    brackets: ``x sky [top] + hills [bottom]``), and for the variants of one content and style (a sweep) the
    settings that differ between them after a middle dot: ``astronaut x composition_vii . style_weight=3`` (a file
    by its name). A pair whose id the manifest gives keeps it as its label."""
    variants: dict[tuple[str, tuple[str, ...]], list[Pair]] = {}
    for pair in pairs:
        variants.setdefault((pair.content, pair.styles), []).append(pair)
    cells = {pair.pair_id: label_cells(pair.settings, pair.masked) for pair in pairs}
    labels = {}
    for group in variants.values():
        texts = [cells[pair.pair_id] for pair in group]
        keys = [k for k in Settings.model_fields if Settings.knob(k).compared and len({t.get(k) for t in texts}) > 1]
        for pair in group:
            masks = [f" [{_stem(mask)}]" for mask in pair.style_masks] or [""] * len(pair.styles)
            styles = " + ".join(_stem(s) + mask for s, mask in zip(pair.styles, masks, strict=True))
            name = f"{_stem(pair.content)} \N{MULTIPLICATION SIGN} {styles}"
            differs = ", ".join(f"{k}={cells[pair.pair_id].get(k, '')}" for k in keys)
            labels[pair.pair_id] = f"{name} \N{MIDDLE DOT} {differs}" if differs else name
    return [pair if pair.label else replace(pair, label=labels[pair.pair_id]) for pair in pairs]


def label_cells(settings: Settings, masked: bool) -> dict[str, str]:
    """The settings' cells that a label may name: files by their names, the masks' settings only with masks."""
    cells = settings.as_cells()
    if not masked:
        cells = {k: v for k, v in cells.items() if not Settings.knob(k).masks}
    return {k: _stem(v) if k in FILE_SETTINGS and is_file_reference(v) else v for k, v in cells.items()}


def _auto_id(pair: Pair) -> str:
    """``<content>__<style>[+<style>]-<hash>``: readable, and new whenever inputs or settings change."""
    slug = _slug(_stem(pair.content)) + "__" + "+".join(_slug(_stem(s)) for s in pair.styles)
    return f"{slug[:80]}-{pair.fingerprint[:8]}"


def _pixel_settings(settings: Settings, clip: bool, masked: bool) -> dict[str, Any]:
    """The settings that can change the picture (``Knob.pixels``; channels_last predates the knobs, and stays
    in, so that finished pairs keep their ids), those of clips (``Knob.clip``) for a clip only, those of masks
    (``Knob.masks``) for a row with masks only, newer ones (``Knob.newer``) unless they differ from their default."""
    names = Settings.names(pixels=True) - (frozenset() if clip else Settings.names(clip=True))
    names -= frozenset() if masked else Settings.names(masks=True)
    fields = Settings.model_fields
    names -= {name for name in Settings.names(newer=True) if getattr(settings, name) == fields[name].default}
    return settings.model_dump(mode="json", include=names)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "image"


def _stem(uri: str) -> str:
    return posixpath.splitext(posixpath.basename(unquote(uri.split("?")[0].rstrip("/"))))[0]


def _folder(uri: str) -> str:
    return posixpath.dirname(uri) if "://" in uri else str(Path(uri).resolve().parent)


def is_file_reference(value: str) -> bool:
    """True if a setting value names a file (not a mode such as ``content``, ``imagenet`` or ``random:0``)."""
    return bool(value) and value not in (*INIT_MODES, "imagenet") and not RANDOM_WEIGHTS.match(value)


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split("|") if part.strip()]


def _resolve(ref: str, base: str) -> str:
    """A manifest cell as a URI or absolute path: relative paths are taken from ``base``, then normalised."""
    if "://" in ref or ref.startswith("/"):
        return ref
    joined = posixpath.join(base, ref)
    protocol, sep, path = joined.rpartition("://")
    return f"{protocol}{sep}{posixpath.normpath(path)}"
