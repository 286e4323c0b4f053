"""The run summary, table rows and Markdown report (plain functions, no Prefect)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from nst_core import Settings, StepInfo, StorageError
from tasks.manifest.read import Pair, read_manifest
from tasks.runs.links import Links, md_escape
from tasks.runs.records import GalleryResult, Outcome, RunSummary
from tasks.runs.report import (
    artifact_key,
    markdown_report,
    row_problems,
    step_text,
    summarise,
    table_description,
    table_rows,
    write_summary,
)
from tasks.storage.records import LossRow, Status
from tasks.storage.root import RUNS
from tests.support import Bucket


def _rendered(pair: Pair, wall_s: float) -> Outcome:
    final = LossRow(iteration=3, content=1.0, style=0.5, tv=0.1, total=2.5, lr=1.0, elapsed_s=wall_s)
    return Outcome(pair_id=pair.pair_id, row=pair.row, status=Status.RENDERED, final=final, wall_s=wall_s)


def _manifest(tmp_path: Path) -> str:
    path = tmp_path / "Nightly Run.csv"
    path.write_text("content,style,iterations,seed\nc.png,s.png,,\nd.png,s.png,,\nc.png\n")
    return str(path)


def test_summary_counts_each_bad_row_once(tmp_path: Path) -> None:
    parsed = read_manifest(_manifest(tmp_path))
    rendered, skipped = parsed.pairs
    assert len(parsed.errors) > 1 and {e.row for e in parsed.errors} == {4}  # one row, several problems
    summary = summarise(parsed, "out", [_rendered(rendered, 1.0)], [skipped], 3.0)
    assert (summary.rendered, summary.skipped, summary.failed) == (1, 1, 1)
    assert [row.row for row in summary.pairs] == [2, 3, 4]
    assert summary.pairs[0].final.total == 2.5
    assert summary.pairs[0].output == f"out/{rendered.pair_id}/result.png"
    assert summary.pairs[2].reason == row_problems(parsed)[4]
    assert "column style" in row_problems(parsed)[4] and ";" in row_problems(parsed)[4]


def _summary(tmp_path: Path, out: str) -> RunSummary:
    """Row 2 rendered in 87.155... s, row 3 skipped, row 4 a bad row; a gallery with two contact sheets."""
    parsed = read_manifest(_manifest(tmp_path))
    rendered, skipped = parsed.pairs
    summary = summarise(parsed, out, [_rendered(rendered, 87.15504206800006)], [skipped], 91.04)
    gallery = f"{out}/gallery"
    sheets = [f"{gallery}/contact_sheet.png", f"{gallery}/contact_sheet-2.png"]
    shown = GalleryResult(index=f"{gallery}/index.html", contact_sheets=sheets, contents=2, styles=1)
    return summary.model_copy(update={"gallery": shown})


def test_table_is_compact_rounded_and_links_results_where_a_browser_opens_them(tmp_path: Path) -> None:
    summary = _summary(tmp_path, str(tmp_path / "out"))
    rows = table_rows(summary.pairs, Links(str(tmp_path / "out"), "https://renders.example.com/nightly"))
    assert [list(row) for row in rows] == [["pair", "row", "status", "time", "result", "reason"]] * 3
    rendered, skipped, bad = rows
    pair_id = summary.pairs[0].id
    assert (rendered["row"], rendered["status"], rendered["time"], rendered["reason"]) == (2, "rendered", "87.2 s", "")
    assert rendered["pair"] == md_escape(summary.pairs[0].label) == "c \N{MULTIPLICATION SIGN} s"  # for people
    assert rendered["result"] == f"[result.png](https://renders.example.com/nightly/{pair_id}/result.png)"
    assert skipped["result"].startswith("[result.png](https://") and skipped["time"] == ""
    assert (bad["pair"], bad["status"], bad["result"]) == ("", "failed", "")
    assert not any(isinstance(v, float) for row in rows for v in row.values())


def test_table_shows_local_results_as_text_and_long_reasons_briefly(tmp_path: Path) -> None:
    summary = _summary(tmp_path, str(tmp_path / "out"))
    reason = summary.pairs[2].reason
    rows = table_rows(summary.pairs, Links(str(tmp_path / "out")))
    assert rows[0]["result"] == "`result.png`"  # text, not a broken link; the description says where
    assert table_description(summary) == f"Pairs of `{summary.manifest}`; results in `{tmp_path}/out/<pair>/result.png`"
    assert not any("](" in v for row in rows for v in row.values() if isinstance(v, str))
    assert len(reason) > 36
    shown = MarkdownIt("commonmark").renderInline(rows[2]["reason"])
    assert len(shown) == 36 and shown.startswith(reason[:12]) and shown.endswith(reason[-23:]) and "…" in shown


def test_report_links_gallery_and_shows_contact_sheets_with_a_public_url(tmp_path: Path) -> None:
    summary = _summary(tmp_path, str(tmp_path / "out"))
    report = markdown_report(summary, Links(str(tmp_path / "out"), "http://127.0.0.1:8765"))
    assert "**1** rendered, **1** skipped, **1** failed, **0** cancelled in 91.0 s." in report
    assert "- Gallery: [index.html](http://127.0.0.1:8765/gallery/index.html), 2 contents x 1 styles" in report
    assert "![contact sheet 1](http://127.0.0.1:8765/gallery/contact_sheet.png)" in report
    assert "![contact sheet 2](http://127.0.0.1:8765/gallery/contact_sheet-2.png)" in report
    assert "- row 4: column" in report


def test_report_without_links_shows_paths_as_text_and_how_to_open_the_gallery(tmp_path: Path) -> None:
    out = str(tmp_path / "my renders")
    summary = _summary(tmp_path, out)
    report = markdown_report(summary, Links(out))
    html = MarkdownIt("commonmark").render(report)
    assert "](" not in report and "<img" not in html and "<a " not in html
    assert f"<code>{out}/gallery/index.html</code>, 2 contents x 1 styles" in html
    assert f"<code>stylebatch gallery '{out}' --serve</code>" in html
    assert f"<code>xdg-open '{out}/gallery/index.html'</code>" in html


def test_report_escapes_names_and_reasons(tmp_path: Path) -> None:
    summary = _summary(tmp_path, "s3://b/out")
    pairs = [*summary.pairs[:2], summary.pairs[2].model_copy(update={"reason": "column [x](y): **bad**"})]
    gallery = GalleryResult(error="store <gone> _now_")
    summary = summary.model_copy(update={"manifest": "s3://b/a_1913_*b*.csv", "gallery": gallery, "pairs": pairs})
    html = MarkdownIt("commonmark").render(markdown_report(summary, Links("s3://b/out", "https://cdn.example.com")))
    assert "<h1>s3://b/a_1913_*b*.csv</h1>" in html
    assert "Gallery: store &lt;gone&gt; _now_" in html
    assert "row 4: column [x](y): **bad**" in html
    assert "<em>" not in html and "<strong>" not in html.replace("<strong>1</strong>", "").replace(
        "<strong>0</strong>", ""
    )


def test_a_clip_links_its_video_in_the_table_and_the_report(tmp_path: Path) -> None:
    path = tmp_path / "clips.csv"
    path.write_text("content,style\npan.mp4,s.png\nc.png,s.png\n")
    parsed = read_manifest(str(path))
    clip, still = parsed.pairs
    assert clip.clip and not still.clip
    out, public = str(tmp_path / "out"), "https://renders.example.com/nightly"
    summary = summarise(parsed, out, [_rendered(clip, 60.0), _rendered(still, 9.0)], [], 70.0)

    assert [r.output for r in summary.pairs] == [
        f"{out}/{clip.pair_id}/result.mp4",
        f"{out}/{still.pair_id}/result.png",
    ]
    rows = table_rows(summary.pairs, Links(out, public))
    assert [r["result"] for r in rows] == [
        f"[result.mp4]({public}/{clip.pair_id}/result.mp4)",
        f"[result.png]({public}/{still.pair_id}/result.png)",
    ]
    assert [r["result"] for r in table_rows(summary.pairs, Links(out))] == ["`result.mp4`", "`result.png`"]
    assert table_description(summary) == (
        f"Pairs of `{summary.manifest}`; results in `{out}/<pair>/result.png`, clips in `{out}/<pair>/result.mp4`"
    )
    report = markdown_report(summary, Links(out, public))
    assert f"## Clips\n- pan \N{MULTIPLICATION SIGN} s: [result.mp4]({public}/{clip.pair_id}/result.mp4)" in report
    assert f"## Clips\n- pan \N{MULTIPLICATION SIGN} s: `{out}/{clip.pair_id}/result.mp4`" in markdown_report(
        summary, Links(out)
    )


def test_artifact_key_is_lowercase_letters_digits_and_dashes(tmp_path: Path) -> None:
    assert artifact_key(read_manifest(_manifest(tmp_path))) == "render-nightly-run"


# --- the summary file and the loss terms in words ---------------------------------------------------------------


def test_the_summary_file_is_the_whole_summary_and_a_second_run_in_the_same_second_gets_its_own(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    summary = _summary(tmp_path, str(out))
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = write_summary(summary, 0, when), write_summary(summary, 0, when)
    assert first == f"{out}/{RUNS}/Nightly Run-20260102T030405Z.json"
    assert second == f"{out}/{RUNS}/Nightly Run-20260102T030405Z-2.json"
    assert RunSummary.model_validate_json(Path(first).read_text()) == summary
    assert sorted(p.name for p in (out / RUNS).iterdir()) == [Path(second).name, Path(first).name]  # no staging left


def test_the_summary_file_goes_to_s3_in_one_put(tmp_path: Path, s3: Bucket) -> None:
    summary = _summary(tmp_path, f"{s3.uri}/renders")
    uri = write_summary(summary, 0, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert uri == f"{s3.uri}/renders/{RUNS}/Nightly Run-20260102T030405Z.json"
    assert RunSummary.model_validate_json(s3.get(f"renders/{RUNS}/Nightly Run-20260102T030405Z.json")) == summary
    assert write_summary(summary, 0, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)).endswith("Z-2.json")


def test_a_summary_file_that_cannot_be_written_says_where_and_why(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.mkdir()
    (blocker / RUNS).write_text("a file where the runs folder should be")
    with pytest.raises(StorageError, match=rf"^summaries' folder {blocker}/{RUNS}: already exists$"):
        write_summary(_summary(tmp_path, str(blocker)), 0)


def test_loss_terms_are_weighted_as_in_the_total_and_said_so_once() -> None:
    """The words the terminal and the logs share: each term times its weight (``LossRow.weighted``, the gallery's)."""
    step = StepInfo(
        iteration=7,
        content=0.5,
        style=0.25,
        tv=0.02,
        total=0.5 * 2 + 0.25 * 3 + 0.02 * 10,
        lr=1.0,
        elapsed_s=1.0,
        level=2,
    )
    single = Settings(content_weight=2, style_weight=3, tv_weight=10)
    assert step_text(step, single) == "losses (weighted): content 1 style 0.75 tv 0.2 total 1.95"
    multi = single.model_copy(update={"image_size": 256, "start_size": 64})
    assert step_text(step, multi) == f"level 2/3 \N{MIDDLE DOT} {step_text(step, single)}"  # 64, 128, 256 px
    terms = LossRow.of(step).weighted(single)
    assert terms["content"] + terms["style"] + terms["tv"] == pytest.approx(step.total)
