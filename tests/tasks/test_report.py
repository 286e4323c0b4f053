"""The run summary, table rows and Markdown report (plain functions, no Prefect)."""

from __future__ import annotations

from pathlib import Path

from tasks.manifest import read_manifest
from tasks.report import artifact_key, markdown_report, row_problems, summarise, table_rows


def _manifest(tmp_path: Path) -> str:
    path = tmp_path / "Nightly Run.csv"
    path.write_text("content,style,iterations,seed\nc.png,s.png,,\nd.png,s.png,,\nc.png\n")
    return str(path)


def test_summary_counts_each_bad_row_once(tmp_path: Path) -> None:
    parsed = read_manifest(_manifest(tmp_path))
    rendered, skipped = parsed.pairs
    assert len(parsed.errors) > 1 and {e.row for e in parsed.errors} == {4}  # one row, several problems
    outcome = {"status": "rendered", "pair_id": rendered.pair_id, "final": {"total": 2.5}, "wall_s": 1.0}
    summary = summarise(parsed, "out", [outcome], [skipped], 3.0)
    assert (summary["rendered"], summary["skipped"], summary["failed"]) == (1, 1, 1)
    assert [row["row"] for row in summary["pairs"]] == [2, 3, 4]
    assert summary["pairs"][0]["total_loss"] == 2.5
    assert summary["pairs"][0]["output"] == f"out/{rendered.pair_id}/result.png"
    assert summary["pairs"][2]["reason"] == row_problems(parsed)[4]
    assert "column style" in row_problems(parsed)[4] and ";" in row_problems(parsed)[4]


def test_table_rows_link_results_but_not_failures(tmp_path: Path) -> None:
    parsed = read_manifest(_manifest(tmp_path))
    summary = summarise(parsed, "s3://b/out", [], parsed.pairs, 1.0)
    rows = table_rows(summary["pairs"])
    assert rows[0]["output"] == f"[result.png](s3://b/out/{parsed.pairs[0].pair_id}/result.png)"
    assert rows[2]["output"] == ""


def test_markdown_report_names_counts_gallery_and_failures(tmp_path: Path) -> None:
    parsed = read_manifest(_manifest(tmp_path))
    summary = summarise(parsed, "out", [], parsed.pairs, 1.0)
    summary["gallery"] = {
        "index": "out/gallery/index.html",
        "contact_sheet": "out/gallery/contact_sheet.png",
        "contents": 2,
        "styles": 1,
    }
    report = markdown_report(summary)
    assert "**0** rendered, **2** skipped, **1** failed" in report
    assert "[out/gallery/index.html](out/gallery/index.html)" in report
    assert "![contact sheet](out/gallery/contact_sheet.png)" in report
    assert "- row 4 : column" in report


def test_artifact_key_is_lowercase_letters_digits_and_dashes(tmp_path: Path) -> None:
    assert artifact_key(read_manifest(_manifest(tmp_path))) == "render-nightly-run"
