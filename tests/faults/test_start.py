"""Start-up: the help imports nothing heavy, and a manifest that cannot be used stops the run before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.faults.faults_helpers import start

HEAVY = ("torch", "torchvision", "prefect", "dask", "distributed", "pandas", "s3fs")


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate", "--help"], ["render-one", "--help"]])
def test_help_imports_neither_torch_nor_prefect(args: list[str]) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        from flows.cli import main
        try:
            main({args!r})
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})), file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "Usage:" in result.stdout
    assert json.loads(result.stderr.splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("missing.csv", None, "manifest {path}: not found"),
        ("header-only.csv", "content,style\n", "manifest {path} has a header but no rows"),
        (
            "no-content.csv",
            "style,iterations\na.png,3\n",
            "manifest {path}: its header has no content column (a manifest needs content and style)",
        ),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\xc1\x00", "manifest {path}: not UTF-8 text (byte 0x89 at 0)"),
    ],
)
def test_a_manifest_that_cannot_be_used_stops_the_run_before_anything_starts(
    tmp_path: Path, embedded_env: dict[str, str], name: str, text: str | bytes | None, reason: str
) -> None:
    """One line and exit 2 in about the command's start-up time: no server started, no output root created."""
    path = tmp_path / name
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    run = start("run", str(path), "--out", str(out), env=embedded_env, cwd=tmp_path)
    assert run.wait(timeout=30) == 2
    assert time.monotonic() - run.started < 10  # 1.4-2 s on a quiet 2-core machine; a server start takes 10 or more
    assert run.stderr.strip() == f"error: {reason.format(path=path)}"
    assert run.stdout == ""
    assert not out.exists()
