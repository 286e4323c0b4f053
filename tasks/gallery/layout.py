"""How the gallery arranges its pairs: a batch grid or a settings sweep, and what each cell says.

- **Batch**: contents down, styles across; the rare cell with several renders shows them side by side.
- **Sweep**: when more than half of the content x style cells hold renders that differ in their
  settings, those settings are the sweep: each content x style is a row, and each combination of the
  swept values a column, in the order of the values, labelled with them.

A cell's caption names the settings that differ from the page's shared settings (the sweep's
settings are the column labels, not captions).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from nst_core import Settings
from tasks.manifest.read import label_cells

if TYPE_CHECKING:
    from tasks.gallery.entries import Entry

__all__ = ["NEIGHBOURS", "Axis", "Layout", "arrange", "distinctions", "input_name", "neighbours", "page_of"]

HEADLINE = ("backbone", "image_size", "iterations", "optimizer")  # shared settings always named in the header


@dataclass(frozen=True)
class Axis:
    """A row or column: its key in ``Layout.cells``, its label, the inputs pictured, its page."""

    key: str
    label: str
    images: tuple[str, ...] = ()  # input URIs shown as thumbnails in the header
    page: str = ""  # the page of this content or style alone, relative to the gallery


@dataclass
class Layout:
    rows: list[Axis]
    columns: list[Axis]
    cells: dict[tuple[str, str], list[Entry]]
    shared: dict[str, str]  # settings every pair has, as written in a manifest
    sweep: list[str] = field(default_factory=list)  # the settings along the columns; empty for a batch
    captions: dict[str, str] = field(default_factory=dict)  # pair id -> its settings that differ
    variants: dict[str, str] = field(default_factory=dict)  # pair id -> its swept values (its column)

    @property
    def headline(self) -> dict[str, str]:
        """The shared settings worth a header line: the main ones and every one off its default."""
        defaults = Settings().as_cells()
        return {k: v for k, v in self.shared.items() if k in HEADLINE or defaults.get(k) != v}

    def describe(self, entry: Entry) -> str:
        """What tells the pair apart from the others of the gallery: its swept values and differences."""
        return ", ".join(t for t in (self.variants.get(entry.pair_id), self.captions.get(entry.pair_id)) if t)


def arrange(entries: list[Entry]) -> Layout:
    texts = {e.pair_id: _text(e) for e in entries}
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        groups.setdefault((entry.content, entry.column), []).append(entry)
    varied = [_differing([texts[e.pair_id] for e in group]) for group in groups.values()]
    shared = _shared(texts.values())
    is_sweep = 2 * sum(bool(keys) for keys in varied) > len(groups)
    sweep = sorted({k for keys in varied for k in keys}, key=list(Settings.model_fields).index) if is_sweep else []
    captions = {
        pid: ", ".join(f"{k}={v}" for k, v in text.items() if k not in shared and k not in sweep)
        for pid, text in texts.items()
    }
    if sweep:
        return _sweep_layout(entries, groups, texts, shared, sweep, captions)
    contents = _unique(e.content for e in entries)
    columns = _unique(e.column for e in entries)
    cells = {(c, s): groups.get((c, s), []) for c in contents for s in columns}
    return Layout(
        [Axis(c, input_name(c), (c,), page_of("contents", c)) for c in contents],
        [Axis(s, input_name(s), tuple(s.split("|")), page_of("styles", s)) for s in columns],
        cells,
        shared,
        [],
        captions,
    )


def _sweep_layout(
    entries: list[Entry],
    groups: dict[tuple[str, str], list[Entry]],
    texts: dict[str, dict[str, str]],
    shared: dict[str, str],
    sweep: list[str],
    captions: dict[str, str],
) -> Layout:
    def variant(entry: Entry) -> str:
        return ", ".join(f"{k}={texts[entry.pair_id].get(k, '')}" for k in sweep)

    order = {variant(e): _sort_key(e.settings, sweep) for e in entries}
    columns = sorted(order, key=order.__getitem__)
    rows = [
        Axis(
            f"{c}\0{s}",
            f"{input_name(c)} \N{MULTIPLICATION SIGN} {input_name(s)}",
            (c, *s.split("|")),
            page_of("contents", c),
        )
        for c, s in groups
    ]
    cells: dict[tuple[str, str], list[Entry]] = {(row.key, v): [] for row in rows for v in columns}
    for entry in entries:
        cells[(f"{entry.content}\0{entry.column}", variant(entry))].append(entry)
    variants = {e.pair_id: variant(e) for e in entries}
    return Layout(rows, [Axis(v, v) for v in columns], cells, shared, sweep, captions, variants)


NEIGHBOURS = {  # what differs from the page's pair (what their captions name) -> the heading of those neighbours
    "style": "same content, other styles",
    "content": "same style, other contents",
    "variant": "other renders of this pair",
}


def neighbours(entry: Entry, entries: list[Entry]) -> dict[str, list[Entry]]:
    """What a detail page links to, by what differs: the same content in other styles, the same style
    on other contents, and other renders of the same content and style (``NEIGHBOURS``)."""
    others = [e for e in entries if e.pair_id != entry.pair_id]
    same_content = [e.content == entry.content for e in others]
    same_style = [e.column == entry.column for e in others]
    return {
        "style": [e for e, c, s in zip(others, same_content, same_style, strict=True) if c and not s],
        "content": [e for e, c, s in zip(others, same_content, same_style, strict=True) if s and not c],
        "variant": [e for e, c, s in zip(others, same_content, same_style, strict=True) if c and s],
    }


def distinctions(entries: list[Entry]) -> dict[str, str]:
    """What tells each of ``entries`` (a cell's renders) from the others: pair id -> the settings that differ
    among them, as ``style_weight=3, iterations=40``."""
    texts = {e.pair_id: _text(e) for e in entries}
    keys = [k for k in Settings.model_fields if k in _differing(list(texts.values()))]
    return {pid: ", ".join(f"{k}={text.get(k, '')}" for k in keys) for pid, text in texts.items()}


def input_name(uri: str) -> str:
    """A readable name for an input: its file name, or the names of a blend."""
    return " + ".join(unquote(posixpath.basename(u.split("?")[0])) for u in uri.split("|"))


def page_of(kind: str, key: str) -> str:
    """The page of one content or style (``kind``: contents or styles), relative to the gallery."""
    return f"{kind}/{hashlib.sha256(key.encode()).hexdigest()[:12]}.html"


def _text(entry: Entry) -> dict[str, str]:
    text = label_cells(entry.settings, bool(entry.masks)) if entry.settings else {}
    return {k: v for k, v in text.items() if Settings.knob(k).compared}


def _shared(texts: Iterable[dict[str, str]]) -> dict[str, str]:
    texts = list(texts)
    if not texts:
        return {}
    return {k: v for k, v in texts[0].items() if all(t.get(k) == v for t in texts[1:])}


def _differing(texts: list[dict[str, str]]) -> set[str]:
    return {k for t in texts for k in t if any(o.get(k) != t.get(k) for o in texts)}


def _sort_key(settings: Settings | None, keys: list[str]) -> tuple[Any, ...]:
    """Order by the swept values themselves (numbers as numbers), unset values first."""
    values = settings.model_dump() if settings else {}
    return tuple((values.get(k) is not None, _comparable(values.get(k))) for k in keys)


def _comparable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (1, str(value))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
