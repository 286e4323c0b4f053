"""Helpers of the gallery tests: tiny renders, fake pair and clip folders, link checks, and browser pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from nst_core import Settings
from nst_core.video.encode import encode_preview, encode_video
from tasks.manifest.read import Pair, read_manifest
from tasks.runs.failures import failure_of
from tasks.runs.options import RunOptions
from tasks.runs.pairs import failure_record, run_pair
from tasks.storage.folders import write_failure, write_pair
from tasks.storage.records import (
    PREVIEW,
    RESULT,
    SOURCE_PREVIEW,
    VIDEO,
    InputFile,
    LossRow,
    RenderRecord,
    RenderTimings,
    clip_files,
    pair_files,
    snapshot_iterations,
)
from tasks.storage.root import FRAMES
from tests.conftest import make_image

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
    return run_pair(pair, RunOptions(out=out), "cpu").status


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
    """A pair folder as ``run_pair`` writes it (through ``tasks.storage.records``), without rendering."""

    pair_id: str
    content: str
    styles: tuple[str, ...]
    settings: Settings = field(default_factory=lambda: Settings.from_values({**FAST, "iterations": 3, "device": "cpu"}))
    tags: tuple[str, ...] = ()
    row: int = 2
    style_masks: tuple[str, ...] = ()  # as ``Pair``'s (the keep mask is a setting)
    style_image_masks: tuple[str, ...] = ()

    @property
    def pair(self) -> Pair:
        masks = {"style_masks": self.style_masks, "style_image_masks": self.style_image_masks}
        return Pair(self.pair_id, self.row, self.content, self.styles, self.settings, self.tags, **masks)

    def losses(self) -> list[LossRow]:
        return [
            LossRow(iteration=i, content=2.0 / i, style=0.5 / i, tv=3.0 / i, total=4e5 / i, lr=1.0, elapsed_s=0.01 * i)
            for i in range(1, self.settings.total_iterations + 1)
        ]

    def record(self) -> RenderRecord:
        now = datetime.now(UTC)
        return RenderRecord(
            pair_id=self.pair_id,
            fingerprint=self.pair.fingerprint,
            final=self.losses()[-1],
            wall_s=0.3,
            device="cpu",
            worker="test-host:1",
            started_at=now,
            finished_at=now,
            row=self.row,
            tags=list(self.tags),
            content=InputFile(uri=self.content, sha256="0" * 64),
            styles=[InputFile(uri=uri, sha256="1" * 64) for uri in self.styles],
            masks={role: InputFile(uri=uri, sha256="2" * 64) for role, uri in self.pair.masks.items()},
            settings=self.settings,
            precision="fp32",
            timings=RenderTimings(setup_s=0.1, optimise_s=0.2, ms_per_iteration=66.0, evaluations=4, wall_s=0.3),
        )

    def files(self, result: bytes, size: tuple[int, int] = (4, 4)) -> dict[str, bytes]:
        """The folder's files, with ``result`` (any bytes) as the result; with ``snapshot_every`` in the
        settings, its snapshots too (pictures of ``size``)."""
        snapshots = {it: make_image(it, size) for it in snapshot_iterations(self.settings)}
        return pair_files(self.record(), Image.new("RGB", (4, 4)), self.losses(), snapshots) | {RESULT: result}

    def write(self, out: str, result: bytes, size: tuple[int, int] = (4, 4)) -> None:
        write_pair(out, self.pair_id, self.files(result, size))


def solid_frames(colours: list[tuple[int, int, int]], size: tuple[int, int] = (32, 24)) -> list[Image.Image]:
    """A clip's frames, each of one colour (told apart after lossy encoding)."""
    return [Image.new("RGB", size, colour) for colour in colours]


@dataclass(frozen=True)
class FakeClip(FakePair):
    """A finished clip as the chain writes it (``tasks.runs.chains``): each frame's folder under ``frames/``, then
    the clip's folder, its videos encoded for real from ``styled`` (the results) and ``source`` (the content)."""

    styled: tuple[Image.Image, ...] = ()
    source: tuple[Image.Image, ...] = ()

    @property
    def pair(self) -> Pair:
        return replace(super().pair, clip=True)

    def losses(self) -> list[LossRow]:
        """One row per frame; a temporal term from the second frame on."""
        return [
            LossRow(iteration=i, content=1.0, style=0.5, tv=2.0, total=4e5, lr=1.0, elapsed_s=0.1, temporal=1e-3 * i)
            for i in range(len(self.styled))
        ]

    def write_clip(self, out: str, work: Path) -> None:
        """Write the frames' and the clip's folders under ``out``, encoding the videos in ``work``."""
        for i, (frame, loss) in enumerate(zip(self.styled, self.losses(), strict=True)):
            folder = f"{FRAMES}/{self.pair_id}/{i:06d}"
            record = self.record().model_copy(update={"pair_id": folder, "final": loss})
            write_pair(out, folder, pair_files(record, frame, [loss], {}))
        work.mkdir(parents=True, exist_ok=True)
        encode_video(self.styled, str(work / VIDEO), Fraction(8))
        encode_preview(self.styled, str(work / PREVIEW), Fraction(8))
        encode_preview(self.source, str(work / SOURCE_PREVIEW), Fraction(8))
        videos = {name: (work / name).read_bytes() for name in (VIDEO, PREVIEW, SOURCE_PREVIEW)}
        middle = self.styled[len(self.styled) // 2]
        write_pair(out, self.pair_id, clip_files(self.record(), middle, self.losses(), videos))


def fake_failure(out: str, pair: FakePair, error: BaseException) -> None:
    """A failed pair, recorded as the render task records it."""
    write_failure(out, pair.pair_id, failure_record(pair.pair, failure_of(error).reason))


# --- pages on disk ---------------------------------------------------------------------------------------------

LINK_ATTRIBUTES = {"href", "src", "srcset", "poster", "action", "data", "xlink:href"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.metas: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.attributes: set[str] = set()
        self.elements: list[tuple[str, dict[str, str | None]]] = []  # tag, its attributes

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.elements.append((tag, dict(attrs)))
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
    """Scroll every shown image into view (they are lazy), wait until all are done; return their src and natural
    size. Images not shown (a detail page's other views, loaded when chosen) are left out."""
    for image in page.locator("img").all():
        if image.is_visible():
            image.scroll_into_view_if_needed()
    shown = "Array.from(document.images).filter(i => i.checkVisibility())"
    page.wait_for_function(f"{shown}.every(i => i.complete)", timeout=15_000)
    return page.evaluate(f"{shown}.map(i => ({{src: i.getAttribute('src'), width: i.naturalWidth}}))")
