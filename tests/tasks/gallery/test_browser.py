"""The gallery in Debian's Chromium (Playwright): images load, no errors, the grid, variants, detail pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tasks.gallery.build import build_gallery
from tasks.storage.records import DONE, RECORD, read_record
from tests.tasks.gallery.helpers import load_images, watch

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

    from tests.tasks.gallery.small_root import SmallRoot

NewPage = Callable[..., "Page"]


@pytest.fixture
def built(small_root: SmallRoot) -> SmallRoot:
    build_gallery(str(small_root.out))
    return small_root


def test_index_loads_every_image_without_errors(built: SmallRoot, new_page: NewPage, artifacts: Path) -> None:
    page = new_page()
    log = watch(page)

    page.goto((built.gallery / "index.html").as_uri())
    images = load_images(page)

    assert len(images) == 5 + 4  # 5 result thumbnails; 2 style and 2 content thumbnails (missing.png has none)
    assert [i["src"] for i in images if i["width"] == 0] == []
    assert page.locator("td.cell").count() == len(built.contents) * len(built.styles)
    assert page.locator("table.grid tbody tr").count() == len(built.contents)
    assert page.locator("table.grid thead th.column").count() == len(built.styles)
    assert page.evaluate("document.scripts.length") == 0
    page.screenshot(path=str(artifacts / "gallery-index.png"), full_page=True)
    assert log.errors == []
    assert log.dialogs == []


def test_a_cell_with_two_renders_shows_both_labelled_by_their_difference(built: SmallRoot, new_page: NewPage) -> None:
    page = new_page()
    page.goto((built.gallery / "index.html").as_uri())
    first, second = built.variants

    cell = page.locator("td.cell").filter(has=page.locator(f'a[href="pairs/{first.pair_id}.html"]'))
    links = cell.locator("a.pair")

    assert links.count() == 2
    assert [links.nth(i).get_attribute("href") for i in range(2)] == sorted(
        [f"pairs/{first.pair_id}.html", f"pairs/{second.pair_id}.html"]
    )
    labels = sorted(cell.locator(".label").all_inner_texts())
    assert labels == ["iterations=2", "iterations=3"]
    assert page.locator("td.cell a.pair").count() == 6  # every other cell shows its one pair


def test_clicking_a_result_opens_its_detail_page(built: SmallRoot, new_page: NewPage, artifacts: Path) -> None:
    page = new_page()
    log = watch(page)
    page.goto((built.gallery / "index.html").as_uri())
    pair = built.variants[1]  # 3 iterations
    folder = built.out / pair.pair_id
    final = read_record((folder / RECORD).read_bytes(), (folder / DONE).read_bytes()).final

    page.locator(f'a[href="pairs/{pair.pair_id}.html"]').click()
    page.wait_for_load_state("load")

    assert page.url.endswith(f"/gallery/pairs/{pair.pair_id}.html")
    images = load_images(page)
    assert [i["src"] for i in images if i["width"] == 0] == []
    result = page.locator("img.result")
    assert result.evaluate("i => i.naturalWidth") == 32
    assert page.locator("svg.chart polyline").count() == 4
    assert page.locator("svg.chart polyline").first.get_attribute("points")
    settings = definitions(page)
    assert settings["iterations"] == "3"
    assert settings["image_size"] == "32"
    assert settings["weights"] == "random:0"
    assert settings["device"] == "cpu"
    assert settings["final total loss (weighted)"] == f"{final.total:.4g}"
    assert settings["final style loss (weighted)"] == f"{pair.settings.style_weight * final.style:.4g}"
    assert "iterations=3" in page.locator("header").inner_text()
    page.screenshot(path=str(artifacts / "gallery-detail.png"), full_page=True)

    page.locator('a[href="../index.html"]').click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/gallery/index.html")
    assert log.errors == []


def test_the_failed_pair_shows_its_error(built: SmallRoot, new_page: NewPage, artifacts: Path) -> None:
    page = new_page()
    log = watch(page)
    page.goto((built.gallery / "index.html").as_uri())
    failed = page.locator(f'a[href="pairs/{built.failed.pair_id}.html"]')
    assert failed.locator(".status").inner_text().strip() == "failed"

    failed.click()
    page.wait_for_load_state("load")

    assert page.url.endswith(f"/gallery/pairs/{built.failed.pair_id}.html")
    error = page.locator(".error").inner_text()
    assert error.startswith("content image ")
    assert error.endswith("missing.png: not found")
    assert page.locator("img.result").count() == 0
    assert page.locator("svg").count() == 0
    assert [i["src"] for i in load_images(page) if i["width"] == 0] == []  # the style's preview
    page.screenshot(path=str(artifacts / "gallery-failed.png"), full_page=True)
    assert log.errors == []


def definitions(page: Page) -> dict[str, str]:
    """The detail page's <dt>/<dd> pairs as text."""
    return page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('dt'))"
        ".map(dt => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()]))"
    )
