"""The comparison gallery of an output root, written to ``<out>/gallery/``.

- ``index.html``: the batch grid or the settings sweep (``tasks.gallery.layout``), with a header
  naming the manifest, the shared settings and the counts;
- ``contents/*.html`` and ``styles/*.html``: one content (or style) across everything it met;
- ``pairs/<id>.html``: a pair at its real resolution, its inputs, losses, settings and neighbours;
- ``contact_sheet*.png``: labelled sheets of the grid (``tasks.gallery.images``).

It reads the pair folders' records (``tasks.gallery.entries``), so it also covers the outputs of
several runs. Pages use relative links only (they work from disk, any static server, or a synced
bucket) and no script at all.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from tasks.gallery.chart import loss_chart
from tasks.gallery.entries import Entry, read_entries
from tasks.gallery.images import Store, contact_sheets, input_images, result_thumbnails
from tasks.gallery.layout import NEIGHBOURS, Layout, arrange, input_name, neighbours, page_of
from tasks.manifest.read import Pair, manifest_name
from tasks.runs.records import GalleryResult
from tasks.storage.records import RESULT, Status
from tasks.storage.root import OutputRoot

__all__ = ["build_gallery"]

SHOWN = (Status.RENDERED, Status.FAILED, Status.PENDING)  # where a pair stands, as the gallery counts it

_ENV = Environment(loader=PackageLoader("tasks.gallery", "templates"), autoescape=select_autoescape(default=True))


def build_gallery(out: str, pairs: list[Pair] | None = None, manifest: str | None = None) -> GalleryResult:
    """Write ``<out>/gallery/`` of every pair under ``out``, or of ``pairs`` (``manifest``'s) in order;
    return where the index and the contact sheets are, what they show, and notes for the user."""
    root = OutputRoot.open(out)
    gallery = root.gallery()
    entries = read_entries(out, pairs)
    layout = arrange(entries)
    store = Store(root.fs)
    thumbs = result_thumbnails(store, root.path, gallery, entries)
    inputs = input_images(store, gallery, entries)
    counts = {s: sum(e.status == s for e in entries) for s in SHOWN}
    title = manifest_name(manifest) if manifest else posixpath.basename(root.path) or root.path
    heading = f"{title} · {datetime.now(UTC):%Y-%m-%d} · " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    sheets = contact_sheets(store, gallery, layout, heading, thumbs, inputs)
    page = {"title": title, "layout": layout, "thumbs": thumbs, "inputs": inputs, "name": input_name}
    contents = {e.content: page_of("contents", e.content) for e in entries}
    styles = {e.column: page_of("styles", e.column) for e in entries}
    files = {
        f"{gallery}/index.html": _render(
            "index.html.j2", **page, manifest=manifest, counts=counts, contents=contents, styles=styles, sheets=sheets
        )
    }
    cards = _cards(entries, layout, thumbs)
    for kind, pages in (("content", contents), ("style", styles)):
        for key, path in pages.items():
            other = "style" if kind == "content" else "content"  # a content's page names each card's style
            chosen = [cards[e.pair_id][other] for e in entries if (e.content if kind == "content" else e.column) == key]
            files[f"{gallery}/{path}"] = _render("subset.html.j2", **page, kind=kind, key=key, cards=chosen)
    for entry in entries:
        files[f"{gallery}/{entry.href}"] = _detail_page(entry, entries, page, cards, contents, styles)
    store.put({path: text.encode() for path, text in files.items()})
    return GalleryResult(
        index=root.gallery_uri("index.html"),
        contact_sheets=[root.gallery_uri(sheet) for sheet in sheets],
        pairs=len(entries),
        contents=len(contents),
        styles=len(styles),
        notes=[f"{e.pair_id} (pending): {e.note}" for e in entries if e.note],
    )


def _cards(entries: list[Entry], layout: Layout, thumbs: dict[str, str]) -> dict[str, dict[str, Markup]]:
    """Each pair's link from a page one folder down, rendered once per caption: naming its style
    (for pages of its content), its content (for pages of its style), or only what sets it apart
    (beside its own variants)."""
    link = _ENV.get_template("macros.html.j2").module.pair_link  # type: ignore[attr-defined]
    cards = {}
    for e in entries:
        named = {"style": input_name(e.column), "content": input_name(e.content), "variant": ""}
        cards[e.pair_id] = {
            kind: link(e, thumbs, " · ".join(filter(None, [name, layout.describe(e)])), "../")
            for kind, name in named.items()
        }
    return cards


def _detail_page(
    entry: Entry,
    entries: list[Entry],
    page: dict[str, Any],
    cards: dict[str, dict[str, Markup]],
    contents: dict[str, str],
    styles: dict[str, str],
) -> str:
    record = entry.rendered
    settings = entry.settings
    return _render(
        "pair.html.j2",
        **page,
        e=entry,
        record=entry.record,
        final=record.final.weighted(settings) if record and settings else None,
        settings=settings.as_cells() if settings else {},
        flags=settings.flags() if settings else "",
        chart=loss_chart(entry.losses, settings) if entry.losses and settings else None,
        result=f"../../{quote(entry.pair_id, safe='')}/{RESULT}" if record else None,
        neighbours={
            NEIGHBOURS[kind]: [cards[o.pair_id][kind] for o in others]
            for kind, others in neighbours(entry, entries).items()
            if others
        },
        content_page=contents[entry.content],
        style_page=styles[entry.column],
    )


def _render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
