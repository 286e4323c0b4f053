"""The temporary Prefect server's start: a slow one is waited for, a stuck one given up, a fixed limit kept."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from flows.cli import main
from flows.temporary_server import STALL_S
from tests.faults.faults_helpers import start
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import png_header

FAST = ["--weights", "random:0", "--image-size", "32", "--iterations", "2"]


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
