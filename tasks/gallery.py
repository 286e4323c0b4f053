"""The comparison gallery of an output root: ``<out>/gallery/index.html`` and ``contact_sheet.png``.

It reads what the pair folders hold (``settings.json``, ``done.json``, ``failed.json``,
``losses.csv``, ``result.png``), so it also covers the outputs of several runs. Pages use relative
links only (they work from disk, any static server, or a synced bucket) and no script at all.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import fsspec
from jinja2 import Environment, PackageLoader, select_autoescape

from tasks.gallery_images import Store, contact_sheet, input_images, result_thumbnails
from tasks.loss_chart import Chart, loss_chart
from tasks.manifest import GALLERY, read_manifest
from tasks.storage import FAILURE, MARKER

__all__ = ["GALLERY", "Entry", "build_gallery", "read_entries"]

_ENV = Environment(loader=PackageLoader("tasks", "templates"), autoescape=select_autoescape(default=True))


@dataclass
class Entry:
    """One pair as the gallery sees it."""

    pair_id: str
    status: str  # rendered, failed or pending
    content: str
    styles: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)  # settings.json or failed.json
    done: dict[str, Any] = field(default_factory=dict)
    losses_csv: str = ""
    label: str = ""  # the settings that tell it from the other pairs of its cell

    @property
    def column(self) -> str:
        return "|".join(self.styles)

    @property
    def href(self) -> str:
        return f"pairs/{quote(self.pair_id, safe='')}.html"


def read_entries(out: str, manifest: str | None = None, defaults: dict[str, Any] | None = None) -> list[Entry]:
    """Every finished or failed pair under ``out``; with ``manifest`` (and the run's ``defaults``,
    which pair ids depend on): that manifest's pairs, in its order."""
    fs, root = fsspec.url_to_fs(out)
    root = root.rstrip("/")
    folders = [p for p in fs.ls(root, detail=False) if _is_pair_folder(fs, p)] if fs.exists(root) else []
    names = ("settings.json", MARKER, FAILURE, "losses.csv")
    blobs = fs.cat([f"{f}/{n}" for f in folders for n in names], on_error="omit") if folders else {}
    found = {}
    for folder in folders:
        entry = _entry(posixpath.basename(folder), {n: blobs.get(f"{folder}/{n}") for n in names})
        if entry is not None:
            found[entry.pair_id] = entry
    if manifest is None:
        return sorted(found.values(), key=lambda e: (e.content, e.column, e.pair_id))
    pairs = read_manifest(manifest, defaults).pairs
    return [found.get(p.pair_id) or Entry(p.pair_id, "pending", p.content, p.styles) for p in pairs]


def _is_pair_folder(fs: Any, path: str) -> bool:
    name = posixpath.basename(path.rstrip("/"))
    return name != GALLERY and not name.startswith(".") and fs.isdir(path)


def _entry(pair_id: str, blobs: dict[str, bytes | None]) -> Entry | None:
    """The pair in a folder, or None if the folder is unfinished or not a pair folder of ours."""
    try:
        return _parse_entry(pair_id, blobs)
    except (ValueError, KeyError, TypeError):  # foreign or damaged files: not a pair to show
        return None


def _parse_entry(pair_id: str, blobs: dict[str, bytes | None]) -> Entry | None:
    settings, done, failed = (json.loads(blobs[n]) if blobs[n] else None for n in ("settings.json", MARKER, FAILURE))
    meta = settings if done and settings else failed
    if meta is None:
        return None  # unfinished: no marker and no failure record
    status = "rendered" if meta is settings else "failed"
    styles = tuple(s["uri"] for s in meta["styles"])
    losses = (blobs["losses.csv"] or b"").decode() if status == "rendered" else ""
    return Entry(pair_id, status, meta["content"]["uri"], styles, meta, done or {}, losses)


def build_gallery(out: str, manifest: str | None = None, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``<out>/gallery/``; return where the page and the contact sheet are and what they show."""
    fs, root = fsspec.url_to_fs(out)
    gallery = f"{root.rstrip('/')}/{GALLERY}"
    entries = read_entries(out, manifest, defaults)
    contents, columns = _unique(e.content for e in entries), _unique(e.column for e in entries)
    _label_variants(entries)
    store = Store(fs)
    thumbs = result_thumbnails(store, root.rstrip("/"), gallery, entries)
    inputs = input_images(store, gallery, entries)
    cells = {(c, s): [e for e in entries if (e.content, e.column) == (c, s)] for c in contents for s in columns}
    files = {
        f"{gallery}/index.html": _ENV.get_template("index.html.j2").render(
            contents=contents,
            columns=columns,
            cells=cells,
            thumbs=thumbs,
            inputs=inputs,
            name=_name,
            counts={s: sum(e.status == s for e in entries) for s in ("rendered", "failed", "pending")},
        )
    }
    for entry in entries:
        files[f"{gallery}/{entry.href}"] = _detail_page(entry, thumbs, inputs)
    store.put({path: text.encode() for path, text in files.items()})
    sheet = contact_sheet(store, gallery, contents, columns, cells, thumbs, inputs)
    prefix = out.rstrip("/") + f"/{GALLERY}"
    return {
        "index": f"{prefix}/index.html",
        "contact_sheet": f"{prefix}/{sheet}" if sheet else None,
        "pairs": len(entries),
        "contents": len(contents),
        "styles": len(columns),
    }


def _detail_page(entry: Entry, thumbs: dict[str, str], inputs: dict[str, dict[str, str]]) -> str:
    settings = entry.meta.get("settings", {})
    weights = {
        "content": settings.get("content_weight", 1),
        "style": settings.get("style_weight", 1),
        "tv": settings.get("tv_weight", 1),
    }
    chart = _chart(entry.losses_csv, weights)
    result = f"../../{quote(entry.pair_id, safe='')}/result.png" if entry.status == "rendered" else None
    return _ENV.get_template("pair.html.j2").render(
        e=entry,
        settings={key: _short(value) for key, value in settings.items()},
        chart=chart,
        result=result,
        inputs=inputs,
        name=_name,
        thumb=thumbs.get(entry.pair_id),
    )


def _chart(losses_csv: str, weights: dict[str, float]) -> Chart | None:
    """The loss chart, or None for a missing or damaged ``losses.csv``."""
    try:
        return loss_chart(losses_csv, weights) if losses_csv else None
    except (ValueError, KeyError, TypeError):
        return None


def _label_variants(entries: list[Entry]) -> None:
    """Label pairs that share content and styles with the settings that differ between them."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.content, entry.column), []).append(entry)
    for group in groups.values():
        settings = [e.meta.get("settings", {}) for e in group]
        differing = sorted({k for s in settings for k in s if any(o.get(k) != s.get(k) for o in settings)})
        for entry, s in zip(group, settings, strict=True):
            entry.label = ", ".join(f"{k}={_short(s.get(k))}" for k in differing if k != "device")


def _short(value: Any) -> str:
    """A setting as written in a manifest cell: lists as a|b, schedules as 180:0.1|400:0.01."""
    if isinstance(value, dict):
        return "|".join(f"{k}:{v}" for k, v in value.items())
    return "|".join(map(str, value)) if isinstance(value, list) else str(value)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _name(uri: str) -> str:
    """A readable name for an input: its file name, or the names of a blend."""
    return " + ".join(unquote(posixpath.basename(u.split("?")[0])) for u in uri.split("|"))
