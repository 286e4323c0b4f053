"""What a person sees in a terminal: live bars on a real pseudo-terminal, lines above them, little redraw traffic."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path

from tests.faults.faults_helpers import STYLEBATCH
from tests.flows.helpers import Tiny

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


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
    content_names, style_names = tiny.images(2, 2)  # 4 renders of ~0.5 s
    rows = [f"{c},{s}" for c in [*content_names, "missing.png"] for s in style_names]
    manifest = tiny.manifest("content,style\n" + "\n".join(rows) + "\n")
    flags = ["--weights", "random:0", "--image-size", "32", "--iterations", "20"]
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

    shown = ANSI.sub("\n", terminal.decode(errors="replace"))
    assert len(terminal) < 200_000, f"{len(terminal)} bytes of terminal output"
    assert "━" in shown and "pairs" in shown  # the live bars were drawn
    assert re.search(r"row \d+ content\d__style\d-[0-9a-f]{8}", shown)  # a bar per running pair
    missing = f"content image {tmp_path.resolve()}/missing.png: not found"
    failures = [line for line in shown.splitlines() if line.endswith(missing)]
    assert len(failures) == 2 and all(
        re.fullmatch(rf"row \d+ missing__style\d-[0-9a-f]{{8}}: {re.escape(missing)}", line) for line in failures
    )
    assert "Traceback" not in shown
    summary = (tmp_path / "stdout").read_text()
    assert "\x1b" not in summary  # the summary on stdout is plain text
    assert summary.splitlines()[-1].startswith("rendered 4, skipped 0, failed 2, cancelled 0 in ")
