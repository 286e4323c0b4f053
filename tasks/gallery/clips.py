"""A clip's media in the gallery: its looping preview, a strip of its frames, and a still of its content.

- Previews (``preview.webm``) are copied into ``gallery/clips/``, named by pair id and fingerprint and made once,
  as thumbnails are, so that the grid needs nothing outside the gallery. A pair's page plays ``result.mp4`` and
  ``source.webm`` from the pair's folder, as it shows ``result.png``.
- The strip: a handful of the clip's frames (``frames/<pair id>/<NNNNNN>/result.png``, numbered as the rows of
  its loss log), evenly spaced, as small thumbnails.
- A clip input is pictured by the middle frame of a rendered clip's ``source.webm`` (the frame its
  ``result.png`` styles), never by reading the clip itself.
"""

from __future__ import annotations

import functools
import io
import logging
from typing import TYPE_CHECKING

from PIL import Image

from tasks.gallery.images import Still, Store, keyed_thumbnails
from tasks.storage.records import PREVIEW, RESULT, SOURCE_PREVIEW
from tasks.storage.root import frame_folder

if TYPE_CHECKING:
    from tasks.gallery.entries import Entry

__all__ = ["CLIPS", "FRAME_STRIP", "clip_stills", "frame_path", "frame_strips", "previews"]

CLIPS = "clips"  # the gallery's folder of previews
FRAME_STRIP = 8  # frames on a clip's page at most, the first and the last among them
FRAME_THUMB = 192  # px: the strip shows them 96 px high, sharp on a 2x screen
log = logging.getLogger(__name__)


def previews(store: Store, root: str, gallery: str, entries: list[Entry]) -> dict[str, str]:
    """pair id -> its preview copied into the gallery (relative to it), of each rendered clip; only missing copies
    are made, and a clip whose preview cannot be read has none."""
    wanted = {e.pair_id: f"{CLIPS}/{_stem(e)}.webm" for e in entries if e.clip and e.rendered}
    if not wanted:  # no listing: each is a request on S3
        return {}
    existing = store.names(f"{gallery}/{CLIPS}")
    todo = {pid: f"{root}/{pid}/{PREVIEW}" for pid, name in wanted.items() if name not in existing}
    blobs = store.cat(list(todo.values()))
    store.put({f"{gallery}/{wanted[pid]}": blobs[path] for pid, path in todo.items() if path in blobs})
    return {pid: name for pid, name in wanted.items() if pid not in todo or todo[pid] in blobs}


def frame_path(pair_id: str, number: int) -> str:
    """A clip's frame's result, under the output root (the frame's folder: ``tasks.runs.chains.frame_folder``)."""
    return f"{frame_folder(pair_id, number)}/{RESULT}"


def frame_strips(store: Store, root: str, gallery: str, entries: list[Entry]) -> dict[str, list[tuple[int, str]]]:
    """pair id -> [(frame number, its thumbnail relative to the gallery), ...] of each rendered clip, in order;
    frames that cannot be read are left out."""
    wanted = {
        (e.pair_id, n): (f"{root}/{frame_path(e.pair_id, n)}", f"thumbs/{_stem(e)}-{n:06d}.jpg")
        for e in entries
        if e.clip and e.rendered
        for n in _spaced([row.iteration for row in e.losses], FRAME_STRIP)
    }
    strips: dict[str, list[tuple[int, str]]] = {}
    for (pid, number), name in keyed_thumbnails(store, gallery, wanted, FRAME_THUMB).items():
        strips.setdefault(pid, []).append((number, name))
    return strips


def clip_stills(store: Store, root: str, entries: list[Entry]) -> dict[str, Still]:
    """clip input URI -> what pictures it: the middle frame of the first readable ``source.webm`` of its rendered
    clips (None if there is none: a clip that failed or is pending)."""
    sources: dict[str, list[str]] = {}
    for e in entries:
        if e.clip:
            sources.setdefault(e.content, []).extend([f"{root}/{e.pair_id}/{SOURCE_PREVIEW}"] if e.rendered else [])
    return {uri: functools.partial(_still, store, paths) for uri, paths in sources.items()}


def _still(store: Store, paths: list[str]) -> Image.Image | None:
    for path in paths:
        try:
            return middle_frame(store.cat([path])[path])
        except Exception as exc:  # missing or damaged: the next one, or no picture
            log.debug("gallery: no still from %s: %s", path, exc)
    return None


def middle_frame(data: bytes) -> Image.Image:
    """The middle frame (number ``count // 2``, as a clip's ``result.png``) of a video's bytes.

    Raises:
        ValueError: it has no video frames (or any error of PyAV's: not a video).
    """
    import av  # here: only a gallery with clips needs it

    with av.open(io.BytesIO(data)) as container:
        count = sum(1 for packet in container.demux(video=0) if packet.size)  # no decoding: headers only
    with av.open(io.BytesIO(data)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == count // 2:
                return frame.to_image()
    raise ValueError("no video frames")


def _stem(entry: Entry) -> str:
    """A rendered clip's files in the gallery are named by its pair id and fingerprint, as its thumbnail is."""
    return f"{entry.pair_id}-{entry.rendered.fingerprint[:8] if entry.rendered else ''}"


def _spaced(items: list[int], count: int) -> list[int]:
    """At most ``count`` of ``items``, evenly spaced, the first and the last among them."""
    if len(items) <= count:
        return items
    return [items[round(k * (len(items) - 1) / (count - 1))] for k in range(count)]
