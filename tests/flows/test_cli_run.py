"""``stylebatch run`` in-process with click's CliRunner: the summary table, failure lines, exit codes, flags.

The session's Prefect test server is the configured API (``PREFECT_API_URL`` of the harness), so no
temporary server starts here; ``tests/faults`` runs the real console script in embedded mode.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.cli import main
from tasks.runs.records import RunSummary
from tasks.storage.records import DONE, RECORD, read_record
from tasks.storage.root import RUNS
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import Bucket

pytestmark = pytest.mark.usefixtures("prefect_api")

FLAGS = ["--weights", "random:0", "--image-size", "32", "--iterations", "2"]
TOTALS = re.compile(r"^rendered (\d+), skipped (\d+), failed (\d+), cancelled (\d+) in ([\d.]+) s; outputs in (.+)$")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def totals(stdout: str) -> tuple[int, int, int, int, float, str]:
    """The summary's last line: counts, seconds and the output root."""
    match = TOTALS.match(stdout.splitlines()[-1])
    assert match, stdout
    return int(match[1]), int(match[2]), int(match[3]), int(match[4]), float(match[5]), match[6]


def table(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by row number, each its first line: [pair, status, time..., reason...] split on
    runs of spaces (a long label or reason goes on in the lines below; the summary file has them whole)."""
    lines = stdout.splitlines()
    body = lines[2 : lines.index(next(line for line in lines if line.startswith("gallery: ")))]
    assert all(len(line) <= 100 for line in body), stdout  # stdout is not a terminal: 100 columns
    rows = (re.split(r"\s{2,}", line.strip()) for line in body if line[:3].strip())
    return {cells[0]: cells[1:] for cells in rows}


def summary_file(stdout: str) -> RunSummary:
    """The summary file that the summary's ``summary: <path>`` line names (under ``<out>/runs/``)."""
    (path,) = [line.removeprefix("summary: ") for line in stdout.splitlines() if line.startswith("summary: ")]
    assert Path(path).parent.name == RUNS, path
    return RunSummary.model_validate_json(Path(path).read_text())


def pairs_in(summary: RunSummary) -> dict[int, tuple[str, str, str]]:
    """row -> (pair id, status, reason) in a summary file."""
    return {row.row: (row.id, str(row.status), row.reason) for row in summary.pairs}


def test_run_exits_1_when_a_row_fails(tiny: Tiny, tmp_path: Path) -> None:
    (c1,), (s1,) = tiny.images(1, 1)
    manifest = tiny.manifest(f"id,content,style,iterations\nok,{c1},{s1},\nlost,nowhere.png,{s1},\nbad,{c1},{s1},x\n")
    out = tmp_path / "out"
    result = run(str(manifest), "--out", str(out), *FLAGS)

    assert result.exit_code == 1, result.output
    assert totals(result.stdout)[:4] == (1, 0, 2, 0)
    missing = f"content image {tmp_path.resolve()}/nowhere.png: not found"
    assert f"row 3 lost: {missing}" in result.stderr.splitlines()  # one line, never wrapped (an id is its label)
    assert any(line.startswith("row 4: column iterations: ") for line in result.stderr.splitlines())
    assert "Traceback" not in result.output
    rows = table(result.stdout)  # the reasons as far as 100 columns show them
    assert rows["2"][:2] == ["ok", "rendered"]
    assert rows["3"][:2] == ["lost", "failed"] and missing.startswith(rows["3"][2])
    assert rows["4"][0] == "failed" and rows["4"][1].startswith("column iterations: ")
    summary = summary_file(result.stdout)  # the pairs by their ids, the reasons whole
    assert pairs_in(summary)[2][:2] == ("ok", "rendered")
    assert pairs_in(summary)[3] == ("lost", "failed", missing)
    assert pairs_in(summary)[4][1] == "failed" and pairs_in(summary)[4][2].startswith("column iterations: ")
    assert (summary.rendered, summary.failed) == (1, 2)
    assert pair_dirs(out) == {"ok": PAIR_FILES, "lost": {"failed.json"}}
    assert "Traceback" in json.loads((out / "lost" / "failed.json").read_text())["traceback"]

    again = run(str(manifest), "--out", str(out), *FLAGS)
    assert again.exit_code == 1
    assert totals(again.stdout)[:4] == (0, 1, 2, 0)
    assert summary_file(again.stdout) != summary  # each run its own file
    assert len(list((out / RUNS).iterdir())) == 2


def test_run_prints_summary_and_uses_flags_as_defaults(tiny: Tiny, tmp_path: Path) -> None:
    (c1, c2), (s1, s2) = tiny.images(2, 2)
    manifest = tiny.manifest(f"id,content,style,iterations\na,{c1},{s1},\nb,{c1},{s2},\nc,{c2},{s1},3\nd,{c2},{s2},\n")
    out = tmp_path / "out"
    start = time.perf_counter()
    result = run(str(manifest), "--out", str(out), *FLAGS)
    wall_s = time.perf_counter() - start

    assert result.exit_code == 0, result.output
    rendered, skipped, failed, cancelled, total_s, where = totals(result.stdout)
    assert (rendered, skipped, failed, cancelled, where) == (4, 0, 0, 0, str(out))
    assert 0 < total_s <= wall_s + 0.1  # the summary's time is the flow's own
    assert {row: cells[:2] for row, cells in table(result.stdout).items()} == {
        "2": ["a", "rendered"],
        "3": ["b", "rendered"],
        "4": ["c", "rendered"],
        "5": ["d", "rendered"],
    }
    summary = summary_file(result.stdout)
    assert [(row.row, row.id, row.label, row.status) for row in summary.pairs] == [
        (n, pair_id, pair_id, "rendered") for n, pair_id in enumerate("abcd", start=2)
    ]
    assert f"gallery: {out}/gallery/index.html" in result.stdout.splitlines()
    assert pair_dirs(out) == {pair_id: PAIR_FILES for pair_id in "abcd"}
    settings = {p: read_record((out / p / RECORD).read_bytes(), (out / p / DONE).read_bytes()).settings for p in "abcd"}
    assert {p: s.iterations for p, s in settings.items()} == {"a": 2, "b": 2, "c": 3, "d": 2}
    assert {s.image_size for s in settings.values()} == {32}
    assert {s.weights for s in settings.values()} == {"random:0"}
    # stderr is not a terminal here: plain lines, one per pair, no bars
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("row ")) == [
        f"row {row} {label}: rendered in {line_time}"
        for row, label, line_time in sorted((row, cells[0], cells[2]) for row, cells in table(result.stdout).items())
    ]
    assert "━" not in result.stderr


def test_force_renders_every_pair_again_and_rewrites_its_completion_record(tiny: Tiny, tmp_path: Path) -> None:
    """``run M --out O`` then ``run M --out O --force``: the flag reaches the flow, and nothing is skipped."""
    manifest, out = tiny.cross(1, 2), tmp_path / "out"
    assert run(str(manifest), "--out", str(out), *FLAGS).exit_code == 0
    before = {p.parent.name: p.read_bytes() for p in out.glob("*/done.json")}
    again = run(str(manifest), "--out", str(out), "--force", *FLAGS)
    assert again.exit_code == 0, again.output
    assert totals(again.stdout)[:4] == (2, 0, 0, 0)
    after = {p.parent.name: p.read_bytes() for p in out.glob("*/done.json")}
    assert after.keys() == before.keys() and len(after) == 2
    assert all(after[pair] != before[pair] for pair in before)  # each completion record written anew


def test_a_summary_file_that_cannot_be_written_is_one_line_of_the_summary(tiny: Tiny, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / RUNS).write_text("a file where the runs' summaries go")
    result = run(str(tiny.cross(1, 1)), "--out", str(out), *FLAGS)
    assert result.exit_code == 0, result.output  # the pairs rendered: the run did its work
    assert result.stdout.splitlines()[-2] == f"summary: not written: summaries' folder {out}/{RUNS}: already exists"
    assert totals(result.stdout)[:4] == (1, 0, 0, 0)


def test_quiet_prints_only_failures_and_the_summary(tiny: Tiny, tmp_path: Path) -> None:
    (c1,), (s1,) = tiny.images(1, 1)
    manifest = tiny.manifest(f"id,content,style\nok,{c1},{s1}\nlost,nowhere.png,{s1}\n")
    result = run(str(manifest), "--out", str(tmp_path / "out"), "--quiet", *FLAGS)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"row 3 lost: content image {tmp_path.resolve()}/nowhere.png: not found"]
    assert totals(result.stdout)[:4] == (1, 0, 1, 0)


def test_verbose_prints_tracebacks_of_failures(tiny: Tiny, tmp_path: Path) -> None:
    (s1,) = tiny.images(0, 1)[1]
    manifest = tiny.manifest(f"id,content,style\nlost,nowhere.png,{s1}\n")
    result = run(str(manifest), "--out", str(tmp_path / "out"), "--verbose", *FLAGS)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "StorageError" in result.stderr


def test_an_unwritable_output_root_is_one_error_before_anything_runs(tiny: Tiny, tmp_path: Path) -> None:
    manifest = tiny.cross(1, 1)
    blocker = tmp_path / "renders"
    blocker.write_text("a file where the output root should be")
    result = run(str(manifest), "--out", str(blocker), *FLAGS)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: output {blocker}: already exists"
    assert result.stdout == ""


def test_link_options_reach_the_prefect_ui(tiny: Tiny, s3: Bucket) -> None:
    (c1,), (s1,) = tiny.images(1, 1)
    manifest = tiny.manifest(f"id,content,style\na,{c1},{s1}\n", "cli-links.csv")
    out = f"{s3.uri}/renders"
    assert run(str(manifest), "--out", out, "--link-expiry", "120", *FLAGS).exit_code == 0
    assert "X-Amz-Expires=120&" in latest_artifact("render-cli-links-pairs")[0]["result"]

    again = run(str(manifest), "--out", out, "--public-url", "https://renders.example.com/nightly", *FLAGS)
    assert again.exit_code == 0
    assert latest_artifact("render-cli-links-pairs")[0]["result"] == (
        "[result.png](https://renders.example.com/nightly/a/result.png)"
    )


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--public-url", "renders.example.com"], "Invalid value for '--public-url': must be an http:// or https://"),
        (["--link-expiry", "604801"], "Invalid value for '--link-expiry': 604801 is not in the range 1<=x<=604800"),
    ],
)
def test_bad_link_options_stop_the_run_before_it_starts(
    tiny: Tiny, tmp_path: Path, flags: list[str], problem: str
) -> None:
    result = run(str(tiny.cross(1, 1)), "--out", str(tmp_path / "out"), *flags, *FLAGS)
    assert result.exit_code == 2
    assert problem in result.stderr
    assert not (tmp_path / "out").exists()


def latest_artifact(key: str) -> Any:
    """The data of the newest artifact with ``key``."""
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    return json.loads(artifact.data)


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"stylebatch, version \d+\.\d+\.\d+\S*\n", result.stdout)
