"""Gallery images: result, partial-picture and input thumbnails, input previews, and the contact sheet."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image, ImageDraw, ImageFont

from nst_core.images import decode_image, read_bytes
from tasks.gallery.layout import distinctions
from tasks.storage.records import RESULT, InputFile, snapshot_name
from tasks.storage.root import put_files

if TYPE_CHECKING:
    from tasks.gallery.entries import Entry
    from tasks.gallery.layout import Axis, Layout

__all__ = [
    "CONTACT_SHEET",
    "Store",
    "contact_sheets",
    "input_images",
    "keyed_thumbnails",
    "mask_images",
    "png_size",
    "thumbnails",
]

THUMB, PREVIEW = 480, 768  # result thumbnails fill a 3-column grid on a wide screen; input previews
INPUTS, MASKS = "inputs", "masks"  # the gallery's folders of input and mask pictures
log = logging.getLogger(__name__)
K = TypeVar("K")
Still = Callable[[], Image.Image | None]  # a picture of an input that is not one (a clip), None if there is none

# Contact sheets: cells of CELL px, at most SHEET_ROWS x SHEET_COLUMNS per sheet, readable as written.
CONTACT_SHEET = "contact_sheet.png"
CELL, SHEET_ROWS, SHEET_COLUMNS = 256, 6, 6
CELL_VARIANTS = 4  # renders drawn side by side in one cell at most (the pages show them all)
HEADING, SETTINGS_LINE, SETTINGS_LINES = 42, 20, 2  # the title's first line; then the shared settings' lines
SETTINGS_SEPARATOR = " · "
CAPTION_LINE, CAPTION_LINES = 15, 2  # the captions of renders that share a cell
TITLE = HEADING + SETTINGS_LINES * SETTINGS_LINE + 6  # the title band
LABEL, MARGIN = 28, 12  # label line and title margin heights, px
TITLE_FONT, LABEL_FONT = ImageFont.load_default(size=22), ImageFont.load_default(size=15)
CAPTION_FONT = ImageFont.load_default(size=12)
BACKGROUND, TEXT, BAD = (24, 24, 24), (232, 232, 232), (230, 120, 100)


def thumbnails(store: Store, root: str, gallery: str, entries: list[Entry]) -> tuple[dict[str, str], dict[str, str]]:
    """Thumbnails of the results, and of the last snapshots of pairs with no result (``Entry.partial``): pair
    id -> path relative to the gallery, each; only missing thumbnails are made."""
    results = {e.pair_id: f"thumbs/{e.pair_id}-{e.rendered.fingerprint[:8]}.jpg" for e in entries if e.rendered}
    wanted = {pid: (f"{root}/{pid}/{RESULT}", name) for pid, name in results.items()}
    for e in entries:
        if e.partial is not None:  # the snapshot's size tells one attempt's from another's
            tag = hashlib.sha256(f"{e.partial}\0{e.snapshots[e.partial]}".encode()).hexdigest()[:8]
            source = f"{root}/{e.pair_id}/{snapshot_name(e.partial)}"
            wanted[e.pair_id] = (source, f"thumbs/{e.pair_id}-partial-{tag}.jpg")
    made = keyed_thumbnails(store, gallery, wanted)
    return {p: t for p, t in made.items() if p in results}, {p: t for p, t in made.items() if p not in results}


def keyed_thumbnails(store: Store, gallery: str, wanted: dict[K, tuple[str, str]], size: int = THUMB) -> dict[K, str]:
    """key -> thumbnail name (``thumbs/...``), of the pictures ``wanted`` (key -> (picture path, thumbnail name)),
    at most ``size`` px; the thumbnails that exist are kept, the others made; a picture that cannot be read has
    none."""
    if not wanted:  # no listing: each is a request on S3
        return {}
    existing = store.names(f"{gallery}/thumbs")
    todo = {key: wanted[key] for key, (_, name) in wanted.items() if name not in existing}
    blobs = store.cat([source for source, _ in todo.values()])
    with ThreadPoolExecutor() as pool:  # Pillow releases the GIL while decoding and resizing
        thumbs = pool.map(lambda key: _jpeg(blobs.get(todo[key][0]), size), todo)
        made = {key: data for key, data in zip(todo, thumbs, strict=True) if data}
    store.put({f"{gallery}/{todo[key][1]}": data for key, data in made.items()})
    return {key: name for key, (_, name) in wanted.items() if key not in todo or key in made}


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's first 24 bytes (its signature and IHDR chunk), else None."""
    if len(head) < 24 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def input_images(
    store: Store, gallery: str, entries: list[Entry], stills: dict[str, Still] | None = None
) -> dict[str, dict[str, str]]:
    """input URI -> {"thumb": ..., "preview": ...} relative to the gallery; unreadable inputs are left out. The
    inputs in ``stills`` (clips) are pictured by what those give, never read."""
    stills = stills or {}
    files = [f for e in entries if e.record for f in [e.record.content, *e.record.styles]]
    files += [InputFile(uri=uri) for e in entries for uri in [e.content, *e.styles]]
    keys = _copies(store, gallery, INPUTS, files, ".jpg", lambda uri: _input_files(uri, stills.get(uri)))
    return {
        uri: {"thumb": f"{INPUTS}/{key}.jpg", "preview": f"{INPUTS}/{key}-preview.jpg"} for uri, key in keys.items()
    }


def mask_images(store: Store, gallery: str, entries: list[Entry]) -> dict[str, str]:
    """mask URI -> its picture relative to the gallery (a greyscale PNG, as the engine reads it), of every pair's
    masks (``Entry.masks``); unreadable masks are left out."""
    files = [f for e in entries if e.record for f in e.record.masks.values()]
    files += [InputFile(uri=uri) for e in entries for uri in e.masks.values()]
    keys = _copies(store, gallery, MASKS, files, ".png", _mask_file)
    return {uri: f"{MASKS}/{key}.png" for uri, key in keys.items()}


def _copies(
    store: Store,
    gallery: str,
    folder: str,
    files: list[InputFile],
    suffix: str,
    make: Callable[[str], dict[str, bytes] | None],
) -> dict[str, str]:
    """URI -> key of the pictures of ``files`` in the gallery's ``folder``, as ``<key><suffix>`` for each suffix ->
    bytes that ``make`` gives for the URI; only those whose ``<key><suffix>`` is missing are made, and those that
    cannot be made are left out. The checksum of a rendered file, where known, goes into its key."""
    keys: dict[str, str] = {}
    for item in files:
        if item.sha256 or item.uri not in keys:
            keys[item.uri] = hashlib.sha256(f"{item.uri}\0{item.sha256}".encode()).hexdigest()[:16]
    if not keys:  # no listing: each is a request on S3
        return {}
    existing = store.names(f"{gallery}/{folder}")
    todo = [uri for uri, key in keys.items() if f"{folder}/{key}{suffix}" not in existing]
    with ThreadPoolExecutor(max_workers=8) as pool:  # inputs may be remote: overlap the reads
        made = dict(zip(todo, pool.map(make, todo), strict=True))
    store.put(
        {
            f"{gallery}/{folder}/{keys[uri]}{name}": data
            for uri, pictures in made.items()
            if pictures
            for name, data in pictures.items()
        },
    )
    return {uri: key for uri, key in keys.items() if uri not in made or made[uri]}


def contact_sheets(
    store: Store,
    gallery: str,
    layout: Layout,
    heading: str,
    thumbs: dict[str, str],
    inputs: dict[str, dict[str, str]],
) -> list[str]:
    """The layout as labelled PNG sheets of at most ``SHEET_ROWS`` x ``SHEET_COLUMNS`` cells each: a
    title band (``heading``, which part of the grid a sheet holds, and the shared settings), column and
    row headers with their inputs and labels, the results scaled to fill their cells as the inputs do
    (several renders share a cell, each captioned with what tells it apart). Returns their names."""
    if not layout.rows:
        return []
    wanted = {f"{gallery}/{inputs[u]['thumb']}" for a in layout.rows + layout.columns for u in a.images if u in inputs}
    wanted |= {f"{gallery}/{t}" for t in thumbs.values()}
    blobs = store.cat(sorted(wanted))

    def picture(uri: str) -> bytes | None:
        return blobs.get(f"{gallery}/{inputs[uri]['thumb']}") if uri in inputs else None

    parts = [
        (rows, columns)
        for rows in _chunks(layout.rows, SHEET_ROWS)
        for columns in _chunks(layout.columns, SHEET_COLUMNS)
    ]
    settings = SETTINGS_SEPARATOR.join(f"{k}={v}" for k, v in layout.headline.items())
    names = []
    for number, (rows, columns) in enumerate(parts, start=1):
        title = heading
        if len(parts) > 1:
            title += f" · sheet {number} of {len(parts)}: rows {rows[0][0]}-{rows[-1][0]}"
            title += f", columns {columns[0][0]}-{columns[-1][0]}"
        header = CELL if any(a.images for _, a in columns) else 2 * LABEL
        sheet = Image.new("RGB", ((len(columns) + 1) * CELL, TITLE + header + len(rows) * CELL), BACKGROUND)
        draw = ImageDraw.Draw(sheet)
        draw.text((MARGIN, MARGIN), _fit(title, sheet.width - 2 * MARGIN, TITLE_FONT), fill=TEXT, font=TITLE_FONT)
        for k, line in enumerate(_wrap(settings, sheet.width - 2 * MARGIN, LABEL_FONT, SETTINGS_LINES)):
            draw.text((MARGIN, HEADING + k * SETTINGS_LINE), line, fill=TEXT, font=LABEL_FONT)
        for i, (_, column) in enumerate(columns, start=1):
            _header(sheet, draw, [picture(u) for u in column.images], column.label, (i * CELL, TITLE), header)
        for j, (_, row) in enumerate(rows):
            top = TITLE + header + j * CELL
            _header(sheet, draw, [picture(u) for u in row.images], row.label, (0, top), CELL)
            for i, (_, column) in enumerate(columns, start=1):
                cell = layout.cells[(row.key, column.key)]
                pictures = [blobs.get(f"{gallery}/{thumbs.get(e.pair_id)}") for e in cell]
                captions = list(distinctions(cell).values()) if len(cell) > 1 else []
                _cell(sheet, draw, pictures, cell, captions, (i * CELL, top))
        buffer = io.BytesIO()
        sheet.save(buffer, "PNG", compress_level=1)  # 5x faster than the default level, ~1.3x larger
        names.append(CONTACT_SHEET if number == 1 else CONTACT_SHEET.replace(".png", f"-{number}.png"))
        store.put({f"{gallery}/{names[-1]}": buffer.getvalue()})
    return names


def _chunks(items: list[Axis], size: int) -> list[list[tuple[int, Axis]]]:
    """``items`` numbered from 1, in runs of at most ``size``."""
    numbered = list(enumerate(items, start=1))
    return [numbered[k : k + size] for k in range(0, len(numbered), size)]


def _header(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    pictures: list[bytes | None],
    label: str,
    at: tuple[int, int],
    height: int,
) -> None:
    """Input thumbnails side by side over a label, in a ``CELL`` x ``height`` box at ``at``."""
    x, y = at
    area = height - LABEL
    if area > 0 and pictures:
        width = CELL // len(pictures)
        for k, data in enumerate(pictures):
            _paste(sheet, data, (x + k * width, y, x + (k + 1) * width, y + area))
    text = _fit(label.replace("\N{MULTIPLICATION SIGN}", "x"), CELL - 8, LABEL_FONT)  # no such glyph in Pillow's font
    draw.text((x + CELL // 2, y + height - LABEL // 2), text, fill=TEXT, font=LABEL_FONT, anchor="mm")


def _cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    pictures: list[bytes | None],
    cell: list[Entry],
    captions: list[str],
    at: tuple[int, int],
) -> None:
    """A cell's first ``CELL_VARIANTS`` renders side by side, over their ``captions`` if any; a pair with no
    picture shows its status."""
    if not cell:
        return
    x, y = at
    shown = cell[:CELL_VARIANTS]
    width = CELL // len(shown)
    bottom = y + CELL - (CAPTION_LINES * CAPTION_LINE if captions else 0)
    for k, (entry, data) in enumerate(zip(shown, pictures, strict=False)):
        box = (x + k * width, y, x + (k + 1) * width, bottom)
        centre = (box[0] + box[2]) // 2
        if not _paste(sheet, data, box):
            draw.text((centre, (y + bottom) // 2), entry.status, fill=BAD, font=LABEL_FONT, anchor="mm")
        lines = _caption_lines(captions[k], width - 6) if captions else []
        for n, line in enumerate(lines):  # centred in the caption band
            middle = bottom + (CAPTION_LINES - len(lines) + 2 * n + 1) * CAPTION_LINE // 2
            draw.text((centre, middle), line, fill=TEXT, font=CAPTION_FONT, anchor="mm")


def _caption_lines(text: str, width: float) -> list[str]:
    """A render's caption in at most ``CAPTION_LINES`` lines of ``width`` px: one setting a line, and one too
    wide for its line broken before its value (``style_weight`` / ``=3``); cut with an ellipsis beyond that."""
    parts = [p for part in text.split(", ") if part for p in _split_setting(part, width)]
    if len(parts) > CAPTION_LINES:
        parts = [*parts[: CAPTION_LINES - 1], " ".join(parts[CAPTION_LINES - 1 :])]
    return [_fit(part, width, CAPTION_FONT) for part in parts]


def _split_setting(text: str, width: float) -> list[str]:
    key, sep, value = text.partition("=")
    return [key, sep + value] if sep and CAPTION_FONT.getlength(text) > width else [text]


def _wrap(text: str, width: float, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, lines: int) -> list[str]:
    """``text`` in at most ``lines`` lines of ``width`` pixels, broken between settings (``SETTINGS_SEPARATOR``);
    the last line cut with an ellipsis if the text does not fit."""
    out: list[str] = []
    sep = SETTINGS_SEPARATOR
    words = text.split(sep)
    while words and len(out) < lines:
        line = words.pop(0)
        while words and font.getlength(f"{line}{sep}{words[0]}") <= width:
            line += sep + words.pop(0)
        out.append(line)
    if words:
        out[-1] = sep.join([out[-1], *words])
    return [_fit(line, width, font) for line in out]


def _fit(text: str, width: float, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


# Any file may be damaged, huge or missing: the gallery leaves its picture out and never fails for it.


def _input_files(uri: str, still: Still | None = None) -> dict[str, bytes] | None:
    try:
        image = still() if still is not None else decode_image(read_bytes(uri, "input image"), uri, "input image")
        if image is None:
            return None
        return {".jpg": _encode(image, THUMB), "-preview.jpg": _encode(image, PREVIEW)}
    except Exception as exc:
        log.debug("gallery: no picture of %s: %s", uri, exc)
        return None


def _mask_file(uri: str) -> dict[str, bytes] | None:
    """A mask's greyscale picture, as ``nst_core.masks.mask_at`` reads it (white: where it applies)."""
    try:
        return {".png": _encode(decode_image(read_bytes(uri, "mask"), uri, "mask").convert("L"), THUMB, "PNG")}
    except Exception as exc:
        log.debug("gallery: no picture of mask %s: %s", uri, exc)
        return None


def _jpeg(data: bytes | None, size: int) -> bytes | None:
    try:
        return None if data is None else _encode(decode_image(data, "result"), size)
    except Exception as exc:
        log.debug("gallery: no thumbnail: %s", exc)
        return None


def _encode(image: Image.Image, size: int, kind: str = "JPEG") -> bytes:
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
    return buffer.getvalue()


def _paste(sheet: Image.Image, data: bytes | None, box: tuple[int, int, int, int]) -> bool:
    """Paste a picture scaled to fit ``box`` (4 px in from its edges; enlarged if smaller), centred; False if
    there is none to paste."""
    try:
        image = decode_image(data, "thumbnail") if data is not None else None
    except Exception:  # a thumbnail cut short by a killed build: its cell stays empty
        return False
    if image is None:
        return False
    left, top, right, bottom = box
    scale = min((right - left - 8) / image.width, (bottom - top - 8) / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    sheet.paste(image, (left + (right - left - image.width) // 2, top + (bottom - top - image.height) // 2))
    return True


class Store:
    """The output root's file system, remembering what this build wrote so that it is not read back."""

    def __init__(self, fs: Any):
        self.fs = fs
        self.written: dict[str, bytes] = {}

    def put(self, files: dict[str, bytes]) -> None:
        for folder in {path.rsplit("/", 1)[0] for path in files}:
            self.fs.makedirs(folder, exist_ok=True)
        if files:
            put_files(self.fs, files)  # with their Content-Type on S3, so that browsers show them
            self.written.update(files)

    def cat(self, paths: list[str]) -> dict[str, bytes]:
        """The contents of those of ``paths`` that exist (one batched read for the others)."""
        missing = [p for p in paths if p not in self.written]
        found = self.fs.cat(missing, on_error="omit") if missing else {}
        return found | {p: self.written[p] for p in paths if p in self.written}

    def heads(self, paths: list[str], size: int) -> dict[str, bytes]:
        """The first ``size`` bytes of those of ``paths`` that can be read (one batched read)."""
        if not paths:
            return {}
        blobs = self.fs.cat_ranges(paths, [0] * len(paths), [size] * len(paths), on_error="return")
        return {path: blob for path, blob in zip(paths, blobs, strict=True) if isinstance(blob, bytes)}

    def names(self, folder: str) -> set[str]:
        """``<folder name>/<file name>`` of every file in ``folder`` (empty if there is none)."""
        name = folder.rsplit("/", 1)[-1]
        return (
            {f"{name}/{p.rsplit('/', 1)[-1]}" for p in self.fs.ls(folder, detail=False)}
            if self.fs.exists(folder)
            else set()
        )
