"""What a person sees in a terminal: live bars on a real pseudo-terminal (the run's time left, each running pair's
weighted loss terms), lines above them, little redraw traffic, a summary that fits 100 columns."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path

from tasks.runs.records import RunSummary
from tests.faults.faults_helpers import STYLEBATCH
from tests.flows.helpers import Tiny

COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # within a line
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")  # the rest: cursor moves, erasing, carriage returns
TIMES = " \N{MULTIPLICATION SIGN} "  # a pair's label: content x style


def read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end closed
            return
        if not chunk:
            return
        into.extend(chunk)


def test_a_terminal_gets_bars_and_whole_lines(tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]) -> None:
    """A 3 x 2 batch (one content missing): bars while it runs, the failures as whole lines, under 200 KB."""
    content_names, style_names = tiny.images(2, 2)  # 4 renders of ~1 s
    rows = [f"{c},{s}" for c in [*content_names, "missing.png"] for s in style_names]
    manifest = tiny.manifest("content,style\n" + "\n".join(rows) + "\n")
    flags = ["--weights", "random:0", "--image-size", "32", "--iterations", "40"]
    leader, follower = pty.openpty()
    terminal = bytearray()
    with (tmp_path / "stdout").open("wb") as stdout:
        proc = subprocess.Popen(
            [STYLEBATCH, "run", str(manifest), "--out", str(tmp_path / "out"), *flags],
            env=harness_env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=follower,
        )
    os.close(follower)
    reader = threading.Thread(target=read_all, args=(leader, terminal))
    reader.start()
    assert proc.wait(timeout=240) == 1
    reader.join(timeout=30)
    os.close(leader)

    shown = ANSI.sub("\n", COLOURS.sub("", terminal.decode(errors="replace")))
    assert len(terminal) < 200_000, f"{len(terminal)} bytes of terminal output"
    assert "━" in shown and "pairs" in shown  # the live bars were drawn
    assert re.search(rf"row \d+ content\d{TIMES}style\d ", shown)  # a bar per running pair, by its label
    # under the bars, each running pair's terms as they enter the total; a single-scale render has no levels
    assert re.search(r"\n  row \d+: losses \(weighted\): content \S+ style \S+ tv \S+ total \S+\n", shown)
    assert "level" not in shown
    missing = f"content image {tmp_path.resolve()}/missing.png: not found"
    failures = [line for line in shown.splitlines() if line.endswith(missing)]
    assert len(failures) == 2 and all(
        re.fullmatch(rf"row \d+ missing{TIMES}style\d: {re.escape(missing)}", line) for line in failures
    )
    assert "Traceback" not in shown
    # the run's time left: real once the first iteration is done (-:--:-- before), whatever has ended by then
    bars = [line for line in shown.splitlines() if re.match(r"pairs |  row \d+ ", line)]
    stepped = next(n for n, line in enumerate(bars) if re.match(r"  row .* [1-9]\d*/40 ", line))
    left = [line.split()[-1] for line in bars[stepped:] if line.startswith("pairs ")]
    assert left and all(re.fullmatch(r"\d+:\d\d:\d\d", time_left) for time_left in left), bars
    summary = (tmp_path / "stdout").read_text()
    assert "\x1b" not in summary  # the summary on stdout is plain text
    assert all(len(line) <= 100 for line in summary.splitlines()[:-3]), summary  # the table fits 100 columns
    assert summary.splitlines()[-1].startswith("rendered 4, skipped 0, failed 2, cancelled 0 in ")
    written = RunSummary.model_validate_json(Path(summary.splitlines()[-2].removeprefix("summary: ")).read_text())
    assert (written.rendered, written.failed) == (4, 2) and written.out == str(tmp_path / "out")
