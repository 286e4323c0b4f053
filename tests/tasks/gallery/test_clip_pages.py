"""A clip in the gallery: its cell loops its preview, its page plays its result beside its source over a strip of its
frames and a per-frame loss chart, its contact-sheet cell is its middle frame; frames/ and flows/ are not pairs.

The clip's folders are written as the chain writes them, with real videos (10 frames of 32 x 24, each of one colour,
so that a picture tells which frame it shows); its content is a folder of frames that is not there (the gallery
pictures it by its source preview, and never reads it).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from tasks.gallery.build import build_gallery
from tasks.gallery.entries import read_entries
from tasks.gallery.images import CELL
from tasks.storage.records import PREVIEW
from tests.conftest import make_image
from tests.tasks.gallery.helpers import (
    FakeClip,
    FakePair,
    load_images,
    parse_page,
    png_bytes,
    resolved_links,
    solid_frames,
    watch,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

NewPage = Callable[..., "Page"]
STYLED = [(20 + 20 * i, 200 - 15 * i, 60) for i in range(10)]  # frame i of the result
SOURCE = [(200 - 10 * i, 40 + 10 * i, 220) for i in range(10)]  # frame i of the content
MIDDLE = 5  # the middle frame of 10 (count // 2)
STRIP = [0, 1, 3, 4, 5, 6, 8, 9]  # 8 of the 10 frames, evenly spaced, the first and the last among them
VIDEOS_READY = "Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)"


@dataclass(frozen=True)
class ClipRoot:
    out: Path
    clip: FakeClip
    still: FakePair

    @property
    def gallery(self) -> Path:
        return self.out / "gallery"

    @property
    def stem(self) -> str:
        """How the clip's files in the gallery are named: its pair id and fingerprint."""
        return f"clip-{self.clip.record().fingerprint[:8]}"


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory: pytest.TempPathFactory) -> ClipRoot:
    """A clip and a still of one style, with the clips' optical flows folder beside them; the gallery built."""
    tmp = tmp_path_factory.mktemp("clips")
    inputs = tmp / "inputs"
    inputs.mkdir()
    make_image(1, (40, 32)).save(inputs / "still.png")
    make_image(2, (36, 36)).save(inputs / "style.png")
    style = (str(inputs / "style.png"),)
    out = tmp / "out"
    clip = FakeClip(
        "clip", str(inputs / "pan"), style, styled=tuple(solid_frames(STYLED)), source=tuple(solid_frames(SOURCE))
    )
    clip.write_clip(str(out), tmp / "encoded")
    still = FakePair("still", str(inputs / "still.png"), style)
    still.write(str(out), png_bytes(make_image(3, (32, 24))))
    (out / "flows" / "0123-dis").mkdir(parents=True)
    (out / "flows" / "0123-dis" / "000001-000000.npz").write_bytes(b"flow")
    build_gallery(str(out))
    return ClipRoot(out, clip, still)


def colour(path: Path) -> tuple[float, ...]:
    """The mean colour of a picture."""
    return tuple(np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")).reshape(-1, 3).mean(axis=0))


def assert_close(actual: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 12) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tolerance, (actual, expected)


def test_frames_and_flows_are_not_pairs_and_a_clip_is_known_by_its_frames(clip_root: ClipRoot) -> None:
    entries = {e.pair_id: e for e in read_entries(str(clip_root.out))}

    assert sorted(entries) == ["clip", "still"]
    assert entries["clip"].clip  # its content ("pan", a folder) does not say so: its frames' folder does
    assert not entries["still"].clip
    assert sorted(p.name for p in (clip_root.gallery / "pairs").iterdir()) == ["clip.html", "still.html"]


def test_a_clips_cell_loops_its_preview_and_no_page_has_a_script(clip_root: ClipRoot) -> None:
    index = parse_page(clip_root.gallery / "index.html")

    videos = [attributes for tag, attributes in index.elements if tag == "video"]
    assert len(videos) == 1  # the still's cell keeps its picture
    video = videos[0]
    assert video["src"] == f"clips/{clip_root.stem}.webm"  # copied into the gallery, as thumbnails are
    assert video["poster"] == f"thumbs/{clip_root.stem}.jpg"
    assert {"autoplay", "muted", "loop", "playsinline"} <= set(video)
    assert "controls" not in video  # a click opens the clip's page
    assert (clip_root.gallery / video["src"]).read_bytes() == (clip_root.out / "clip" / PREVIEW).read_bytes()
    content = [a["src"] for tag, a in index.elements if tag == "img" and a.get("alt") == "pan"]
    assert len(content) == 1  # the clip's content, pictured by its source's middle frame
    assert_close(colour(clip_root.gallery / content[0]), SOURCE[MIDDLE])
    pages = sorted(clip_root.gallery.rglob("*.html"))
    assert len(pages) == 1 + 2 + 2 + 1  # index, pairs, contents, style
    for page in pages:
        parsed = parse_page(page)
        assert "script" not in parsed.tags, page
        assert not [name for name in parsed.attributes if name.startswith("on")], page
        policies = [m["content"] for m in parsed.metas if m.get("http-equiv") == "Content-Security-Policy"]
        assert policies and "script-src 'none'" in policies[0]
        resolved_links(page, clip_root.out)  # every link and source, the videos' too, is relative and there


def test_a_clips_page_plays_its_result_beside_its_source_over_a_strip_of_frames(clip_root: ClipRoot) -> None:
    path = clip_root.gallery / "pairs" / "clip.html"
    page = parse_page(path)

    videos = [attributes for tag, attributes in page.elements if tag == "video"]
    assert [v["src"] for v in videos] == ["../../clip/result.mp4", "../../clip/source.webm"]
    assert all({"controls", "loop"} <= set(v) for v in videos)
    assert not [a for tag, a in page.elements if tag == "img" and a.get("class") == "result"]  # the videos stand in
    frames = [a for tag, a in page.elements if tag == "img" and (a.get("alt") or "").startswith("frame ")]
    assert [a["alt"] for a in frames] == [f"frame {n}" for n in STRIP]
    for number, image in zip(STRIP, frames, strict=True):
        assert image["src"] == f"../thumbs/{clip_root.stem}-{number:06d}.jpg"
        assert_close(colour(path.parent / image["src"]), STYLED[number])
    links = [a["href"] for tag, a in page.elements if tag == "a" and "/frames/" in (a.get("href") or "")]
    assert links == [f"../../frames/clip/{n:06d}/result.png" for n in STRIP]
    text = path.read_text(encoding="utf-8")
    assert ">frame</text>" in text  # the chart's x axis: one point per frame
    assert "<title>temporal</title>" in text  # the temporal term, a series of its own
    assert "clip of 10 frames" in text


def test_a_clips_thumbnail_and_contact_sheet_cell_are_its_middle_frame(clip_root: ClipRoot) -> None:
    assert_close(colour(clip_root.gallery / "thumbs" / f"{clip_root.stem}.jpg"), STYLED[MIDDLE])

    sheet = np.asarray(Image.open(clip_root.gallery / "contact_sheet.png").convert("RGB")).astype(int)
    near = np.abs(sheet - np.array(STYLED[MIDDLE])).max(axis=-1) <= 12
    assert near.sum() > (CELL // 2) ** 2  # its cell filled with it (no other frame's colour is that close)


def test_the_clips_videos_play_in_chromium(clip_root: ClipRoot, new_page: NewPage, artifacts: Path) -> None:
    page = new_page(1400, 1100)
    log = watch(page)
    page.goto((clip_root.gallery / "index.html").as_uri())
    page.wait_for_function(VIDEOS_READY, timeout=15_000)

    preview = page.locator("video.preview")
    assert preview.evaluate("v => [v.videoWidth, v.videoHeight, v.muted, v.loop]") == [32, 24, True, True]
    assert page.evaluate("document.scripts.length") == 0
    page.screenshot(path=str(artifacts / "gallery-clip-index.png"), full_page=True)

    preview.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/gallery/pairs/clip.html")
    page.wait_for_function(VIDEOS_READY, timeout=15_000)
    shown = "Array.from(document.querySelectorAll('video')).map(v => [v.className, v.videoWidth, v.videoHeight])"
    assert page.evaluate(shown) == [["result", 32, 24], ["source", 32, 24]]
    assert [i["src"] for i in load_images(page) if i["width"] == 0] == []  # the frames, the inputs
    page.screenshot(path=str(artifacts / "gallery-clip.png"), full_page=True)
    assert log.errors == []
    assert log.dialogs == []
