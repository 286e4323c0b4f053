"""Start-up: the CLI's help imports nothing heavy, and a slow temporary server still gets its run going."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.temporary_server import STALL_S
from tests.faults.faults_helpers import start
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import png_header

FAST = ["--weights", "random:0", "--image-size", "32", "--iterations", "2"]
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


SLOW_SERVER = """
import sys, time
if "flows.temporary_server" in sys.orig_argv:
    time.sleep(16)  # with the server's own start (5-10 s), over Prefect's own 20 s allowance
"""


def test_a_slow_server_start_and_a_decompression_bomb_do_not_stop_the_run(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    """Embedded mode on a machine so busy that the server takes over 20 s to start: the run waits, says how long
    it has been waiting, and renders.

    One row's style is a decompression bomb (its header declares 400 Mpx): that row fails with the reason,
    in ``validate``, ``run`` and ``render-one`` alike; the other rows render and the gallery builds.
    """
    (c1, c2), (s1,) = tiny.images(2, 1)
    (tmp_path / "bomb.png").write_bytes(png_header(20_000, 20_000))
    manifest = tiny.manifest(f"id,content,style\na,{c1},{s1}\nbomb,{c1},bomb.png\nb,{c2},{s1}\n")
    reason = f"style image {tmp_path.resolve()}/bomb.png: 20000x20000 px (400.0 Mpx) is over the 64 Mpx limit"

    validate = CliRunner().invoke(main, ["validate", str(manifest), *FAST])
    assert validate.exit_code == 1
    assert validate.stdout == f"row 3, column style: {reason} (setting max_pixels)\n"

    one = CliRunner().invoke(main, ["render-one", str(tmp_path / c1), str(tmp_path / "bomb.png"), "-o", "x.png", *FAST])
    assert one.exit_code == 2
    assert one.stderr.strip().splitlines()[-1] == f"error: {reason} (setting max_pixels)"

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_SERVER)
    out = tmp_path / "out"
    run = start(
        "run", str(manifest), "--out", str(out), *FAST, env=embedded_env | {"PYTHONPATH": str(site)}, cwd=tmp_path
    )
    assert run.wait() == 1, run.stderr
    assert run.totals() == (2, 0, 1, 0)
    assert re.search(r"^waiting for Prefect's temporary server to start \(\d+ s so far\)$", run.stderr, re.MULTILINE)
    assert f"row 3 bomb: {reason} (setting max_pixels)" in run.stderr.splitlines()
    assert "Traceback" not in run.stderr
    assert pair_dirs(out) == {"a": PAIR_FILES, "b": PAIR_FILES, "bomb": {"failed.json"}}
    assert (out / "gallery" / "index.html").is_file()
    gallery = CliRunner().invoke(main, ["gallery", str(out), "--manifest", str(manifest), *FAST])
    assert gallery.exit_code == 0, gallery.output
    assert "3 pairs" in gallery.stderr


def test_a_server_that_cannot_start_in_time_is_one_line(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    """Prefect's own setting, when set, is the allowance; past it: one line naming it and the alternative, exit 2."""
    manifest = tiny.cross(1, 1)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_SERVER)
    env = embedded_env | {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "5", "PYTHONPATH": str(site)}
    run = start("run", str(manifest), "--out", str(tmp_path / "out"), *FAST, env=env, cwd=tmp_path)
    assert run.wait() == 2
    *waiting, last = run.stderr.strip().splitlines()  # imports and server together take over 10 s: a line or two
    assert all(line.startswith("waiting for Prefect's temporary server to start (") for line in waiting)
    assert last == (
        "error: Prefect's temporary server did not answer within 5 s (raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); or start one with `prefect server start` and set "
        "PREFECT_API_URL"
    )
    assert run.stdout == ""
    assert not (tmp_path / "out" / "gallery").exists()


STUCK_SERVER = """
import sys, time
if "flows.temporary_server" in sys.orig_argv:
    time.sleep(10_000)  # alive, and doing nothing
"""


def test_a_server_that_stops_working_while_starting_is_given_up(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    """The wait adapts: a server that does nothing (no CPU time) for ``STALL_S`` is given up with one line, well
    before a fixed allowance would end; one that works is waited for (the slow-start test above)."""
    manifest = tiny.cross(1, 1)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STUCK_SERVER)
    run = start(
        "run",
        str(manifest),
        "--out",
        str(tmp_path / "out"),
        *FAST,
        env=embedded_env | {"PYTHONPATH": str(site)},
        cwd=tmp_path,
    )
    assert run.wait(timeout=STALL_S + 60) == 2
    *waiting, last = run.stderr.strip().splitlines()
    assert re.fullmatch(
        rf"error: Prefect's temporary server stopped working while starting \(no CPU time in {STALL_S} s, \d+ s after "
        r"its start\); or start one with `prefect server start` and set PREFECT_API_URL",
        last,
    ), last
    assert waiting and all(line.startswith("waiting for Prefect's temporary server to start (") for line in waiting)
    assert run.stdout == ""


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
