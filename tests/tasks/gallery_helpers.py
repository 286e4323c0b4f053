"""Helpers of the gallery tests: tiny renders, fake pair folders, link checks, and browser pages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from nst_core import Settings
from tasks.failures import failure_of
from tasks.manifest import Pair, read_manifest
from tasks.run_pair import RunOptions, failure_record, run_pair
from tasks.storage import write_failure, write_pair

if TYPE_CHECKING:
    from playwright.sync_api import Page

# Settings columns of every rendered manifest: a random tiny VGG, 32 px (~0.3 s per pair on a CPU).
# They are columns, not read_manifest defaults, so `build_gallery(out, manifest)` finds the same pair ids.
FAST = {"weights": "random:0", "image_size": 32}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOSS_COLUMNS = ["iteration", "content", "style", "tv", "total", "lr", "elapsed_s", "level"]


def write_manifest(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """A CSV manifest of ``rows`` (properly quoted: names may hold quotes, commas, markup)."""
    rows = [FAST | row for row in rows]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_pairs(manifest: Path) -> list[Pair]:
    parsed = read_manifest(str(manifest))
    assert parsed.errors == []
    return parsed.pairs


def render_or_record(pair: Pair, out: str) -> str:
    """What the render task does: render the pair, or write its failure record; return the status."""
    return run_pair(pair, RunOptions(out), "cpu")["status"]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass(frozen=True)
class FakePair:
    """The files of a pair folder as ``run_pair`` writes them, without rendering."""

    pair_id: str
    content: str
    styles: tuple[str, ...]
    settings: Settings = field(default_factory=lambda: Settings.from_values({**FAST, "iterations": 3, "device": "cpu"}))
    tags: tuple[str, ...] = ()
    row: int = 2
    iterations: int = 3

    @property
    def fingerprint(self) -> str:
        return Pair(self.pair_id, self.row, self.content, self.styles, self.settings, self.tags).fingerprint

    def losses(self) -> list[dict[str, float]]:
        return [
            {"iteration": i, "content": 2.0 / i, "style": 0.5 / i, "tv": 3.0 / i, "total": 4e5 / i, "lr": 1.0}
            | {"elapsed_s": 0.01 * i, "level": 1}
            for i in range(1, self.iterations + 1)
        ]

    def files(self, result: bytes) -> tuple[dict[str, bytes], dict[str, Any]]:
        """(files, marker) for ``storage.write_pair``, with the keys ``run_pair`` writes."""
        losses = self.losses()
        lines = [",".join(LOSS_COLUMNS), *(",".join(str(step[c]) for c in LOSS_COLUMNS) for step in losses)]
        meta = {
            "pair_id": self.pair_id,
            "row": self.row,
            "tags": list(self.tags),
            "content": {"uri": self.content, "sha256": "0" * 64},
            "styles": [{"uri": uri, "sha256": "1" * 64} for uri in self.styles],
            "settings": self.settings.model_dump(mode="json"),
            "device": "cpu",
            "precision": "fp32",
            "timings": {"setup_s": 0.1, "optimise_s": 0.2, "ms_per_iteration": 66.0, "evaluations": 4, "wall_s": 0.3},
            "versions": {"stylebatch": "0.1.0", "torch": "2", "torchvision": "0", "pillow": "11", "python": "3.11"},
        }
        marker = {
            "pair_id": self.pair_id,
            "fingerprint": self.fingerprint,
            "final": losses[-1],
            "wall_s": 0.3,
            "device": "cpu",
            "worker": "test-host:1",
            "started_at": datetime.now(UTC).isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
        files = {
            "result.png": result,
            "losses.csv": ("\n".join(lines) + "\n").encode(),
            "settings.json": json.dumps(meta, indent=2).encode(),
        }
        return files, marker

    def write(self, out: str, result: bytes) -> None:
        write_pair(out, self.pair_id, *self.files(result))


def fake_failure(out: str, pair: FakePair, error: BaseException) -> None:
    """A failed pair, recorded as the render task records it."""
    real = Pair(pair.pair_id, pair.row, pair.content, pair.styles, pair.settings, pair.tags)
    write_failure(out, pair.pair_id, failure_record(real, failure_of(error).reason))


# --- pages on disk ---------------------------------------------------------------------------------------------

LINK_ATTRIBUTES = {"href", "src", "srcset", "poster", "action", "data", "xlink:href"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.metas: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes |= {name for name, _ in attrs}
        if tag == "meta":
            self.metas.append(dict(attrs))
        self.links += [(tag, name, value) for name, value in attrs if name in LINK_ATTRIBUTES and value is not None]


def parse_page(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def resolved_links(page: Path, root: Path) -> dict[str, Path]:
    """Every link and source of ``page`` -> the file it names; each must be relative and exist under ``root``."""
    targets = {}
    for tag, attribute, value in parse_page(page).links:
        where = f"{page.name}: <{tag} {attribute}={value!r}>"
        parts = urlsplit(value)
        assert not parts.scheme, f"{where} has a scheme"
        assert not parts.netloc, f"{where} names a host"
        assert not value.startswith(("/", "\\")), f"{where} is absolute"
        assert "\\" not in value, f"{where} uses a backslash"
        assert parts.path, f"{where} is empty"
        target = (page.parent / unquote(parts.path)).resolve()
        assert target.is_relative_to(root.resolve()), f"{where} leaves {root}"
        assert target.is_file(), f"{where} points to {target}, which does not exist"
        targets[value] = target
    return targets


# --- pages in the browser --------------------------------------------------------------------------------------


@dataclass
class PageLog:
    """What a page reported: console errors, uncaught exceptions, and dialogs (dismissed)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watch(page: Page) -> PageLog:
    log = PageLog()
    page.on("console", lambda message: log.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: log.errors.append(f"pageerror: {error}"))

    def on_dialog(dialog: Any) -> None:
        log.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return log


def load_images(page: Page) -> list[dict[str, Any]]:
    """Scroll every image into view (they are lazy), wait until all are done; return src and natural size."""
    for image in page.locator("img").all():
        image.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
    return page.evaluate("Array.from(document.images).map(i => ({src: i.getAttribute('src'), width: i.naturalWidth}))")
