"""The summary ``stylebatch run`` ends with (``flows.summary``): a table that fits the terminal, then the paths."""

from __future__ import annotations

import re

import pytest

from flows.summary import REASON_LINES, print_summary
from tasks.runs.records import GalleryResult, RunSummary, SummaryRow
from tasks.storage.records import Status

TIMES, DOT = "\N{MULTIPLICATION SIGN}", "\N{MIDDLE DOT}"
MISSING = "content image /tmp/pytest-of-someone/pytest-123/test_run_exits_1_when_a_row_fa0/nowhere.png: not found"
OUT_OF_MEMORY = (
    "out of memory on cuda:0 at 2048 px in a batch of 4: use a smaller image_size, precision bf16, "
    "a smaller batch_size or tile_size 1024 (the device had 1.2 GiB free of 79.1 GiB when the render started)"
)


def summary() -> RunSummary:
    """A sweep with a long label, a missing input (a long path), a bad row, an out-of-memory failure."""
    rows = [
        SummaryRow(
            id="a", row=2, label=f"astronaut {TIMES} composition_vii {DOT} style_weight=3", status=Status.RENDERED
        ),
        SummaryRow(
            id="b",
            row=3,
            label=f"astronaut {TIMES} composition_vii {DOT} style_weight=10",
            status=Status.FAILED,
            time_s=1.25,
            reason=MISSING,
        ),
        SummaryRow(id="", row=4, status=Status.FAILED, reason="column iterations: Input should be a valid integer"),
        SummaryRow(
            id="c",
            row=5,
            label=f"tubingen {TIMES} starry_night + the_scream {DOT} style_weight=3, content_layers=relu4_2|relu5_2",
            status=Status.FAILED,
            time_s=100.0,
            reason=OUT_OF_MEMORY,
        ),
    ]
    gallery = GalleryResult(index="/renders/gallery/index.html")
    return RunSummary.of("/m/nightly.csv", "/renders", rows, 123.4).model_copy(update={"gallery": gallery})


def printed(capsys: pytest.CaptureFixture[str], width: int | None = None) -> list[str]:
    print_summary(summary(), "/renders/runs/nightly-20260101T020000Z.json", width)
    return capsys.readouterr().out.splitlines()


def rows_of(table: list[str]) -> dict[str, list[str]]:
    """Each row's lines (its first starts with the row number), without the header."""
    rows: dict[str, list[str]] = {}
    for line in table[2:]:
        number = line[:3].strip()
        if number:
            rows[number] = []
        rows[list(rows)[-1]].append(line)
    return rows


def cell(lines: list[str], start: int, end: int | None = None) -> str:
    """A column's text over a row's lines, joined as words."""
    return " ".join(part for line in lines if (part := line[start:end].strip()))


def test_the_summary_fits_100_columns_with_labels_whole_words_and_reasons_cut_to_their_start_and_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = printed(capsys)  # stdout is not a terminal here: 100 columns
    *table, gallery, summary_file, totals = lines
    assert all(len(line) <= 100 for line in lines[:-3]), "\n".join(lines)
    assert gallery == "gallery: /renders/gallery/index.html"
    assert summary_file == "summary: /renders/runs/nightly-20260101T020000Z.json"
    assert totals == "rendered 1, skipped 0, failed 3, cancelled 0 in 123.4 s; outputs in /renders"
    header = table[0]
    pair, status, reason = header.index("pair"), header.index("status"), header.index("reason")
    rows = rows_of(table)
    assert list(rows) == ["2", "3", "4", "5"]
    for row in summary().pairs:
        label = cell(rows[str(row.row)], pair, status)
        assert label == row.label  # every word whole: wrapped between words only
        assert cell(rows[str(row.row)], status, reason).startswith(str(row.status))
    assert cell(rows["3"], reason).replace("/ ", "/") == MISSING  # a path breaks after a /, and comes back whole
    assert len(rows["5"]) == REASON_LINES
    cut = cell(rows["5"], reason)
    assert cut.startswith("out of memory on cuda:0 at 2048 px") and "\N{HORIZONTAL ELLIPSIS}" in cut
    assert OUT_OF_MEMORY.endswith(cut.split("\N{HORIZONTAL ELLIPSIS} ")[1])  # its end, from a word on


@pytest.mark.parametrize("width", [60, 80, 140])
def test_the_table_fits_other_widths(capsys: pytest.CaptureFixture[str], width: int) -> None:
    lines = printed(capsys, width)
    assert all(len(line) <= width for line in lines[:-3]), "\n".join(lines)
    assert re.fullmatch(r"row +pair +status +time +reason", lines[0])


def test_a_run_without_failures_keeps_each_pair_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        SummaryRow(id=f"p{n}", row=n, label=f"astronaut {TIMES} style {DOT} style_weight={n}", status=Status.RENDERED)
        for n in range(2, 11)
    ]
    print_summary(RunSummary.of("m.csv", "out", rows, 1.0), "out/runs/m-20260101T020000Z.json", 100)
    table = capsys.readouterr().out.splitlines()[:-3]
    assert len(table) == 2 + 9
    assert [line.split("   ")[1].strip() for line in table[2:]] == [row.label for row in rows]
