"""`stylebatch gallery OUT [--manifest M]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from click.testing import CliRunner

from flows.cli import main
from tests.tasks.gallery.helpers import write_manifest

if TYPE_CHECKING:
    from tests.tasks.gallery.small_root import SmallRoot


def test_gallery_prints_the_index_path(small_root: SmallRoot) -> None:
    result = CliRunner().invoke(main, ["gallery", str(small_root.out)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{small_root.gallery / 'index.html'}\n"
    assert "6 pairs: 3 contents x 2 styles" in result.stderr
    assert (small_root.gallery / "index.html").is_file()
    assert (small_root.gallery / "contact_sheet.png").is_file()


def test_gallery_with_a_manifest_shows_its_pairs(small_root: SmallRoot, tmp_path: Path) -> None:
    pair = {"content": small_root.inputs / "content2.png", "style": small_root.inputs / "style1.png"}
    rows = [pair | {"iterations": 2}, pair | {"iterations": "lots"}]  # row 3 is bad: the gallery lists it as failed
    manifest = write_manifest(tmp_path / "one.csv", rows)

    result = CliRunner().invoke(main, ["gallery", str(small_root.out), "--manifest", str(manifest)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"{small_root.gallery / 'index.html'}\n"
    assert "1 pairs: 1 contents x 1 styles" in result.stderr
    assert len(list((small_root.gallery / "pairs").iterdir())) == 1
    index = (small_root.gallery / "index.html").read_text()
    assert "1 failed" in index and "row 3" in index  # as the run counted it


def test_gallery_with_a_missing_manifest_fails_clearly(small_root: SmallRoot, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["gallery", str(small_root.out), "--manifest", str(tmp_path / "nope.csv")])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "not found" in result.stderr
    assert "nope.csv" in result.stderr
