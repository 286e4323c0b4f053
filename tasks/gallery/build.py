"""The comparison gallery of an output root, written to ``<out>/gallery/``.

- ``index.html``: the batch grid or the settings sweep (``tasks.gallery.layout``), with a header
  naming the manifest, the shared settings and the counts, and the manifest's bad rows;
- ``contents/*.html`` and ``styles/*.html``: one content (or style) across everything it met;
- ``pairs/<id>.html``: a pair's result filling the page's main column, to compare in place with its
  content and neighbours, its snapshots, losses, inputs and masks, settings, and links to the pairs before and after;
  a clip's plays its result beside its source, over a strip of its frames (``tasks.gallery.clips``);
- ``contact_sheet*.png``: labelled sheets of the grid (``tasks.gallery.images``).

It reads the pair folders' records (``tasks.gallery.entries``), so it also covers the outputs of
several runs. A pair with no result shows its last snapshot, as partial; a clip loops its preview. Pages use
relative links only (they work from disk, any static server, or a synced bucket) and no script at all.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from tasks.gallery.chart import FRAME_TITLE, X_TITLE, loss_chart
from tasks.gallery.clips import clip_stills, frame_path, frame_strips, previews
from tasks.gallery.entries import Entry, read_entries
from tasks.gallery.images import (
    Store,
    contact_sheets,
    input_images,
    mask_images,
    png_size,
    thumbnails,
)
from tasks.gallery.layout import NEIGHBOURS, Layout, arrange, input_name, neighbours, page_of
from tasks.manifest.read import Pair, manifest_name
from tasks.runs.records import GalleryResult
from tasks.storage.records import RESULT, SOURCE_PREVIEW, VIDEO, Status, snapshot_name
from tasks.storage.root import OutputRoot

__all__ = ["build_gallery"]

SHOWN = (Status.RENDERED, Status.FAILED, Status.PENDING)  # where a pair stands, as the gallery counts it
COMPARED = ("style", "variant")  # the neighbours a detail page's picture can be swapped for (same content)
# A detail page's view is as high as the window less what is above it (px): the header and a row of choices,
# each further row of choices (their labels at about 8 px a character across a MAIN px column), a failure's note.
VIEW_MARGIN, CHOICES_ROW, FAILURE_LINES, MAIN = 190, 32, 70, 900

Sizes = dict[str, tuple[int, int]]  # pair id -> (width, height) of its main picture

_ENV = Environment(loader=PackageLoader("tasks.gallery", "templates"), autoescape=select_autoescape(default=True))


def _breakable(text: object) -> Markup:
    """``text`` escaped, with line-break opportunities after path and list separators only (never mid-token)."""
    return Markup("<wbr>").join(escape(part) for part in re.split(r"(?<=[/|,])(?=.)", str(text)))


def _flags(text: str) -> Markup:
    """Command-line flags whose names never break (``--snapshot-every``), their values as ``_breakable``."""
    tokens = [
        Markup('<span class="flag">%s</span>') % t if t.startswith("-") else _breakable(t) for t in text.split(" ")
    ]
    return Markup(" ").join(tokens)


_ENV.filters["breakable"] = _breakable
_ENV.filters["flags"] = _flags


@dataclass(frozen=True)
class View:
    """A picture the detail page's main view can show: the result (or partial), the content, a neighbour."""

    label: str
    src: str  # relative to the pair's page
    kind: str  # result, partial, content or neighbour
    size: tuple[int, int] | None = None  # natural (width, height), where known


def build_gallery(
    out: str, pairs: list[Pair] | None = None, manifest: str | None = None, problems: dict[int, str] | None = None
) -> GalleryResult:
    """Write ``<out>/gallery/`` of every pair under ``out``, or of ``pairs`` (``manifest``'s) in order;
    return where the index and the contact sheets are, what they show, and notes for the user.

    ``problems``: the manifest's bad rows (line -> what is wrong, ``tasks.runs.report.row_problems``),
    listed on the index and counted as failed, as the run counts them.
    """
    root = OutputRoot.open(out)
    gallery = root.gallery()
    entries = read_entries(out, pairs)
    layout = arrange(entries)
    store = Store(root.fs)
    thumbs, partials = thumbnails(store, root.path, gallery, entries)
    loops = previews(store, root.path, gallery, entries)
    inputs = input_images(store, gallery, entries, clip_stills(store, root.path, entries))
    bad_rows = sorted((problems or {}).items())
    counts = {s: sum(e.status == s for e in entries) for s in SHOWN}
    counts[Status.FAILED] += len(bad_rows)
    title = manifest_name(manifest) if manifest else posixpath.basename(root.path) or root.path
    heading = f"{title} · {datetime.now(UTC):%Y-%m-%d} · " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    sheets = contact_sheets(store, gallery, layout, heading, thumbs, inputs)
    page = {"title": title, "layout": layout, "thumbs": thumbs, "partials": partials, "inputs": inputs}
    page["previews"] = loops
    page["name"] = input_name
    contents = {e.content: page_of("contents", e.content) for e in entries}
    styles = {e.column: page_of("styles", e.column) for e in entries}
    files = {
        f"{gallery}/index.html": _render(
            "index.html.j2",
            **page,
            manifest=manifest,
            counts=counts,
            contents=contents,
            styles=styles,
            sheets=sheets,
            bad_rows=bad_rows,
        )
    }
    context = {**page, "cards": _cards(entries, layout, page), "contents": contents, "styles": styles}
    context["strips"] = frame_strips(store, root.path, gallery, entries)
    context["masks"] = mask_images(store, gallery, entries)
    files |= _subset_pages(gallery, entries, context)
    files |= _detail_pages(gallery, entries, context, _picture_sizes(store, root, entries))
    store.put({path: text.encode() for path, text in files.items()})
    return GalleryResult(
        index=root.gallery_uri("index.html"),
        contact_sheets=[root.gallery_uri(sheet) for sheet in sheets],
        pairs=len(entries),
        contents=len(contents),
        styles=len(styles),
        notes=[f"{e.pair_id} (pending): {e.note}" for e in entries if e.note],
    )


def _cards(entries: list[Entry], layout: Layout, page: dict[str, Any]) -> dict[str, dict[str, Markup]]:
    """Each pair's link from a page one folder down, rendered once per caption: naming its style
    (for pages of its content), its content (for pages of its style), or only what sets it apart
    (beside its own variants)."""
    link = _ENV.get_template("macros.html.j2").module.pair_link  # type: ignore[attr-defined]
    cards = {}
    for e in entries:
        named = {"style": input_name(e.column), "content": input_name(e.content), "variant": ""}
        cards[e.pair_id] = {
            kind: link(
                e,
                page["thumbs"],
                " · ".join(filter(None, [name, layout.describe(e)])),
                "../",
                page["partials"],
                page["previews"],
            )
            for kind, name in named.items()
        }
    return cards


def _picture_sizes(store: Store, root: OutputRoot, entries: list[Entry]) -> Sizes:
    """Pair id -> the natural size of its result, or of its partial picture (from the PNGs' headers)."""
    paths = {e.pair_id: root.pair(e.pair_id, _picture(e)) for e in entries if _picture(e)}
    heads = store.heads(list(paths.values()), 24)
    sizes = {pid: png_size(heads.get(path, b"")) for pid, path in paths.items()}
    return {pid: size for pid, size in sizes.items() if size}


def _picture(entry: Entry) -> str:
    """The file of the pair's main picture in its folder: its result, its last snapshot, or none."""
    if entry.rendered:
        return RESULT
    return snapshot_name(entry.partial) if entry.partial is not None else ""


def _views(entry: Entry, others: dict[str, list[Entry]], context: dict[str, Any], sizes: Sizes) -> list[View]:
    """What the detail page's main view can show: the pair's own picture (none: no view), then its content and
    the pictures (results, or partial ones) of its neighbours of the same content, to compare with in place."""

    def picture(e: Entry) -> str:
        return f"../../{quote(e.pair_id, safe='')}/{_picture(e)}"

    if not _picture(entry):
        return []
    kind = "result" if entry.rendered else "partial"
    label = "result" if entry.rendered else f"partial: iteration {entry.partial}"
    views = [View(label, picture(entry), kind, sizes.get(entry.pair_id))]
    if entry.content in context["inputs"]:
        views.append(View("content", f"../{context['inputs'][entry.content]['preview']}", "content"))
    layout = context["layout"]
    for kind in COMPARED:
        for other in others.get(kind, []):
            if _picture(other):
                named = [input_name(other.column) if kind == "style" else "", layout.describe(other)]
                label = " · ".join(filter(None, named)) + ("" if other.rendered else f" (partial, {other.partial})")
                views.append(View(label, picture(other), "neighbour", sizes.get(other.pair_id)))
    return views


def _subset_pages(gallery: str, entries: list[Entry], context: dict[str, Any]) -> dict[str, str]:
    """The page of each content and of each style."""
    pages = {}
    for kind, paths in (("content", context["contents"]), ("style", context["styles"])):
        for key, path in paths.items():
            other = "style" if kind == "content" else "content"  # a content's page names each card's style
            chosen = [e for e in entries if (e.content if kind == "content" else e.column) == key]
            cards = [context["cards"][e.pair_id][other] for e in chosen]
            pages[f"{gallery}/{path}"] = _render("subset.html.j2", **(context | {"cards": cards}), kind=kind, key=key)
    return pages


def _detail_pages(gallery: str, entries: list[Entry], context: dict[str, Any], sizes: Sizes) -> dict[str, str]:
    """Every pair's page, each linking to the pairs before and after it in the grid's order."""
    layout = context["layout"]
    order = [e for row in layout.rows for column in layout.columns for e in layout.cells[(row.key, column.key)]]
    pages = {}
    for k, entry in enumerate(order):
        steps = {"previous": order[k - 1] if k else None, "next": order[k + 1] if k + 1 < len(order) else None}
        pages[f"{gallery}/{entry.href}"] = _detail_page(entry, entries, {**context, "steps": steps}, sizes)
    return pages


def _view_margin(entry: Entry, views: list[View]) -> int:
    """How much of the window's height a detail page's view leaves for what is above it (``VIEW_MARGIN``)."""
    rows = math.ceil(sum(len(v.label) + 6 for v in views) * 8 / MAIN)
    return VIEW_MARGIN + CHOICES_ROW * max(0, rows - 1) + (0 if entry.rendered else FAILURE_LINES)


def _detail_page(entry: Entry, entries: list[Entry], context: dict[str, Any], sizes: Sizes) -> str:
    record = entry.rendered
    settings = entry.settings
    others = neighbours(entry, entries)
    folder = f"../../{quote(entry.pair_id, safe='')}"
    clip = {"video": f"{folder}/{VIDEO}", "source": f"{folder}/{SOURCE_PREVIEW}"} if entry.clip and record else None
    views = [] if clip else _views(entry, others, context, sizes)  # a clip's videos stand in for its pictures
    strip = context["strips"].get(entry.pair_id, [])
    shape = next((v.size for v in views if v.size), None)  # the content's shape: every view has it
    return _render(
        "pair.html.j2",
        **context,
        e=entry,
        record=entry.record,
        final=record.final.weighted(settings) if record and settings else None,
        settings=settings.as_cells() if settings else {},
        mask_names=_mask_names(entry),
        flags=settings.flags() if settings else "",
        chart=loss_chart(entry.losses, settings, FRAME_TITLE if entry.clip else X_TITLE)
        if entry.losses and settings
        else None,
        clip=clip,
        frames=[(n, f"../{thumb}", f"../../{frame_path(quote(entry.pair_id, safe=''), n)}") for n, thumb in strip],
        views=views,
        margin=_view_margin(entry, views),
        aspect=shape[0] / shape[1] if shape else None,
        snapshots=[(it, f"{folder}/{snapshot_name(it)}") for it in entry.snapshots],
        total=settings.total_iterations if settings else None,
        neighbours={
            NEIGHBOURS[kind]: [context["cards"][o.pair_id][kind] for o in group]
            for kind, group in others.items()
            if group
        },
        content_page=context["contents"][entry.content],
        style_page=context["styles"][entry.column],
    )


def _mask_names(entry: Entry) -> dict[str, str]:
    """The settings line of the pair's masks: each kind -> their file names, one per style for a style's
    (``style masks: left.png | right.png``; "whole image" for a style image with none); none without masks."""
    names = {}
    for kind in ("style mask", "style image mask"):
        uris = [entry.masks.get(f"{kind} {n}") for n in range(1, len(entry.styles) + 1)]
        if any(uris):
            names[f"{kind}s"] = " | ".join(input_name(uri) if uri else "whole image" for uri in uris)
    if "keep mask" in entry.masks:
        names["keep mask"] = input_name(entry.masks["keep mask"])
    return names


def _render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)
