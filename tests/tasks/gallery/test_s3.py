"""build_gallery on an S3 output root (moto's server): everything lands in the bucket, and a synced copy works."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tasks.gallery.build import build_gallery
from tasks.gallery.images import CELL, TITLE
from tasks.runs.records import GalleryResult
from tests.conftest import make_image
from tests.support import forget_s3_clients
from tests.tasks.gallery.helpers import (
    FakePair,
    jpeg_bytes,
    load_images,
    png_bytes,
    read_pairs,
    render_or_record,
    resolved_links,
    watch,
    write_manifest,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support import Bucket

NewPage = Callable[..., "Page"]


@pytest.fixture
def s3_root(s3: Bucket, tmp_path: Path) -> tuple[str, list[str]]:
    """s3://<bucket>/renders: 2 pairs rendered by run_pair, 1 written by storage.write_pair, 1 failed."""
    for seed, name in enumerate(["c1.png", "c2.png", "s1.png"], start=1):
        make_image(seed).save(tmp_path / name)
    rows = [{"content": c, "style": "s1.png", "iterations": 2} for c in ("c1.png", "c2.png", "gone.png")]
    pairs = read_pairs(write_manifest(tmp_path / "m.csv", rows))
    out = f"{s3.uri}/renders"
    assert [render_or_record(pair, out) for pair in pairs] == ["rendered", "rendered", "failed"]
    fake = FakePair("written-directly", str(tmp_path / "c1.png"), (str(tmp_path / "s1.png"),))
    fake.write(out, png_bytes(make_image(7, (32, 26))))
    return out, [*(p.pair_id for p in pairs), fake.pair_id]


def test_the_gallery_is_written_into_the_bucket(s3: Bucket, s3_root: tuple[str, list[str]]) -> None:
    out, pair_ids = s3_root

    built = build_gallery(out)

    assert built == GalleryResult(
        index=f"{out}/gallery/index.html",
        contact_sheets=[f"{out}/gallery/contact_sheet.png"],
        pairs=4,
        contents=3,
        styles=1,
        notes=[],
    )
    keys = s3.keys("renders/gallery")
    assert {"index.html", "contact_sheet.png"} <= keys
    assert {k for k in keys if k.startswith("pairs/")} == {f"pairs/{i}.html" for i in pair_ids}
    thumbs = {posixpath.basename(k).rsplit("-", 1)[0] for k in keys if k.startswith("thumbs/")}
    assert thumbs == set(pair_ids) - {pair_ids[2]}  # every rendered pair, not the failed one
    assert len([k for k in keys if k.startswith("inputs/")]) == 3 * 2  # thumbnail and preview of c1, c2, s1
    index = s3.fs.cat_file(f"{s3.name}/renders/gallery/index.html").decode()
    assert "3 rendered &middot; 1 failed &middot; 0 pending" in index


def test_a_synced_copy_of_the_bucket_has_working_links(
    s3: Bucket, s3_root: tuple[str, list[str]], tmp_path: Path
) -> None:
    out, pair_ids = s3_root
    build_gallery(out)
    local = tmp_path / "synced"

    s3.fs.get(f"{s3.name}/renders/", str(local), recursive=True)

    gallery = local / "gallery"
    index = resolved_links(gallery / "index.html", local)
    assert gallery / "contact_sheet.png" in index.values()
    assert {gallery / "pairs" / f"{i}.html" for i in pair_ids} <= set(index.values())
    for pair_id in pair_ids:
        links = resolved_links(gallery / "pairs" / f"{pair_id}.html", local)
        if pair_id != pair_ids[2]:  # the failed one has no result
            assert local / pair_id / "result.png" in links.values()
    with Image.open(gallery / "contact_sheet.png") as sheet:
        assert sheet.size == (2 * CELL, TITLE + 4 * CELL)


def test_the_synced_gallery_opens_in_the_browser(
    s3: Bucket, s3_root: tuple[str, list[str]], tmp_path: Path, new_page: NewPage
) -> None:
    out, pair_ids = s3_root
    build_gallery(out)
    local = tmp_path / "synced"
    s3.fs.get(f"{s3.name}/renders/", str(local), recursive=True)
    page = new_page()
    log = watch(page)

    for url in [
        (local / "gallery" / "index.html").as_uri(),
        (local / "gallery" / "pairs" / f"{pair_ids[0]}.html").as_uri(),
    ]:
        page.goto(url)
        images = load_images(page)
        assert images
        assert [i["src"] for i in images if i["width"] == 0] == [], url
    assert page.locator("img.result").evaluate("i => i.naturalWidth") > 0
    assert log.errors == []


def test_a_rebuild_on_s3_reuses_the_thumbnails(s3: Bucket, s3_root: tuple[str, list[str]]) -> None:
    out, _ = s3_root
    first = build_gallery(out)
    thumbs = sorted(f"{s3.name}/renders/gallery/{k}" for k in s3.keys("renders/gallery") if k.startswith("thumbs/"))
    sentinel = jpeg_bytes(make_image(99, (8, 8)))
    for key in thumbs:  # a rebuild that made them again would overwrite these
        s3.fs.pipe_file(key, sentinel)
    forget_s3_clients()  # as a later run in a new process would

    second = build_gallery(out)

    assert second == first
    assert [s3.fs.cat_file(key) for key in thumbs] == [sentinel] * len(thumbs)
    assert {k for k in s3.keys("renders/gallery") if k.startswith("thumbs/")} == {
        k.removeprefix(f"{s3.name}/renders/gallery/") for k in thumbs
    }
