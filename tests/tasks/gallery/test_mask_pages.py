"""A masked pair's page shows its masks beside its inputs (greyscale pictures copied into the gallery), each
captioned with its role and file name, and its settings line names them; an unmasked pair's page has none."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from nst_core import Settings
from tasks.gallery.build import build_gallery
from tests.conftest import make_image
from tests.tasks.gallery.helpers import FAST, FakePair, parse_page, png_bytes, resolved_links

RED = (200, 30, 30)  # the keep mask's colour: the engine reads its greyscale


@dataclass(frozen=True)
class MaskRoot:
    out: Path
    gallery: Path
    folder: Path  # the inputs and masks


def half(size: tuple[int, int], left: bool) -> Image.Image:
    """A mask white on one half."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]) if left else (size[0] // 2, 0, size[0], size[1]))
    return mask


@pytest.fixture
def masked(tmp_path: Path) -> MaskRoot:
    """``masked``: two styles placed by left.png and right.png, the second from part.png of its image, keep.png
    kept; ``pending``: masks not rendered yet, one of them missing; ``plain``: no masks."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for seed, name in enumerate(("c.png", "s1.png", "s2.png"), start=1):
        make_image(seed, (64, 48)).save(folder / name)
    half((64, 48), True).save(folder / "left.png")
    half((64, 48), False).save(folder / "right.png")
    half((64, 48), False).save(folder / "part.png")
    Image.new("RGB", (64, 48), RED).save(folder / "keep.png")
    content, styles = str(folder / "c.png"), (str(folder / "s1.png"), str(folder / "s2.png"))
    keep = Settings.from_values({**FAST, "iterations": 3, "device": "cpu", "keep_mask": str(folder / "keep.png")})
    masks = (str(folder / "left.png"), str(folder / "right.png"))
    rendered = FakePair(
        "masked", content, styles, keep, style_masks=masks, style_image_masks=("", str(folder / "part.png"))
    )
    pending = FakePair("pending", content, styles[::-1], style_masks=(masks[1], str(folder / "missing.png")))
    plain = FakePair("plain", content, styles[:1])
    out = tmp_path / "out"
    for pair in (rendered, plain):
        pair.write(str(out), png_bytes(make_image(7, (64, 48))))
    build_gallery(str(out), [rendered.pair, pending.pair, plain.pair])
    return MaskRoot(out, out / "gallery", folder)


def text(page: Path) -> str:
    """The page's text, tags left out."""
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def mask_pictures(page: Path) -> dict[str, str]:
    """alt -> src of the page's mask pictures."""
    return {
        a["alt"] or "": a["src"] or ""
        for tag, a in parse_page(page).elements
        if tag == "img" and "mask" in (a.get("class") or "")
    }


def test_a_masked_pairs_page_shows_each_mask_in_greyscale_with_its_role_and_name(masked: MaskRoot) -> None:
    page = masked.gallery / "pairs" / "masked.html"

    shown = mask_pictures(page)
    roles = {"style mask 1": "left.png", "style mask 2": "right.png", "style image mask 2": "part.png"}
    roles["keep mask"] = "keep.png"
    assert list(shown) == [f"{role}: {name}" for role, name in roles.items()]
    links = resolved_links(page, masked.out)  # relative, and there
    for (alt, src), name in zip(shown.items(), roles.values(), strict=True):
        assert links[src].is_relative_to((masked.gallery / "masks").resolve()), alt  # a copy, never the original
        with Image.open(links[src]) as picture:
            assert picture.mode == "L"  # the greyscale picture it is
            expected = Image.open(masked.folder / name).convert("L")
            assert picture.size == expected.size
            assert picture.tobytes() == expected.tobytes()
    assert shown["style mask 1: left.png"] != shown["style mask 2: right.png"]
    words = text(page)
    for role, name in roles.items():
        assert f"{role}: {name}" in words  # the caption
    assert "style masks: left.png | right.png" in words
    assert "style image masks: whole image | part.png" in words
    assert "keep mask: keep.png" in words


def test_a_pending_pairs_page_shows_its_masks_from_the_manifest(masked: MaskRoot) -> None:
    page = masked.gallery / "pairs" / "pending.html"

    shown = mask_pictures(page)
    assert list(shown) == ["style mask 1: right.png"]  # a mask that cannot be read has its caption only
    resolved_links(page, masked.out)
    words = text(page)
    assert "style mask 2: missing.png" in words
    assert "style masks: right.png | missing.png" in words
    assert "keep mask" not in words


def test_an_unmasked_pairs_page_has_no_masks_and_no_page_has_a_script(masked: MaskRoot) -> None:
    page = masked.gallery / "pairs" / "plain.html"
    html = page.read_text(encoding="utf-8")

    assert mask_pictures(page) == {}
    assert 'class="mask' not in html
    assert 'class="masks"' not in html
    assert "masks/" not in html
    for path in masked.gallery.rglob("*.html"):
        parsed = parse_page(path)
        assert "script" not in parsed.tags, path.name
        policies = [m["content"] for m in parsed.metas if m.get("http-equiv") == "Content-Security-Policy"]
        assert policies and "script-src 'none'" in (policies[0] or ""), path.name


def test_a_gallery_without_masks_makes_no_mask_folder(tmp_path: Path) -> None:
    make_image(1).save(tmp_path / "c.png")
    make_image(2).save(tmp_path / "s.png")
    FakePair("plain", str(tmp_path / "c.png"), (str(tmp_path / "s.png"),)).write(str(tmp_path / "out"), b"")
    build_gallery(str(tmp_path / "out"))

    assert not (tmp_path / "out" / "gallery" / "masks").exists()
