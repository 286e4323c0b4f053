"""500 pairs (25 contents x 20 styles) of fake pair folders: the gallery is complete (its speed: bench/gallery.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from tasks.gallery.build import build_gallery
from tests.conftest import make_image
from tests.tasks.gallery.helpers import FakePair, parse_page, png_bytes

CONTENTS, STYLES = 25, 20


@pytest.fixture
def big_root(tmp_path: Path) -> Path:
    """Fake pair folders as run_pair writes them; 45 real input images shared by all pairs."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    contents = [inputs / f"content{i:02d}.png" for i in range(CONTENTS)]
    styles = [inputs / f"style{j:02d}.png" for j in range(STYLES)]
    for seed, path in enumerate([*contents, *styles]):
        make_image(seed, (96, 64)).save(path)
    out = tmp_path / "renders"
    for i, content in enumerate(contents):
        for j, style in enumerate(styles):
            pair = FakePair(f"c{i:02d}__s{j:02d}", str(content), (str(style),), row=2 + i * STYLES + j)
            pair.write(str(out), png_bytes(make_image(1000 + i * STYLES + j, (64, 64))))
    return out


def test_500_pairs_build_completely(big_root: Path) -> None:
    """Every pair gets its thumbnail, page and cell (how fast: bench/gallery.py)."""
    built = build_gallery(str(big_root))
    assert (built.pairs, built.contents, built.styles) == (500, CONTENTS, STYLES)
    gallery = big_root / "gallery"
    assert len(list((gallery / "thumbs").iterdir())) == 500
    assert len(list((gallery / "pairs").iterdir())) == 500
    assert len(list((gallery / "inputs").iterdir())) == 2 * (CONTENTS + STYLES)
    index = parse_page(gallery / "index.html")
    assert index.tags.count("td") == 500
    assert index.tags.count("tr") == CONTENTS + 1
    hrefs = {value for tag, _, value in index.links if tag == "a" and value.startswith("pairs/")}
    assert hrefs == {f"pairs/c{i:02d}__s{j:02d}.html" for i in range(CONTENTS) for j in range(STYLES)}


def test_a_rebuild_lists_the_thumbnail_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which thumbnails exist is one listing per build, not one per pair (on S3 each listing is a request)."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    make_image(1).save(content)
    make_image(2).save(style)
    out = tmp_path / "renders"
    for i in range(40):
        FakePair(f"p{i:02d}", str(content), (str(style),)).write(str(out), png_bytes(make_image(i, (16, 16))))
    build_gallery(str(out))
    listings: list[str] = []
    ls = LocalFileSystem.ls

    def counting_ls(self: LocalFileSystem, path: str, *args: object, **kwargs: object) -> object:
        listings.append(str(path).rstrip("/").rsplit("/", 1)[-1])
        return ls(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "ls", counting_ls)

    built = build_gallery(str(out))

    assert built.pairs == 40
    assert listings.count("thumbs") <= 1, f"gallery/thumbs listed {listings.count('thumbs')} times for 40 pairs"
