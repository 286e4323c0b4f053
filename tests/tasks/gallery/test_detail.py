"""A pair's detail page in Chromium at 1400 x 1000: the result at the centre, filling the main column (crisp
pixels when enlarged), compared in place without scripts, snapshots, a wide chart, a readable settings column,
previous / next links; a failed pair's partial picture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nst_core import Settings
from tasks.gallery.build import build_gallery
from tasks.storage.records import snapshot_file, snapshot_name
from tests.conftest import make_image
from tests.tasks.gallery.helpers import FAST, FakePair, fake_failure, load_images, png_bytes, resolved_links, watch

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

NewPage = Callable[..., "Page"]
WINDOW = (1400, 1000)
RESULT_SIZE = (192, 144)  # a 192 px render of a 4:3 content
SEPARATORS = set(" /|,-")  # where a line of the settings column may break


def settings(**values: Any) -> Settings:
    return Settings.from_values({**FAST, "image_size": 192, "iterations": 30, "device": "cpu", **values})


@pytest.fixture
def renders(tmp_path: Path) -> Path:
    """2 contents x 3 styles of 192 x 144 results with snapshots every 10 iterations; tubingen x wide.png failed
    at iteration 25 with the snapshots of iterations 10 and 20 in its folder."""
    folder = tmp_path / "some inputs" / "photographs_and_paintings"
    folder.mkdir(parents=True)
    names = ["tubingen.png", "cat.png", "tall.png", "wide.png", "square.png"]
    sizes = {"tall.png": (30, 60), "wide.png": (80, 40), "square.png": (50, 50)}
    for seed, name in enumerate(names, start=1):
        make_image(seed, sizes.get(name, (64, 48))).save(folder / name)
    out = tmp_path / "out"
    for i, content in enumerate(names[:2]):
        for j, style in enumerate(names[2:]):
            pair = FakePair(f"p{i}{j}", str(folder / content), (str(folder / style),), settings(snapshot_every=10))
            if (i, j) == (0, 1):
                fake_failure(str(out), pair, TimeoutError("timed out after 60 s (--timeout)"))
                for iteration in (10, 20):
                    path = out / pair.pair_id / snapshot_name(iteration)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(snapshot_file(make_image(iteration, RESULT_SIZE)))
            else:
                pair.write(str(out), png_bytes(make_image(10 * i + j, RESULT_SIZE)), RESULT_SIZE)
    build_gallery(str(out))
    return out


def open_page(new_page: NewPage, out: Path, pair_id: str, **options: Any) -> Page:
    page = new_page(*WINDOW, **options)
    page.goto((out / "gallery" / "pairs" / f"{pair_id}.html").as_uri())
    load_images(page)
    return page


def visible_images(page: Page) -> list[dict[str, Any]]:
    """Each image drawn on the page: its class, src, box and how it is scaled."""
    return page.evaluate(
        """Array.from(document.images).filter(i => i.checkVisibility()).map(i => {
             const r = i.getBoundingClientRect();
             return {cls: i.className, src: i.getAttribute('src'), width: r.width, height: r.height, top: r.top,
                     left: r.left, right: r.right, natural: i.naturalWidth,
                     rendering: getComputedStyle(i).imageRendering};
           })"""
    )


def test_the_result_is_the_largest_picture_filling_the_main_column(renders: Path, new_page: NewPage) -> None:
    page = open_page(new_page, renders, "p00")
    log = watch(page)

    images = visible_images(page)
    result = next(i for i in images if i["cls"] == "result")
    assert result["natural"] == RESULT_SIZE[0]
    assert max(images, key=lambda i: i["width"] * i["height"]) is result
    main = page.locator("section.main").bounding_box()
    assert result["width"] == pytest.approx(main["width"], abs=1)  # the whole main column
    assert result["width"] > 0.6 * WINDOW[0]
    assert result["height"] == pytest.approx(result["width"] * 3 / 4, abs=2)
    assert result["top"] + result["height"] < WINDOW[1]  # on the first screen
    assert result["rendering"] == "pixelated"  # enlarged about 5x: crisp pixels, not a blur
    others = [i for i in images if i["cls"] != "result"]
    assert all(i["width"] * i["height"] < result["width"] * result["height"] / 4 for i in others)
    assert log.errors == []


def test_a_portrait_result_fits_the_first_screen(tmp_path: Path, new_page: NewPage) -> None:
    """As high as the window allows, below the header and a failure's note, beside choices on two rows."""
    content = tmp_path / "a portrait with a long name.png"
    make_image(1, (48, 64)).save(content)
    out = tmp_path / "out"
    for j in range(6):
        style = tmp_path / f"a style with a rather long file name {j}.png"
        make_image(2 + j).save(style)
        pair = FakePair(f"p{j}", str(content), (str(style),), settings(snapshot_every=10))
        if j == 0:
            fake_failure(str(out), pair, TimeoutError("timed out after 60 s (--timeout)"))
            path = out / pair.pair_id / snapshot_name(10)
            path.parent.mkdir(parents=True)
            path.write_bytes(snapshot_file(make_image(1, (144, 192))))
        else:
            pair.write(str(out), png_bytes(make_image(j, (144, 192))), (144, 192))
    build_gallery(str(out))

    for pair_id, kind in (("p0", "partial"), ("p1", "result")):
        page = open_page(new_page, out, pair_id)
        choices = page.locator(".choices label").first.bounding_box()
        assert page.locator(".choices").bounding_box()["height"] > 1.5 * choices["height"]  # wrapped
        picture = next(i for i in visible_images(page) if i["cls"] == kind)
        assert picture["top"] + picture["height"] <= WINDOW[1]
        assert picture["height"] > 0.6 * WINDOW[1]
        assert picture["rendering"] == "pixelated"


def test_a_render_larger_than_the_column_is_scaled_down_smoothly(tmp_path: Path, new_page: NewPage) -> None:
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    make_image(1, (64, 48)).save(content)
    make_image(2).save(style)
    big = FakePair("big", str(content), (str(style),), settings(image_size=1600))
    big.write(str(tmp_path / "out"), png_bytes(make_image(3, (1600, 1200))))
    build_gallery(str(tmp_path / "out"))

    page = open_page(new_page, tmp_path / "out", "big")

    result = next(i for i in visible_images(page) if i["cls"] == "result")
    assert result["width"] < 1600
    assert result["rendering"] == "auto"


def test_the_result_is_compared_in_place_without_scripts(renders: Path, new_page: NewPage, artifacts: Path) -> None:
    page = open_page(new_page, renders, "p00", java_script_enabled=False)
    choices = [c.strip() for c in page.locator(".choices label").all_inner_texts()]
    assert choices == ["result", "content", "square.png", "wide.png (partial, 20)"]  # wide.png failed at 25

    def shown() -> list[dict[str, Any]]:
        return [i for i in visible_images(page) if i["top"] < 900 and i["width"] > 300]

    (first,) = shown()
    assert first["src"] == "../../p00/result.png"
    page.locator(".choices label", has_text="content").click()
    (content,) = shown()
    assert content["cls"] == "content"
    assert content["src"].endswith("-preview.jpg")
    assert (content["left"], content["top"], content["width"]) == pytest.approx(
        (first["left"], first["top"], first["width"]), abs=1
    )  # in place of the result, at its size
    assert abs(content["height"] - first["height"]) <= 2
    page.screenshot(path=str(artifacts / "detail-compare-content.png"))
    page.locator(".choices label", has_text="square.png").click()
    (neighbour,) = shown()
    assert neighbour["src"] == "../../p02/result.png"
    assert neighbour["rendering"] == "pixelated"
    page.locator(".choices label", has_text="result").click()
    assert [i["src"] for i in shown()] == ["../../p00/result.png"]


def test_the_snapshots_are_a_strip_in_iteration_order(renders: Path, new_page: NewPage) -> None:
    page = open_page(new_page, renders, "p10")

    strip = page.locator("h2:text-is('Snapshots') + .snapshot-strip")
    assert strip.locator("figcaption").all_inner_texts() == ["iteration 10", "iteration 20", "iteration 30"]
    sources = [img.get_attribute("src") for img in strip.locator("img").all()]
    assert sources == [f"../../p10/snapshots/000{n}0.png" for n in (1, 2, 3)]
    assert all(i["width"] > 0 for i in load_images(page))
    resolved_links(renders / "gallery" / "pairs" / "p10.html", renders)


def test_the_loss_chart_is_wide_with_axis_titles_and_ticks(renders: Path, new_page: NewPage) -> None:
    page = open_page(new_page, renders, "p00")

    chart = page.locator("svg.chart")
    assert chart.bounding_box()["width"] > 800
    titles = chart.locator("text.axis-title").all_text_contents()
    assert titles == ["iteration", "loss, weighted (log scale)"]
    ticks = chart.locator("text.tick").all_text_contents()
    iterations = [t for t in ticks if "e" not in t]
    assert iterations == ["1", "5", "10", "15", "20", "25", "30"]
    assert len(ticks) - len(iterations) > 3  # the loss axis
    heights = chart.locator("text.tick").evaluate_all("ts => ts.map(t => t.getBBox().height)")
    assert min(heights) * chart.bounding_box()["width"] / 900 >= 12  # readable: at least 12 px on screen


def line_breaks(elements: Locator) -> list[tuple[str, str, str]]:
    """Where the text of each of ``elements`` wraps: (its text, the character before, the character after)."""
    return elements.evaluate_all(
        """elements => {
          const breaks = [];
          for (const element of elements) {
            const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
            const chars = [];
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
              for (let k = 0; k < node.length; k++) {
                const range = document.createRange();
                range.setStart(node, k);
                range.setEnd(node, k + 1);
                const rect = range.getClientRects()[0];
                if (rect) chars.push([node.data[k], rect.top]);
              }
            }
            for (let k = 1; k < chars.length; k++) {
              if (chars[k][1] > chars[k - 1][1] + 2) breaks.push([element.textContent, chars[k - 1][0], chars[k][0]]);
            }
          }
          return breaks;
        }"""
    )


def test_the_settings_column_breaks_lines_only_between_tokens(renders: Path, new_page: NewPage) -> None:
    page = open_page(new_page, renders, "p00")

    breaks = line_breaks(page.locator("aside dd, aside figcaption, aside code"))
    assert any(before == "/" for _, before, _ in breaks)  # the inputs' long paths do wrap, at their slashes
    mid_token = [(text, before, after) for text, before, after in breaks if before not in SEPARATORS]
    assert mid_token == []
    flags = line_breaks(page.locator("code.flags"))
    assert flags and all(before in " /" for _, before, _ in flags)  # never inside a flag: --snapshot-every
    time = page.locator("dt:text-is('time') + dd")
    assert time.inner_text() == "0.3 s (66 ms per iteration)"
    assert line_breaks(time) == []  # on one line
    layers = page.locator("dt:text-is('style_layers') + dd")
    assert layers.inner_text() == "relu1_1|relu2_1|relu3_1|relu4_1|relu5_1"


def test_previous_and_next_follow_the_gallery_order(renders: Path, new_page: NewPage) -> None:
    page = new_page(*WINDOW)
    page.goto((renders / "gallery" / "index.html").as_uri())
    order = [a.get_attribute("href").removeprefix("pairs/") for a in page.locator("td.cell a.pair").all()]
    assert len(order) == 6

    seen = [order[0]]
    page.goto((renders / "gallery" / "pairs" / order[0]).as_uri())
    assert page.locator("a[accesskey='p']").count() == 0  # the first pair has no previous one
    for _ in order[1:]:
        link = page.locator("a[rel='next']")
        assert link.evaluate("a => a.accessKey") == "n"  # Alt+N in Chromium (headless ignores access keys)
        link.click()
        page.wait_for_load_state("load")
        seen.append(page.url.rsplit("/", 1)[1])
    assert seen == order
    assert page.locator("a[accesskey='n']").count() == 0  # the last pair has no next one
    back = []
    for _ in order[1:]:
        assert page.locator("a[rel='prev']").evaluate("a => a.accessKey") == "p"
        page.locator("a[rel='prev']").click()
        page.wait_for_load_state("load")
        back.append(page.url.rsplit("/", 1)[1])
    assert back == order[-2::-1]


def test_a_failed_pair_shows_its_last_snapshot_as_partial(renders: Path, new_page: NewPage, artifacts: Path) -> None:
    page = open_page(new_page, renders, "p01")

    images = visible_images(page)
    partial = next(i for i in images if i["cls"] == "partial")
    assert partial["src"] == "../../p01/snapshots/00020.png"
    assert max(images, key=lambda i: i["width"] * i["height"]) is partial
    assert page.locator(".choices label").first.inner_text() == "partial: iteration 20"
    note = page.locator(".partial-note").inner_text()
    assert "iteration 20 of 30" in note and "failed" in note
    assert page.locator(".error").inner_text() == "timed out after 60 s (--timeout)"
    assert page.locator("img.result").count() == 0
    strip = page.locator(".snapshot-strip figcaption").all_inner_texts()
    assert strip == ["iteration 10", "iteration 20"]
    page.screenshot(path=str(artifacts / "detail-partial.png"))

    page.goto((renders / "gallery" / "index.html").as_uri())
    load_images(page)
    cell = page.locator("a.pair[href='pairs/p01.html']")
    assert cell.locator(".badge").inner_text() == "failed · partial, iteration 20"
    assert cell.locator("img.partial").evaluate("i => i.naturalWidth") == RESULT_SIZE[0]
    assert cell.locator(".reason").inner_text() == "timed out after 60 s (--timeout)"
