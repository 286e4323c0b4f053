"""The small output root the gallery tests (and the gallery command's) share: a pytest plugin (tests/conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.manifest.read import Pair
from tests.conftest import make_image
from tests.tasks.gallery.helpers import read_pairs, render_or_record, write_manifest


@dataclass(frozen=True)
class SmallRoot:
    """An output root: 2 contents x 2 styles, content1 x style1 again with 3 iterations, one failed pair.

    ``pairs`` are in manifest order; the last one (content ``missing.png``) failed with an InputError.
    """

    out: Path
    inputs: Path
    pairs: list[Pair]

    @property
    def failed(self) -> Pair:
        return self.pairs[-1]

    @property
    def rendered(self) -> list[Pair]:
        return self.pairs[:-1]

    @property
    def variants(self) -> list[Pair]:
        """The two renders of content1 x style1 (2 and 3 iterations)."""
        return [self.pairs[0], self.pairs[4]]

    @property
    def contents(self) -> list[str]:
        return sorted({p.content for p in self.pairs})

    @property
    def styles(self) -> list[str]:
        return sorted({s for p in self.pairs for s in p.styles})

    @property
    def gallery(self) -> Path:
        return self.out / "gallery"


@pytest.fixture(scope="session")
def small_root_source(tmp_path_factory: pytest.TempPathFactory) -> SmallRoot:
    """Rendered once per session (~2 s); tests get a copy (``small_root``)."""
    inputs = tmp_path_factory.mktemp("small-inputs")
    for seed, name in enumerate(["content1.png", "content2.png", "style1.png", "style2.png"], start=1):
        make_image(seed, (40, 32) if name.startswith("content") else (36, 36)).save(inputs / name)
    rows = [
        {"content": "content1.png", "style": "style1.png", "iterations": 2},
        {"content": "content1.png", "style": "style2.png", "iterations": 2},
        {"content": "content2.png", "style": "style1.png", "iterations": 2},
        {"content": "content2.png", "style": "style2.png", "iterations": 2},
        {"content": "content1.png", "style": "style1.png", "iterations": 3},
        {"content": "missing.png", "style": "style1.png", "iterations": 2},
    ]
    pairs = read_pairs(write_manifest(inputs / "m.csv", rows))
    out = tmp_path_factory.mktemp("small-renders") / "renders"
    statuses = [render_or_record(pair, str(out)) for pair in pairs]
    assert statuses == ["rendered"] * 5 + ["failed"]
    return SmallRoot(out, inputs, pairs)


@pytest.fixture
def small_root(small_root_source: SmallRoot, tmp_path: Path) -> SmallRoot:
    """A private copy of the small output root (no gallery yet)."""
    out = tmp_path / "renders"
    shutil.copytree(small_root_source.out, out)
    return SmallRoot(out, small_root_source.inputs, small_root_source.pairs)
