"""The gallery as a person compares in it: a 3 x 3 batch and a settings sweep in Chromium at 1400 px,
the detail page's sizes, neighbours and settings, and how ``arrange`` lays pairs out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image, ImageChops, ImageDraw

from nst_core import Settings
from tasks.gallery.build import build_gallery
from tasks.gallery.entries import read_entries
from tasks.gallery.images import BACKGROUND, CELL, HEADING, LABEL, LABEL_FONT, TEXT, TITLE
from tasks.gallery.layout import arrange, distinctions
from tests.conftest import make_image
from tests.tasks.gallery.helpers import FAST, FakePair, load_images, png_bytes, watch

if TYPE_CHECKING:
    from playwright.sync_api import Page

NewPage = Callable[..., "Page"]
WINDOW = (1400, 1100)
STYLE_WEIGHTS = (10.0, 1.0, 3.0)  # written out of order: the sweep sorts them


def settings(**values: Any) -> Settings:
    return Settings.from_values({**FAST, "iterations": 3, "device": "cpu", **values})


def inputs(folder: Path, names: list[str], sizes: dict[str, tuple[int, int]] | None = None) -> list[str]:
    paths = []
    for seed, name in enumerate(names, start=1):
        make_image(seed, (sizes or {}).get(name, (60, 45))).save(folder / name)
        paths.append(str(folder / name))
    return paths


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """3 contents x 3 styles (one style portrait, one landscape), one failed pair, results of 96 x 72 px."""
    contents = inputs(tmp_path, ["tubingen.png", "cat.png", "astronaut.png"])
    styles = inputs(tmp_path, ["tall.png", "wide.png", "square.png"], {"tall.png": (30, 60), "wide.png": (80, 40)})
    out = tmp_path / "out"
    for i, content in enumerate(contents):
        for j, style in enumerate(styles):
            pair = FakePair(f"p{i}{j}", content, (style,))
            pair.write(str(out), png_bytes(make_image(10 * i + j, (96, 72))))
    build_gallery(str(out))
    return out


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 contents x 1 style x style_weight 10|1|3."""
    contents = inputs(tmp_path, ["tubingen.png", "cat.png"])
    (style,) = inputs(tmp_path, ["wave.png"])
    out = tmp_path / "out"
    for i, content in enumerate(contents):
        for weight in STYLE_WEIGHTS:
            pair = FakePair(f"c{i}-sw{weight:g}", content, (style,), settings(style_weight=weight))
            pair.write(str(out), png_bytes(make_image(i, (96, 72))))
    build_gallery(str(out), manifest="nightly/sweep.csv")
    return out


def open_index(new_page: NewPage, out: Path) -> Page:
    page = new_page(*WINDOW)
    page.goto((out / "gallery" / "index.html").as_uri())
    load_images(page)
    return page


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll({selector!r})).map(e => e.getBoundingClientRect().toJSON())"
    )


def overlapping(rects: list[dict[str, float]]) -> list[tuple[int, int]]:
    def meet(a: dict[str, float], b: dict[str, float]) -> bool:
        return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]

    return [(i, j) for i, a in enumerate(rects) for j, b in enumerate(rects) if i < j and meet(a, b)]


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_a_3x3_batch_fills_a_1400_px_window(batch: Path, new_page: NewPage, artifacts: Path) -> None:
    page = open_index(new_page, batch)
    log = watch(page)

    thumbs = boxes(page, "td.cell img")
    assert len(thumbs) == 9
    assert min(t["width"] for t in thumbs) > 350  # a third of the window each, not 140 px stamps
    assert max(t["width"] for t in thumbs) - min(t["width"] for t in thumbs) < 1
    assert boxes(page, "table.grid")[0]["width"] > WINDOW[0] - 60
    assert no_horizontal_scroll(page)
    assert overlapping(thumbs + boxes(page, "th img") + boxes(page, "td.cell figcaption")) == []
    captions = page.locator("td.cell figcaption").all_inner_texts()
    assert len(captions) == 9
    assert all(c.strip().endswith(" s") for c in captions)  # each says its time
    # portrait and landscape style headers line up: their names sit on one line
    assert len({round(b["top"]) for b in boxes(page, "thead th.column figcaption")}) == 1
    header = page.locator("header").inner_text()
    assert "out" in page.locator("h1").inner_text()
    assert "9 rendered · 0 failed · 0 pending" in header
    assert "3 contents \N{MULTIPLICATION SIGN} 3 styles" in header
    assert "image_size=32" in header and "iterations=3" in header  # the shared settings
    page.screenshot(path=str(artifacts / "gallery-3x3.png"))
    assert log.errors == []


def test_a_sweep_lays_its_variants_out_along_its_axis_in_value_order(
    sweep: Path, new_page: NewPage, artifacts: Path
) -> None:
    page = open_index(new_page, sweep)

    columns = [text.strip() for text in page.locator("thead th.column").all_inner_texts()]
    assert columns == ["style_weight=1", "style_weight=3", "style_weight=10"]
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    for row, content in enumerate((1, 0)):  # with no manifest, rows are in the order of the inputs' paths
        hrefs = [a.get_attribute("href") for a in rows.nth(row).locator("td.cell a.pair").all()]
        assert hrefs == [f"pairs/c{content}-sw{w:g}.html" for w in sorted(STYLE_WEIGHTS)]
    assert "tubingen.png \N{MULTIPLICATION SIGN} wave.png" in rows.nth(1).locator("th").inner_text()
    thumbs = boxes(page, "td.cell img")
    assert min(t["width"] for t in thumbs) > 350
    assert no_horizontal_scroll(page)
    assert overlapping(thumbs) == []
    header = page.locator("header").inner_text()
    assert page.locator("h1").inner_text() == "sweep"  # the manifest's name
    assert "sweep of style_weight (3 variants)" in header
    assert "manifest: nightly/sweep.csv" in header
    page.screenshot(path=str(artifacts / "gallery-sweep.png"))


def test_a_sweeps_contact_sheet_names_its_variants_by_their_settings(sweep: Path) -> None:
    with Image.open(sweep / "gallery" / "contact_sheet.png") as sheet:
        sheet = sheet.convert("RGB")
    for i, weight in enumerate(sorted(STYLE_WEIGHTS), start=1):
        header = sheet.crop((i * CELL, TITLE, (i + 1) * CELL, TITLE + 2 * LABEL))
        expected = Image.new("RGB", header.size, BACKGROUND)
        centre = (CELL // 2, 2 * LABEL - LABEL // 2)
        ImageDraw.Draw(expected).text(centre, f"style_weight={weight:g}", fill=TEXT, font=LABEL_FONT, anchor="mm")
        assert ImageChops.difference(header, expected).getbbox() is None, weight
    band = sheet.crop((0, HEADING, sheet.width, TITLE))  # the shared settings under the title
    assert ImageChops.difference(band, Image.new("RGB", band.size, BACKGROUND)).getbbox() is not None


def test_the_detail_page_shows_the_result_filling_its_column_beside_smaller_inputs(
    batch: Path, new_page: NewPage, artifacts: Path
) -> None:
    page = new_page(*WINDOW)
    log = watch(page)
    page.goto((batch / "gallery" / "pairs" / "p11.html").as_uri())
    load_images(page)

    result = page.locator("img.result")
    natural, shown = result.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]")
    assert natural == 96 and shown > 800  # enlarged to the main column (crisp pixels: tests/.../test_detail.py)
    references = boxes(page, "img.reference")
    assert len(references) == 2 and all(r["width"] <= 380 for r in references)
    strips = {h: page.locator(f"h2:text-is('{h}') + .strip a.pair").count() for h in NEIGHBOURS}
    assert strips == {"same content, other styles": 2, "same style, other contents": 2}
    page.locator("h2:text-is('same style, other contents') + .strip a.pair").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/pairs/p21.html")  # astronaut.png comes first
    assert log.errors == []


NEIGHBOURS = ("same content, other styles", "same style, other contents")


def test_the_detail_page_writes_settings_as_a_user_would(sweep: Path, new_page: NewPage, artifacts: Path) -> None:
    page = new_page(*WINDOW)
    page.goto((sweep / "gallery" / "pairs" / "c0-sw10.html").as_uri())
    load_images(page)

    flags = page.locator("code.flags").inner_text()
    assert "--style-weight 10" in flags and "--image-size 32" in flags
    assert "--device" not in flags
    terms = page.locator("dt").all_inner_texts()
    assert "style_weights" not in terms and "lr_schedule" not in terms  # unset settings are not listed as None
    assert "None" not in page.locator("aside").inner_text()
    assert page.locator("dt:text-is('channels_last') + dd").inner_text() == "false"  # as a manifest cell takes it
    run = page.locator("dt:text-is('time') + dd").inner_text()
    assert run == "0.3 s (66 ms per iteration)"
    assert page.locator("dt:text-is('finished') + dd").inner_text().endswith(" UTC")
    assert len(page.locator("dt:text-is('finished') + dd").inner_text()) == len("2026-11-30 00:00 UTC")
    others = page.locator("h2:text-is('other renders of this pair') + .strip figcaption .label").all_inner_texts()
    assert others == ["style_weight=1", "style_weight=3"]
    page.screenshot(path=str(artifacts / "gallery-sweep-detail.png"), full_page=True)


def test_a_content_page_shows_it_in_every_style(batch: Path, new_page: NewPage) -> None:
    page = open_index(new_page, batch)
    page.locator("tbody th.row a").first.click()
    page.wait_for_load_state("load")

    cards = page.locator(".cards a.pair")
    assert cards.count() == 3
    assert [c.strip() for c in page.locator(".cards figcaption .label").all_inner_texts()] == [
        "square.png",
        "tall.png",
        "wide.png",
    ]
    assert [i["width"] > 0 for i in load_images(page)] == [True] * 4  # the content and 3 results


def test_arrange_keeps_a_batch_with_one_rerendered_pair_as_a_grid(tmp_path: Path) -> None:
    contents = inputs(tmp_path, ["a.png", "b.png"])
    (style,) = inputs(tmp_path, ["s.png"])
    out = str(tmp_path / "out")
    FakePair("a", contents[0], (style,)).write(out, png_bytes(make_image(1)))
    FakePair("b", contents[1], (style,)).write(out, png_bytes(make_image(2)))
    FakePair("b-again", contents[1], (style,), settings(iterations=5)).write(out, png_bytes(make_image(3)))

    layout = arrange(read_entries(out))

    assert layout.sweep == []
    assert [r.label for r in layout.rows] == ["a.png", "b.png"]
    assert [e.pair_id for e in layout.cells[(contents[1], style)]] == ["b", "b-again"]
    assert layout.captions == {"a": "iterations=3", "b": "iterations=3", "b-again": "iterations=5"}


def test_arrange_sweeps_two_settings_in_the_order_of_their_values(tmp_path: Path) -> None:
    (content,) = inputs(tmp_path, ["c.png"])
    (style,) = inputs(tmp_path, ["s.png"])
    out = str(tmp_path / "out")
    for weight in (10, 1):
        for size in (48, 32):
            FakePair(f"w{weight}-s{size}", content, (style,), settings(style_weight=weight, image_size=size)).write(
                out, png_bytes(make_image(weight + size))
            )

    layout = arrange(read_entries(out))

    assert layout.sweep == ["image_size", "style_weight"]  # in the order of Settings' fields
    assert [c.label for c in layout.columns] == [
        "image_size=32, style_weight=1",
        "image_size=32, style_weight=10",
        "image_size=48, style_weight=1",
        "image_size=48, style_weight=10",
    ]
    assert set(layout.captions.values()) == {""}  # the sweep is in the column labels
    assert "style_weight" not in layout.shared and layout.shared["iterations"] == "3"


def test_the_renders_of_a_cell_are_told_apart_by_what_differs_between_them(tmp_path: Path) -> None:
    (content,) = inputs(tmp_path, ["c.png"])
    (style,) = inputs(tmp_path, ["s.png"])
    out = str(tmp_path / "out")
    values = [{"style_weight": 1, "iterations": 40}, {"style_weight": 3, "iterations": 40}, {"iterations": 400}]
    for k, own in enumerate(values):
        FakePair(f"v{k}", content, (style,), settings(image_size=48, **own)).write(out, png_bytes(make_image(k)))

    entries = read_entries(out)

    assert distinctions(entries) == {
        "v0": "iterations=40, style_weight=1",
        "v1": "iterations=40, style_weight=3",
        "v2": "iterations=400, style_weight=3",
    }
    assert distinctions(entries[:2]) == {"v0": "style_weight=1", "v1": "style_weight=3"}
    assert distinctions(entries[:1]) == {"v0": ""}
