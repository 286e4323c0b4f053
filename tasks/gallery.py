"""The comparison gallery of an output root: ``<out>/gallery/index.html`` and ``contact_sheet.png``.

It reads the pair folders' records (``tasks.gallery_entries``), so it also covers the outputs of
several runs. Pages use relative links only (they work from disk, any static server, or a synced
bucket) and no script at all.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

import fsspec
from jinja2 import Environment, PackageLoader, select_autoescape

from tasks.gallery_entries import Entry, read_entries, settings_text
from tasks.gallery_images import Store, contact_sheet, input_images, result_thumbnails
from tasks.loss_chart import loss_chart
from tasks.manifest import GALLERY, Pair
from tasks.records import RESULT

__all__ = ["GALLERY", "build_gallery"]

_ENV = Environment(loader=PackageLoader("tasks", "templates"), autoescape=select_autoescape(default=True))


def build_gallery(out: str, pairs: list[Pair] | None = None) -> dict[str, Any]:
    """Write ``<out>/gallery/`` of every pair under ``out``, or of ``pairs`` (a manifest's) in order;
    return where the page and the contact sheet are, what they show, and notes for the user."""
    fs, root = fsspec.url_to_fs(out)
    gallery = f"{root.rstrip('/')}/{GALLERY}"
    entries = read_entries(out, pairs)
    contents, columns = _unique(e.content for e in entries), _unique(e.column for e in entries)
    _label_variants(entries)
    store = Store(fs)
    thumbs = result_thumbnails(store, root.rstrip("/"), gallery, entries)
    inputs = input_images(store, gallery, entries)
    grid = {(c, s): [e for e in entries if (e.content, e.column) == (c, s)] for c in contents for s in columns}
    files = {
        f"{gallery}/index.html": _ENV.get_template("index.html.j2").render(
            contents=contents,
            columns=columns,
            grid=grid,
            thumbs=thumbs,
            inputs=inputs,
            name=_name,
            counts={s: sum(e.status == s for e in entries) for s in ("rendered", "failed", "pending")},
        )
    }
    for entry in entries:
        files[f"{gallery}/{entry.href}"] = _detail_page(entry, thumbs, inputs)
    store.put({path: text.encode() for path, text in files.items()})
    sheet = contact_sheet(store, gallery, contents, columns, grid, thumbs, inputs)
    prefix = out.rstrip("/") + f"/{GALLERY}"
    return {
        "index": f"{prefix}/index.html",
        "contact_sheet": f"{prefix}/{sheet}" if sheet else None,
        "pairs": len(entries),
        "contents": len(contents),
        "styles": len(columns),
        "notes": [f"{e.pair_id} (pending): {e.note}" for e in entries if e.note],
    }


def _detail_page(entry: Entry, thumbs: dict[str, str], inputs: dict[str, dict[str, str]]) -> str:
    record = entry.rendered
    chart = loss_chart(entry.losses, entry.settings) if entry.losses and entry.settings else None
    final = record.final.weighted(entry.settings) if record and entry.settings else None
    return _ENV.get_template("pair.html.j2").render(
        e=entry,
        record=entry.record,
        final=final,
        settings=settings_text(entry.settings) if entry.settings else {},
        chart=chart,
        result=f"../../{quote(entry.pair_id, safe='')}/{RESULT}" if record else None,
        inputs=inputs,
        name=_name,
        thumb=thumbs.get(entry.pair_id),
    )


def _label_variants(entries: list[Entry]) -> None:
    """Label pairs that share content and styles with the settings that differ between them."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.content, entry.column), []).append(entry)
    for group in groups.values():
        settings = [settings_text(e.settings) if e.settings else {} for e in group]
        differing = sorted({k for s in settings for k in s if any(o.get(k) != s.get(k) for o in settings)})
        for entry, s in zip(group, settings, strict=True):
            entry.label = ", ".join(f"{k}={s.get(k, '')}" for k in differing if k != "device")


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _name(uri: str) -> str:
    """A readable name for an input: its file name, or the names of a blend."""
    return " + ".join(unquote(posixpath.basename(u.split("?")[0])) for u in uri.split("|"))
