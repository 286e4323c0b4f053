"""Stop requests: one Ctrl-C or SIGTERM, however it arrives, ends the run gracefully in seconds; a second quits."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flows.signals import SAME_STOP_S
from tests.faults.faults_helpers import SLOW, Run, assert_consistent, kill, start
from tests.flows.helpers import Tiny, pair_dirs
from tests.support import wait_for


def wait_for_render(run: Run, out: Path) -> None:
    wait_for(lambda: any(out.glob("*/lease.json")) or run.proc.poll() is not None, 240, every=0.05, what="a render")
    assert run.proc.poll() is None, run.stderr


STOPS = {  # how a stop request reaches a run: (through uv run, from a terminal, what is sent)
    "terminal": (True, True, "Ctrl-C typed in the terminal: SIGINT to its foreground process group"),
    "script": (True, False, "kill -INT -- -PGID: SIGINT to the group, which uv forwards to stylebatch as well"),
    "supervisor": (True, False, "SIGTERM to the whole group (systemd's default), and uv's forwarded copy"),
    "direct": (False, False, "SIGINT to stylebatch itself"),
}


def send_stop(run: Run, how: str) -> None:
    if how == "terminal":
        run.ctrl_c()
    elif how in ("script", "supervisor"):
        os.killpg(run.proc.pid, signal.SIGINT if how == "script" else signal.SIGTERM)
    else:
        kill(run, signal.SIGINT)


@pytest.mark.parametrize("how", list(STOPS))
def test_one_stop_request_stops_the_run_gracefully_however_it_arrives(
    tiny: Tiny, tmp_path: Path, harness_env: dict[str, str], how: str
) -> None:
    """One user action counts once, through ``uv run`` too: running renders stop at their next iteration, no
    new pair starts, the summary is printed, exit 130, no lease left. SIGTERM is a preemption notice: the running
    render saves its checkpoint first, and the run exits 75 with its pairs preempted. With the session's server
    (the next test covers a run's own server on a second Ctrl-C)."""
    uv, terminal, _ = STOPS[how]
    manifest = tiny.cross(2, 2)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW[:-1], "100000"]
    run = start(*args, env=harness_env, cwd=tmp_path, uv=uv, terminal=terminal)
    wait_for_render(run, out)
    stopped = time.monotonic()
    send_stop(run, how)
    code = run.wait()
    assert time.monotonic() - stopped < 15
    preempted = how == "supervisor"
    assert code == (75 if preempted else 130), run.stderr
    said = "preempted (SIGTERM): running renders save a checkpoint and" if preempted else "stopping: running renders"
    assert run.stderr.count(f"{said} stop at their next iteration") == 1
    assert "Traceback" not in run.stderr + run.stdout
    assert_consistent(out)
    summary = run.summary()
    assert (summary.rendered, summary.cancelled, summary.preempted) == ((0, 0, 4) if preempted else (0, 4, 0))
    # Nothing started is left behind (no result, no lease), but for the preempted render's checkpoint.
    assert list(pair_dirs(out).values()) == ([{"checkpoint"}] if preempted else [])


def test_a_second_ctrl_c_exits_at_once_and_releases_its_leases(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    """A second Ctrl-C (here SIGTERM) counts once the first has had its ``SAME_STOP_S``: the run exits at once,
    its own server stops, and no lease is left to keep the next run off its pairs."""
    manifest = tiny.cross(1, 1)
    out = tmp_path / "out"
    # At 384 px the render's set-up and first iteration take seconds: the first stop is still pending
    # (renders stop at an iteration) when the second comes.
    args = ["run", str(manifest), "--out", str(out), "--weights", "random:0", "--image-size", "384"]
    run = start(*args, env=embedded_env, cwd=tmp_path)
    wait_for_render(run, out)
    kill(run, signal.SIGINT)
    time.sleep(SAME_STOP_S + 0.5)
    second = time.monotonic()
    kill(run, signal.SIGTERM)  # SIGTERM counts as the second
    assert run.wait(timeout=10) == 130
    assert time.monotonic() - second < 6
    assert run.stdout == ""  # no summary: it quit at once
    assert "Traceback" not in run.stderr
    assert not list(out.glob("*/lease.json"))
