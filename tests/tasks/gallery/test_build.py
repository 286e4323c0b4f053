"""build_gallery on a local output root: pages, thumbnails, contact sheet, relative links, rebuilds, --manifest."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from markupsafe import escape
from PIL import Image, ImageChops, ImageDraw

from nst_core import Settings, StepInfo
from tasks.gallery.build import build_gallery
from tasks.gallery.entries import SHORT, read_entries
from tasks.gallery.images import (
    BACKGROUND,
    CAPTION_FONT,
    CAPTION_LINE,
    CAPTION_LINES,
    CELL,
    HEADING,
    LABEL,
    LABEL_FONT,
    MARGIN,
    SETTINGS_SEPARATOR,
    SHEET_ROWS,
    TEXT,
    THUMB,
    TITLE,
    TITLE_FONT,
)
from tasks.gallery.layout import arrange
from tasks.manifest.read import Pair, read_manifest
from tasks.runs import stopping
from tasks.runs.options import RunOptions
from tasks.runs.pairs import run_pair
from tasks.runs.records import GalleryResult
from tasks.runs.report import row_problems, summarise
from tasks.storage.records import DONE, RECORD, read_record
from tests.conftest import make_image
from tests.support import png_header
from tests.tasks.gallery.helpers import (
    FAST,
    FakePair,
    fake_failure,
    parse_page,
    png_bytes,
    read_pairs,
    resolved_links,
    write_manifest,
)

if TYPE_CHECKING:
    from tests.tasks.gallery.small_root import SmallRoot

OLD = 1_000_000_000  # an mtime (2001) no build of today can leave behind


def detail_pages(gallery: Path) -> dict[str, Path]:
    return {page.stem: page for page in (gallery / "pairs").glob("*.html")}


def test_build_returns_where_the_pages_are_and_what_they_show(small_root: SmallRoot) -> None:
    built = build_gallery(str(small_root.out))

    assert built == GalleryResult(
        index=str(small_root.gallery / "index.html"),
        contact_sheets=[str(small_root.gallery / "contact_sheet.png")],
        pairs=6,
        contents=3,  # content1, content2 and the failed pair's missing.png
        styles=2,
        notes=[],
    )
    index = (small_root.gallery / "index.html").read_text(encoding="utf-8")
    assert "5 rendered &middot; 1 failed &middot; 0 pending" in index
    assert index.count('<td class="cell">') == 3 * 2
    assert set(detail_pages(small_root.gallery)) == {p.pair_id for p in small_root.pairs}


def test_thumbnails_are_small_jpegs_of_the_rendered_pairs(small_root: SmallRoot) -> None:
    build_gallery(str(small_root.out))

    thumbs = sorted((small_root.gallery / "thumbs").iterdir())
    assert len(thumbs) == len(small_root.rendered) == 5
    assert {t.name.rsplit("-", 1)[0] for t in thumbs} == {p.pair_id for p in small_root.rendered}
    for thumb in thumbs:
        with Image.open(thumb) as image:
            assert image.format == "JPEG"
            assert max(image.size) <= THUMB
    index = (small_root.gallery / "index.html").read_text(encoding="utf-8")
    assert "result.png" not in index  # the grid shows thumbnails, never the full images


def test_a_large_result_gets_a_thumbnail_of_480_px(tmp_path: Path) -> None:
    out = tmp_path / "renders"
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_image(1, (90, 60)).save(content)
    make_image(2, (60, 60)).save(style)
    result = png_bytes(make_image(3, (900, 600)))
    FakePair("big", str(content), (str(style),)).write(str(out), result)

    build_gallery(str(out))

    (thumb,) = (out / "gallery" / "thumbs").iterdir()
    with Image.open(thumb) as image:
        assert (image.format, image.size) == ("JPEG", (THUMB, THUMB * 2 // 3))
    assert thumb.stat().st_size < len(result)


def test_contact_sheet_is_a_labelled_grid_of_cells(small_root: SmallRoot) -> None:
    built = build_gallery(str(small_root.out))

    (path,) = built.contact_sheets
    with Image.open(path) as sheet:
        sheet.load()
    styles, contents = len(small_root.styles), len(small_root.contents)
    assert sheet.size == ((styles + 1) * CELL, TITLE + (contents + 1) * CELL)  # the title band above the cells

    def drawn(i: int, j: int) -> bool:
        """Anything but the background in cell (i, j)'s picture area (above a header's label)?"""
        cell = sheet.crop((i * CELL, TITLE + j * CELL, (i + 1) * CELL, TITLE + (j + 1) * CELL - LABEL))
        return ImageChops.difference(cell, Image.new("RGB", cell.size, BACKGROUND)).getbbox() is not None

    assert not drawn(0, 0)  # the corner
    for i in (1, 2):
        assert drawn(i, 0)  # style thumbnails across the top
        for j in (1, 2):
            assert drawn(0, j)  # content thumbnails down the side
            assert drawn(i, j)  # a result in every rendered cell (content1 x style1 has two, side by side)
    missing_row = sheet.crop((0, TITLE + 3 * CELL, sheet.width, TITLE + 4 * CELL))
    thumbnail_area = (0, 0, CELL, CELL - LABEL)
    assert missing_row.crop(thumbnail_area).getcolors() == [(CELL * (CELL - LABEL), BACKGROUND)]  # unreadable input
    assert len(missing_row.crop((0, CELL - LABEL, CELL, CELL)).getcolors()) > 1  # but its name is written
    assert len(missing_row.crop((CELL, 0, 2 * CELL, CELL)).getcolors()) > 1  # "failed" written in the cell
    assert missing_row.crop((2 * CELL, 0, 3 * CELL, CELL)).getcolors() == [(CELL * CELL, BACKGROUND)]  # no pair


def test_contact_sheet_title_names_the_output_the_date_the_counts_and_the_shared_settings(
    small_root: SmallRoot,
) -> None:
    built = build_gallery(str(small_root.out))

    with Image.open(built.contact_sheets[0]) as sheet:
        band = sheet.convert("RGB").crop((0, 0, sheet.width, TITLE))
    title = f"renders · {datetime.now(UTC):%Y-%m-%d} · 5 rendered, 1 failed"
    headline = arrange(read_entries(str(small_root.out))).headline
    assert {"image_size": "32", "weights": "random:0"}.items() <= headline.items()
    assert "iterations" not in headline  # 2 and 3: not shared
    settings = SETTINGS_SEPARATOR.join(f"{k}={v}" for k, v in headline.items())
    assert LABEL_FONT.getlength(settings) <= band.width - 2 * MARGIN  # one line of it

    def drawn(title: str, settings: str) -> Image.Image:
        expected = Image.new("RGB", band.size, BACKGROUND)
        ImageDraw.Draw(expected).text((MARGIN, MARGIN), title, fill=TEXT, font=TITLE_FONT)
        ImageDraw.Draw(expected).text((MARGIN, HEADING), settings, fill=TEXT, font=LABEL_FONT)
        return expected

    assert ImageChops.difference(band, drawn(title, settings)).getbbox() is None
    other = drawn(title.replace("5 rendered", "6 rendered"), settings)
    assert ImageChops.difference(band, other).getbbox() is not None  # the comparison can tell texts apart
    assert ImageChops.difference(band, drawn(title, "")).getbbox() is not None


def test_a_large_batch_is_split_over_several_sheets_of_full_size_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    contents = [tmp_path / f"content{k}.png" for k in range(SHEET_ROWS + 1)]
    for seed, path in enumerate([*contents, tmp_path / "style.png"], start=1):
        make_image(seed).save(path)
    for k, content in enumerate(contents):
        FakePair(f"pair{k}", str(content), (str(tmp_path / "style.png"),)).write(str(out), png_bytes(make_image(k)))

    built = build_gallery(str(out))

    assert [Path(p).name for p in built.contact_sheets] == ["contact_sheet.png", "contact_sheet-2.png"]
    heights = []
    for path in built.contact_sheets:
        with Image.open(path) as sheet:
            assert sheet.width == 2 * CELL
            heights.append(sheet.height)
    assert heights == [TITLE + (SHEET_ROWS + 1) * CELL, TITLE + 2 * CELL]
    index = (out / "gallery" / "index.html").read_text(encoding="utf-8")
    assert 'href="contact_sheet-2.png"' in index


def test_every_pair_has_a_detail_page(small_root: SmallRoot) -> None:
    build_gallery(str(small_root.out))
    pages = detail_pages(small_root.gallery)

    for pair in small_root.rendered:
        html = pages[pair.pair_id].read_text(encoding="utf-8")
        assert '<svg class="chart"' in html
        assert html.count("<polyline") == 4  # total, content, style, tv
        assert f"../../{pair.pair_id}/result.png" in html
        assert "<dt>iterations</dt><dd>" + str(pair.settings.iterations) + "</dd>" in html
        folder = small_root.out / pair.pair_id
        record = read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes())
        for term, value in record.final.weighted(record.settings).items():  # as the chart plots them
            assert f"<dt>final {term} loss (weighted)</dt><dd>{value:.4g}</dd>" in html
        assert record.final.weighted(record.settings)["style"] == record.settings.style_weight * record.final.style
        assert "<dt>device</dt><dd>cpu</dd>" in html
    failed = pages[small_root.failed.pair_id].read_text(encoding="utf-8")
    assert '<p class="error">content image ' in failed
    assert "missing.png: not found</p>" in failed
    assert "<svg" not in failed


def test_the_detail_page_shows_the_learning_rate_schedule(tmp_path: Path) -> None:
    """lr_schedule is a mapping ITER -> LR (180:0.1|400:0.01): the page must show the rates, not just the steps."""
    for seed, name in enumerate(["c.png", "s.png"], start=1):
        make_image(seed).save(tmp_path / name)
    settings = Settings.from_values({**FAST, "iterations": 3, "device": "cpu", "lr_schedule": "180:0.1|400:0.01"})
    FakePair("scheduled", str(tmp_path / "c.png"), (str(tmp_path / "s.png"),), settings=settings).write(
        str(tmp_path / "out"), png_bytes(make_image(3))
    )

    build_gallery(str(tmp_path / "out"))

    html = (tmp_path / "out" / "gallery" / "pairs" / "scheduled.html").read_text(encoding="utf-8")
    shown = re.search(r"<dt>lr_schedule</dt><dd>(.*?)</dd>", html)
    assert shown is not None
    assert all(part in shown.group(1) for part in ("180", "0.1", "400", "0.01")), shown.group(1)


def test_links_are_relative_and_point_to_files(small_root: SmallRoot) -> None:
    build_gallery(str(small_root.out))
    gallery = small_root.gallery

    index = resolved_links(gallery / "index.html", small_root.out)
    assert gallery / "contact_sheet.png" in index.values()
    assert {gallery / "pairs" / f"{p.pair_id}.html" for p in small_root.pairs} <= set(index.values())
    assert set((gallery / "thumbs").iterdir()) <= set(index.values())
    for pair_id, page in detail_pages(gallery).items():
        links = resolved_links(page, small_root.out)
        assert gallery / "index.html" in links.values()
        if pair_id != small_root.failed.pair_id:
            assert small_root.out / pair_id / "result.png" in links.values()


def test_a_second_build_reuses_thumbnails_and_stays_correct(small_root: SmallRoot) -> None:
    first = build_gallery(str(small_root.out))
    index = (small_root.gallery / "index.html").read_text(encoding="utf-8")
    images = [*(small_root.gallery / "thumbs").iterdir(), *(small_root.gallery / "inputs").iterdir()]
    for image in images:
        os.utime(image, (OLD, OLD))

    second = build_gallery(str(small_root.out))

    assert second == first
    assert {image: image.stat().st_mtime for image in images} == dict.fromkeys(images, OLD)
    assert (small_root.gallery / "index.html").read_text(encoding="utf-8") == index
    for page in [small_root.gallery / "index.html", *detail_pages(small_root.gallery).values()]:
        resolved_links(page, small_root.out)


def test_a_rebuild_adds_new_pairs_and_makes_only_their_thumbnails(small_root: SmallRoot) -> None:
    build_gallery(str(small_root.out))
    thumbs = list((small_root.gallery / "thumbs").iterdir())
    for thumb in thumbs:
        os.utime(thumb, (OLD, OLD))
    content1, style2 = small_root.rendered[1].content, small_root.rendered[1].styles
    FakePair("extra", content1, style2).write(str(small_root.out), png_bytes(make_image(9, (32, 26))))

    built = build_gallery(str(small_root.out))

    assert built.pairs == 7
    assert all(thumb.stat().st_mtime == OLD for thumb in thumbs)
    (new,) = set((small_root.gallery / "thumbs").iterdir()) - set(thumbs)
    assert new.name.startswith("extra-")
    assert 'href="pairs/extra.html"' in (small_root.gallery / "index.html").read_text(encoding="utf-8")


def test_manifest_shows_its_pairs_in_its_order_and_pending_ones(small_root: SmallRoot, tmp_path: Path) -> None:
    inputs = small_root.inputs
    rows = [  # content2 before content1, style2 before style1; the last pair was never rendered
        {"content": inputs / "content2.png", "style": inputs / "style2.png", "iterations": 2},
        {"content": inputs / "content1.png", "style": inputs / "style1.png", "iterations": 3},
        {"content": inputs / "content2.png", "style": inputs / "style1.png", "iterations": 7},
    ]
    manifest = write_manifest(tmp_path / "view.csv", rows)
    pairs = read_manifest(str(manifest)).pairs

    built = build_gallery(str(small_root.out), pairs)

    assert (built.pairs, built.contents, built.styles) == (3, 2, 2)
    assert [e.pair_id for e in read_entries(str(small_root.out), pairs)] == [p.pair_id for p in pairs]
    assert [e.status for e in read_entries(str(small_root.out), pairs)] == ["rendered", "rendered", "pending"]
    index = small_root.gallery / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "2 rendered &middot; 0 failed &middot; 1 pending" in html
    captions = [html.index(f">{name}</a></figcaption>") for name in ("style2.png", "style1.png")]
    captions += [html.index(f">{name}</a></figcaption>") for name in ("content2.png", "content1.png")]
    assert captions == sorted(captions)
    hrefs = [value for tag, attr, value in parse_page(index).links if tag == "a" and value.startswith("pairs/")]
    assert hrefs == [f"pairs/{pairs[i].pair_id}.html" for i in (0, 2, 1)]  # row content2, then row content1
    assert '<span class="status">pending</span>' in html
    assert all(p.pair_id not in html for p in small_root.pairs if p.pair_id not in {q.pair_id for q in pairs})
    pending = (small_root.gallery / "pairs" / f"{pairs[2].pair_id}.html").read_text(encoding="utf-8")
    assert '<p class="error">pending</p>' in pending
    resolved_links(index, small_root.out)


def test_a_manifest_without_the_runs_settings_finds_its_results_and_names_the_flags(tmp_path: Path) -> None:
    """`stylebatch run M --iterations 2` renders pairs whose ids hash that default; `gallery --manifest M`
    without the flag computes other ids: the pair is pending, and the gallery names the flag that matches."""
    for seed, name in enumerate(["c.png", "s.png"], start=1):
        make_image(seed).save(tmp_path / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text("content,style\nc.png,s.png\n")
    (rendered,) = read_manifest(str(manifest), FAST | {"iterations": 2}).pairs  # what the run rendered
    run_pair(rendered, RunOptions(out=str(tmp_path / "out")), "cpu")
    (asked,) = read_manifest(str(manifest), FAST).pairs  # the gallery's flags lack --iterations 2
    assert asked.pair_id != rendered.pair_id

    built = build_gallery(str(tmp_path / "out"), [asked])

    (entry,) = read_entries(str(tmp_path / "out"), [asked])
    assert entry.status == "pending"
    note = f"{rendered.pair_id} rendered this row with other settings: pass --iterations 2 to show it"
    assert built.notes == [f"{asked.pair_id} (pending): {note}"]
    page = (tmp_path / "out" / "gallery" / "pairs" / f"{asked.pair_id}.html").read_text(encoding="utf-8")
    assert "pass --iterations 2 to show it" in page
    (shown,) = read_entries(str(tmp_path / "out"), read_manifest(str(manifest), FAST | {"iterations": 2}).pairs)
    assert shown.status == "rendered"


def test_a_folder_without_its_completion_record_is_unfinished(tmp_path: Path) -> None:
    """What a crash between S3 writes leaves: settings, result and losses, but no completion record."""
    out = tmp_path / "out"
    for name in ("crashed", "whole"):
        FakePair(name, str(tmp_path / "c.png"), (str(tmp_path / "s.png"),)).write(str(out), png_bytes(make_image(1)))
    (out / "crashed" / DONE).unlink()

    assert [(e.pair_id, e.status) for e in read_entries(str(out))] == [("whole", "rendered")]
    pair = FakePair("crashed", str(tmp_path / "c.png"), (str(tmp_path / "s.png"),)).pair
    assert [e.status for e in read_entries(str(out), [pair])] == ["pending"]


def test_unfinished_hidden_and_foreign_folders_are_left_out(small_root: SmallRoot) -> None:
    out = small_root.out
    (out / "unfinished").mkdir()
    (out / "unfinished" / "result.png").write_bytes(png_bytes(make_image(5)))
    (out / ".staging.1234.tmp").mkdir()
    (out / "foreign").mkdir()
    (out / "foreign" / RECORD).write_text("not json")
    (out / "foreign" / DONE).write_text("{}")
    (out / "notes.txt").write_text("a file, not a folder")

    built = build_gallery(str(out))

    assert built.pairs == 6
    assert {e.pair_id for e in read_entries(str(out))} == {p.pair_id for p in small_root.pairs}


def test_an_empty_root_gives_an_empty_page_and_no_contact_sheet(tmp_path: Path) -> None:
    built = build_gallery(str(tmp_path / "renders"))

    assert built.contact_sheets == []
    assert (built.pairs, built.contents, built.styles) == (0, 0, 0)
    assert "0 rendered &middot; 0 failed &middot; 0 pending" in Path(built.index).read_text(encoding="utf-8")


def test_real_pair_folders_read_back_through_the_records(small_root: SmallRoot) -> None:
    for pair in small_root.rendered:
        folder = small_root.out / pair.pair_id
        record = read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes())
        assert (record.pair_id, record.fingerprint, record.row) == (pair.pair_id, pair.fingerprint, pair.row)
        assert record.settings == pair.settings.model_copy(update={"device": "cpu"})


def test_damaged_huge_and_missing_files_never_stop_the_gallery(tmp_path: Path) -> None:
    """A corrupt result, a damaged loss log, inputs that are missing, undecodable or bombs: pages are still built."""
    out = tmp_path / "out"
    content = tmp_path / "c.png"
    make_image(1, (40, 32)).save(content)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(50_000, 50_000))
    (tmp_path / "notes.png").write_text("not an image")
    FakePair("corrupt-result", str(content), (str(bomb),)).write(str(out), b"\x89PNG\r\n\x1a\n garbage")
    damaged = FakePair("damaged-log", str(tmp_path / "gone.png"), (str(tmp_path / "notes.png"),))
    damaged.write(str(out), png_bytes(make_image(2, (32, 26))))
    (out / "damaged-log" / "losses.csv").write_text("iteration,content\n1,not-a-number\n")
    fake_failure(str(out), FakePair("bomb-input", str(bomb), (str(content),)), ValueError("too large"))

    built = build_gallery(str(out))

    assert built.pairs == 3
    gallery = out / "gallery"
    assert (gallery / "index.html").is_file()
    assert {page.stem for page in (gallery / "pairs").glob("*.html")} == {"corrupt-result", "damaged-log", "bomb-input"}
    assert {p.name.split("-")[0] for p in (gallery / "thumbs").iterdir()} == {"damaged"}  # no thumbnail of garbage
    assert "<svg" not in (gallery / "pairs" / "damaged-log.html").read_text(encoding="utf-8")
    assert "ValueError: too large" in (gallery / "pairs" / "bomb-input.html").read_text(encoding="utf-8")
    assert (gallery / "contact_sheet.png").is_file()


def test_bad_manifest_rows_are_listed_and_counted_as_failed(small_root: SmallRoot, tmp_path: Path) -> None:
    """The gallery counts what the run counts: a bad row is a failed one (tasks.runs.report.summarise)."""
    inputs = small_root.inputs
    rows = [
        {"content": inputs / "content1.png", "style": inputs / "style1.png", "iterations": 2},
        {"content": inputs / "content1.png", "style": inputs / "style1.png", "iterations": "many"},
        {"content": inputs / "content2.png", "style": inputs / "style2.png", "iterations": 2},
        {"content": inputs / "content2.png", "style": inputs / "style2.png", "style_layers": "relu9_1"},
    ]
    parsed = read_manifest(str(write_manifest(tmp_path / "m.csv", rows)))
    problems = row_problems(parsed)
    assert sorted(problems) == [3, 5]

    built = build_gallery(str(small_root.out), parsed.pairs, str(tmp_path / "m.csv"), problems)

    assert built.pairs == 2
    summary = summarise(parsed, str(small_root.out), [], parsed.pairs, 0.0)  # a run that found both finished
    assert (summary.skipped, summary.failed) == (2, 2)
    index = parse_page(small_root.gallery / "index.html")
    html = (small_root.gallery / "index.html").read_text(encoding="utf-8")
    assert "2 rendered &middot; 2 failed &middot; 0 pending" in html
    section = html[html.index('<section class="bad-rows">') : html.index("</section>")]
    assert "2 manifest rows not rendered (counted as failed)" in section
    for row, problem in problems.items():
        assert f'<li><span class="row-number">row {row}</span>: {escape(problem)}</li>' in section
    assert "relu9_1" in problems[5] and "iterations" in problems[3]
    assert index.tags.count("li") == 2
    with Image.open(built.contact_sheets[0]) as sheet:
        band = sheet.convert("RGB").crop((0, 0, sheet.width, HEADING))
    title = f"m · {datetime.now(UTC):%Y-%m-%d} · 2 rendered, 2 failed"
    expected = Image.new("RGB", band.size, BACKGROUND)
    ImageDraw.Draw(expected).text((MARGIN, MARGIN), title, fill=TEXT, font=TITLE_FONT)
    assert ImageChops.difference(band, expected).getbbox() is None
    build_gallery(str(small_root.out), parsed.pairs, str(tmp_path / "m.csv"))
    assert '<section class="bad-rows">' not in (small_root.gallery / "index.html").read_text(encoding="utf-8")


def test_a_failed_cell_says_why_in_short_and_its_page_in_full(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for seed, name in enumerate(["c.png", "s.png"], start=1):
        make_image(seed).save(tmp_path / name)
    reason = "weights /very/long/" + "folder/" * 30 + "vgg19.pth: not found; download them or pass --weights"
    fake_failure(str(out), FakePair("lost", str(tmp_path / "c.png"), (str(tmp_path / "s.png"),)), OSError(reason))

    build_gallery(str(out))

    html = (out / "gallery" / "index.html").read_text(encoding="utf-8")
    (short,) = re.findall(r'<span class="reason">(.*?)</span>', html)
    assert len(short) <= SHORT and short.endswith("\N{HORIZONTAL ELLIPSIS}")
    assert short.startswith("OSError: weights /very/long/folder/")
    assert f'title="lost: OSError: {reason}"' in html  # the whole reason on hover
    page = (out / "gallery" / "pairs" / "lost.html").read_text(encoding="utf-8")
    assert f'<p class="error">OSError: {reason}</p>' in page


@pytest.fixture
def partial_root(tmp_path: Path) -> tuple[Path, list[Pair]]:
    """Real renders (snapshot every iteration): one that failed at iteration 4, one stopped at iteration 3,
    one finished (3 iterations); the manifest's pairs."""
    for seed, name in enumerate(["c.png", "s1.png", "s2.png", "s3.png"], start=1):
        make_image(seed, (40, 32) if name == "c.png" else (36, 36)).save(tmp_path / name)
    rows = [{"content": "c.png", "style": s, "snapshot_every": 1, "iterations": 50} for s in ("s1.png", "s2.png")]
    rows.append({"content": "c.png", "style": "s3.png", "snapshot_every": 1, "iterations": 3})
    pairs = read_pairs(write_manifest(tmp_path / "m.csv", rows))
    out = tmp_path / "out"

    def fail_at_4(step: StepInfo) -> None:
        if step.iteration == 4:
            raise RuntimeError("the device went away")

    def stop_at_3(step: StepInfo) -> None:
        if step.iteration == 3:
            stopping.request_stop()

    try:
        statuses = [
            run_pair(pairs[0], RunOptions(out=str(out)), "cpu", on_step=fail_at_4).status,
            run_pair(pairs[1], RunOptions(out=str(out)), "cpu", on_step=stop_at_3).status,
        ]
    finally:
        stopping.reset()
    statuses.append(run_pair(pairs[2], RunOptions(out=str(out)), "cpu").status)
    assert statuses == ["failed", "cancelled", "rendered"]
    return out, pairs


def test_a_pair_that_failed_or_was_stopped_shows_its_last_snapshot(partial_root: tuple[Path, list[Pair]]) -> None:
    out, pairs = partial_root
    failed, stopped, finished = (p.pair_id for p in pairs)

    build_gallery(str(out), pairs)

    gallery = out / "gallery"
    index = (gallery / "index.html").read_text(encoding="utf-8")
    assert "1 rendered &middot; 1 failed &middot; 1 pending" in index
    for pair_id, status in ((failed, "failed"), (stopped, "pending")):
        (thumb,) = re.findall(rf'<img class="partial" src="(thumbs/{pair_id}-partial-[0-9a-f]{{8}}\.jpg)"', index)
        with Image.open(gallery / thumb) as image:
            assert (image.format, image.size) == ("JPEG", (32, 26))
        assert f'<span class="badge">{status} &middot; partial, iteration 3</span>' in index
        page = (gallery / "pairs" / f"{pair_id}.html").read_text(encoding="utf-8")
        assert f'<img class="partial" src="../../{pair_id}/snapshots/00003.png"' in page
        assert "at iteration 3 of 50;" in page
        assert re.findall(r"<figcaption>iteration (\d+)</figcaption>", page) == ["1", "2", "3"]
        assert '<img class="result"' not in page
    assert '<span class="reason">RuntimeError: the device went away</span>' in index
    page = (gallery / "pairs" / f"{finished}.html").read_text(encoding="utf-8")
    assert re.findall(r"<figcaption>iteration (\d+)</figcaption>", page) == ["1", "2", "3"]
    assert f'<img class="result" src="../../{finished}/result.png"' in page
    assert '<p class="partial-note">' not in page
    for page in [gallery / "index.html", *(gallery / "pairs").glob("*.html")]:
        resolved_links(page, out)


def test_contact_sheet_results_fill_their_cells_and_variants_are_captioned(small_root: SmallRoot) -> None:
    """32 x 26 px results are drawn as large as their cells allow, as the 480 px input thumbnails are; the two
    renders of content1 x style1 share their cell, each over what tells it apart."""
    built = build_gallery(str(small_root.out))
    layout = arrange(read_entries(str(small_root.out)))
    with Image.open(built.contact_sheets[0]) as sheet:
        sheet = sheet.convert("RGB")

    def bbox(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        cell = sheet.crop(box)
        found = ImageChops.difference(cell, Image.new("RGB", cell.size, BACKGROUND)).getbbox()
        assert found is not None
        return found

    top = TITLE + CELL + CELL  # the second row: content2
    left, upper, right, lower = bbox((2 * CELL, top, 3 * CELL, top + CELL))  # content2 x style2: one render
    assert (right - left, lower - upper) == (CELL - 8, round((CELL - 8) * 26 / 32))
    left, upper, right, lower = bbox((CELL, TITLE, 2 * CELL, TITLE + CELL - LABEL))  # style1 (square), alike
    assert (right - left, lower - upper) == (CELL - LABEL - 8, CELL - LABEL - 8)
    cell = layout.cells[(layout.rows[0].key, layout.columns[0].key)]
    captions = [f"iterations={e.settings.iterations}" for e in cell]  # what differs between them, no more
    assert sorted(captions) == ["iterations=2", "iterations=3"]
    top, width, height = TITLE + CELL, CELL // 2, CAPTION_LINES * CAPTION_LINE
    for k, caption in enumerate(captions):
        band = sheet.crop((CELL + k * width, top + CELL - height, CELL + (k + 1) * width, top + CELL))
        expected = Image.new("RGB", band.size, BACKGROUND)
        ImageDraw.Draw(expected).text((width // 2, height // 2), caption, fill=TEXT, font=CAPTION_FONT, anchor="mm")
        assert ImageChops.difference(band, expected).getbbox() is None, caption
    band = sheet.crop((2 * CELL, top + CELL - height, 3 * CELL, top + CELL))  # content1 x style2: one render
    assert ImageChops.difference(band, Image.new("RGB", band.size, BACKGROUND)).getbbox() is not None  # picture
