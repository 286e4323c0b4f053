"""``stylebatch run``: in-process with click's CliRunner (summary, exit codes, setting flags), and the real console
script in a subprocess killed with SIGKILL mid-run.

The subprocess reports to the session's Prefect test server (``PREFECT_API_URL`` of the harness), so it starts no
server of its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.render_manifest import progress_listeners, render_manifest
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs, subprocess_env

pytestmark = pytest.mark.usefixtures("prefect_api")

STYLEBATCH = Path(sys.executable).parent / "stylebatch"
FLAGS = ["--weights", "random:0", "--image-size", "32", "--iterations", "2"]
# Slow enough that a pair takes ~1.5 s on a 2-core CPU (48 px, 30 L-BFGS iterations), so a kill lands mid-batch.
SLOW = {"weights": "random:0", "image_size": 48, "iterations": 30}
SUMMARY = re.compile(r"rendered(\d+),skipped(\d+),failed(\d+)in([\d.]+)s;outputsin")
STAGING = re.compile(r"^\.(.+)\.[0-9a-f]{32}\.tmp$")


def summary_line(text: str) -> tuple[int, int, int, float, str]:
    """The CLI's summary line, its last output, read without whitespace (rich wraps long lines)."""
    flat = "".join(text.split())
    *_, match = [None, *SUMMARY.finditer(flat)]
    assert match, text
    return int(match[1]), int(match[2]), int(match[3]), float(match[4]), flat[match.end() :]


def stylebatch(*args: str, cwd: Path, api_url: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(STYLEBATCH), *args], cwd=cwd, env=subprocess_env(api_url, cwd / "prefect-home"), **kwargs
    )


@pytest.fixture
def listeners() -> Iterator[None]:
    """The CLI adds a progress listener to the flow module on every call and never removes it: restore the list."""
    saved = list(progress_listeners)
    yield
    progress_listeners[:] = saved


def test_run_exits_1_when_a_row_fails(tiny: Tiny, tmp_path: Path, listeners: None) -> None:
    (c1,), (s1,) = tiny.images(1, 1)
    manifest = tiny.manifest(f"id,content,style,iterations\nok,{c1},{s1},\nlost,nowhere.png,{s1},\nbad,{c1},{s1},x\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), *FLAGS])

    assert result.exit_code == 1, result.output
    assert summary_line(result.stderr)[:3] == (1, 0, 2)
    flat = "".join(result.stderr.split())
    assert "failedrow3lost:contentimagenotfound" in flat
    assert "failedrow4:columniterations" in flat
    assert pair_dirs(out) == {"ok": PAIR_FILES, "lost": {"failed.json"}}
    again = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), *FLAGS])
    assert again.exit_code == 1
    assert summary_line(again.stderr)[:3] == (0, 1, 2)


def test_run_prints_summary_and_uses_flags_as_defaults(tiny: Tiny, tmp_path: Path, listeners: None) -> None:
    (c1, c2), (s1, s2) = tiny.images(2, 2)
    manifest = tiny.manifest(f"id,content,style,iterations\na,{c1},{s1},\nb,{c1},{s2},\nc,{c2},{s1},3\nd,{c2},{s2},\n")
    out = tmp_path / "out"
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), *FLAGS])
    wall_s = time.perf_counter() - start

    assert result.exit_code == 0, result.output
    rendered, skipped, failed, total_s, where = summary_line(result.stderr)
    assert (rendered, skipped, failed, where) == (4, 0, 0, str(out))
    assert "failed row" not in result.stderr
    assert 0 < total_s <= wall_s + 0.1  # the summary's time is the flow's own
    assert pair_dirs(out) == {pair_id: PAIR_FILES for pair_id in "abcd"}
    settings = {p: json.loads((out / p / "settings.json").read_text())["settings"] for p in "abcd"}
    assert {p: s["iterations"] for p, s in settings.items()} == {"a": 2, "b": 2, "c": 3, "d": 2}
    assert {s["image_size"] for s in settings.values()} == {32}
    assert {s["weights"] for s in settings.values()} == {"random:0"}


def wait_for_marker(out: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.glob("*/done.json")):
        assert proc.poll() is None, "stylebatch ended before the first pair finished"
        assert time.monotonic() < deadline, "no pair finished in time"
        time.sleep(0.05)


def test_sigkill_mid_run_then_rerun_renders_only_unfinished_pairs(tiny: Tiny, tmp_path: Path, prefect_api: str) -> None:
    manifest = tiny.cross(2, 2)
    out = tmp_path / "out"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SLOW.items()]
    log = (tmp_path / "stylebatch.log").open("wb")
    proc = stylebatch(
        "run",
        str(manifest),
        "--out",
        str(out),
        *flags,
        cwd=tmp_path,
        api_url=prefect_api,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_marker(out, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL

    folders = pair_dirs(out)
    torn = {name: files for name, files in folders.items() if "result.png" in files and "done.json" not in files}
    assert torn == {}
    finished = {name for name, files in folders.items() if "done.json" in files}
    assert all(folders[name] == PAIR_FILES for name in finished)
    assert 1 <= len(finished) < 4
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(STAGING.match(name) for name in hidden), hidden  # a kill may leave a staging folder, never a pair

    summary = render_manifest(str(manifest), str(out), SLOW)
    assert (summary["rendered"], summary["skipped"], summary["failed"]) == (4 - len(finished), len(finished), 0)
    assert {row["id"] for row in summary["pairs"] if row["status"] == "skipped"} == finished
    assert all(files == PAIR_FILES for files in pair_dirs(out).values())
    assert len(pair_dirs(out)) == 4
