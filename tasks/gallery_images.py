"""Gallery images: result and input thumbnails, input previews, and the contact sheet."""

from __future__ import annotations

import hashlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from nst_core.images import decode_image, read_bytes
from tasks.gallery_entries import Entry
from tasks.records import RESULT, InputFile
from tasks.storage import pipe_files

__all__ = ["Store", "contact_sheet", "input_images", "result_thumbnails"]

THUMB, PREVIEW, CELL = 240, 768, 160
log = logging.getLogger(__name__)
CONTACT_SHEET = "contact_sheet.png"


def result_thumbnails(store: Store, root: str, gallery: str, entries: list[Entry]) -> dict[str, str]:
    """pair id -> thumbnail path relative to the gallery; only missing thumbnails are made."""
    names = {e.pair_id: f"thumbs/{e.pair_id}-{e.rendered.fingerprint[:8]}.jpg" for e in entries if e.rendered}
    existing = store.names(f"{gallery}/thumbs")
    todo = {pid: name for pid, name in names.items() if name not in existing}
    blobs = store.cat([f"{root}/{pid}/{RESULT}" for pid in todo])
    with ThreadPoolExecutor() as pool:  # Pillow releases the GIL while decoding and resizing
        made = pool.map(lambda pid: _jpeg(blobs.get(f"{root}/{pid}/{RESULT}"), THUMB), todo)
        store.put({f"{gallery}/{todo[pid]}": data for pid, data in zip(todo, made, strict=True) if data})
    return {pid: name for pid, name in names.items() if name not in todo or f"{root}/{pid}/{RESULT}" in blobs}


def input_images(store: Store, gallery: str, entries: list[Entry]) -> dict[str, dict[str, str]]:
    """input URI -> {"thumb": ..., "preview": ...} relative to the gallery; unreadable inputs are left out."""
    files = [f for e in entries if e.record for f in [e.record.content, *e.record.styles]]
    files += [InputFile(uri=uri) for e in entries for uri in [e.content, *e.styles]]
    keys: dict[str, str] = {}
    for item in files:  # the checksum of a rendered input, where known, names its thumbnail
        if item.sha256 or item.uri not in keys:
            keys[item.uri] = hashlib.sha256(f"{item.uri}\0{item.sha256}".encode()).hexdigest()[:16]
    existing = store.names(f"{gallery}/inputs")
    todo = [uri for uri, key in keys.items() if f"inputs/{key}.jpg" not in existing]
    with ThreadPoolExecutor(max_workers=8) as pool:  # inputs may be remote: overlap the reads
        made = dict(zip(todo, pool.map(_input_files, todo), strict=True))
    store.put(
        {
            f"{gallery}/inputs/{keys[uri]}{suffix}": data
            for uri, files in made.items()
            if files
            for suffix, data in files.items()
        },
    )
    return {
        uri: {"thumb": f"inputs/{key}.jpg", "preview": f"inputs/{key}-preview.jpg"}
        for uri, key in keys.items()
        if uri not in made or made[uri]
    }


def contact_sheet(
    store: Store,
    gallery: str,
    contents: list[str],
    columns: list[str],
    grid: dict[tuple[str, str], list[Entry]],
    thumbs: dict[str, str],
    inputs: dict[str, dict[str, str]],
) -> str | None:
    """The grid as one PNG: style thumbnails across the top, content down the side, one result per cell."""
    if not contents:
        return None
    wanted = {f"{gallery}/{inputs[u]['thumb']}" for u in [*contents, *columns] if u in inputs}
    wanted |= {f"{gallery}/{t}" for t in thumbs.values()}
    blobs = store.cat(sorted(wanted))
    sheet = Image.new("RGB", ((len(columns) + 1) * CELL, (len(contents) + 1) * CELL), (24, 24, 24))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i, style in enumerate(columns, start=1):
        _paste(sheet, blobs.get(f"{gallery}/{inputs.get(style, {}).get('thumb')}"), i, 0)
    for j, content in enumerate(contents, start=1):
        _paste(sheet, blobs.get(f"{gallery}/{inputs.get(content, {}).get('thumb')}"), 0, j)
        for i, style in enumerate(columns, start=1):
            cell = grid[(content, style)]
            rendered = [e for e in cell if e.pair_id in thumbs]
            if rendered:
                _paste(sheet, blobs.get(f"{gallery}/{thumbs[rendered[0].pair_id]}"), i, j)
            elif cell:
                draw.text((i * CELL + 8, j * CELL + CELL // 2), cell[0].status, fill=(230, 120, 100), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    store.put({f"{gallery}/{CONTACT_SHEET}": buffer.getvalue()})
    return CONTACT_SHEET


# Any file may be damaged, huge or missing: the gallery leaves its picture out and never fails for it.


def _input_files(uri: str) -> dict[str, bytes] | None:
    try:
        image = decode_image(read_bytes(uri, "input image"), uri, "input image")
        return {".jpg": _encode(image, THUMB), "-preview.jpg": _encode(image, PREVIEW)}
    except Exception as exc:
        log.debug("gallery: no picture of %s: %s", uri, exc)
        return None


def _jpeg(data: bytes | None, size: int) -> bytes | None:
    try:
        return None if data is None else _encode(decode_image(data, "result"), size)
    except Exception as exc:
        log.debug("gallery: no thumbnail: %s", exc)
        return None


def _encode(image: Image.Image, size: int) -> bytes:
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _paste(sheet: Image.Image, data: bytes | None, i: int, j: int) -> None:
    try:
        image = decode_image(data, "thumbnail") if data is not None else None
    except Exception:  # a thumbnail cut short by a killed build: its cell stays empty
        return
    if image is None:
        return
    image.thumbnail((CELL - 8, CELL - 8))
    sheet.paste(image, (i * CELL + (CELL - image.width) // 2, j * CELL + (CELL - image.height) // 2))


class Store:
    """The output root's file system, remembering what this build wrote so that it is not read back."""

    def __init__(self, fs: Any):
        self.fs = fs
        self.written: dict[str, bytes] = {}

    def put(self, files: dict[str, bytes]) -> None:
        for folder in {path.rsplit("/", 1)[0] for path in files}:
            self.fs.makedirs(folder, exist_ok=True)
        if files:
            pipe_files(self.fs, files)  # with their Content-Type on S3, so that browsers show them
            self.written.update(files)

    def cat(self, paths: list[str]) -> dict[str, bytes]:
        """The contents of those of ``paths`` that exist (one batched read for the others)."""
        missing = [p for p in paths if p not in self.written]
        found = self.fs.cat(missing, on_error="omit") if missing else {}
        return found | {p: self.written[p] for p in paths if p in self.written}

    def names(self, folder: str) -> set[str]:
        """``<folder name>/<file name>`` of every file in ``folder`` (empty if there is none)."""
        name = folder.rsplit("/", 1)[-1]
        return (
            {f"{name}/{p.rsplit('/', 1)[-1]}" for p in self.fs.ls(folder, detail=False)}
            if self.fs.exists(folder)
            else set()
        )
