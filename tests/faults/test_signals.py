"""Signals: a run killed at any moment leaves nothing half-written and no server; Ctrl-C ends it in seconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flows.signals import SAME_STOP_S
from tests.faults.faults_helpers import SLOW, Run, assert_no_stray_server, kill, start, temporary_servers
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import wait_for


def _has_server(run: Run) -> bool:
    return any(parent == run.proc.pid for _, parent in temporary_servers())


def markers(out: Path) -> dict[str, str]:
    """pair id -> its done.json as written (a pair rendered twice would change it)."""
    return {p.parent.name: p.read_text() for p in out.glob("*/done.json")}


def assert_consistent(out: Path) -> None:
    """No result without its marker, and nothing but staging folders hidden."""
    for name, files in pair_dirs(out).items():
        assert "result.png" not in files or files == PAIR_FILES, (name, files)
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
    assert all(name.endswith((".tmp", ".tmp.old")) for name in hidden), hidden


def test_sigkill_at_any_moment_then_rerun(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str], harness_env: dict[str, str]
) -> None:
    """Killed while its server starts, mid-render and after a pair: the rerun finishes only what is left.

    The runs killed early start their own server (which must not outlive them); the others use the
    session's server, to keep the suite short.
    """
    manifest = tiny.cross(1, 4)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW]
    moments = {
        "starting": (embedded_env, lambda run: _has_server(run) and time.monotonic() - run.started > 2),
        "mid-render": (embedded_env, lambda run: any(out.glob("*/lease.json"))),
        "after a pair": (harness_env, lambda run: any(out.glob("*/done.json"))),
    }
    seen: dict[str, str] = {}
    for moment, (env, reached) in moments.items():
        run = start(*args, env=env, cwd=tmp_path, name=moment.replace(" ", "-"))
        try:
            wait_for(lambda run=run, reached=reached: reached(run) or run.proc.poll() is not None, 240, every=0.05)
        finally:
            kill(run)
        assert run.wait() == -signal.SIGKILL, f"{moment}: the run ended before it was killed\n{run.stderr[-2000:]}"
        assert_no_stray_server()
        assert_consistent(out)
        done = markers(out)
        assert {k: v for k, v in done.items() if k in seen} == seen, f"{moment}: a finished pair was rendered again"
        seen = done
    assert 1 <= len(seen) < 4

    rerun = start(*args, env=harness_env, cwd=tmp_path, name="rerun")
    assert rerun.wait() == 0, rerun.stderr
    assert rerun.totals() == (4 - len(seen), len(seen), 0, 0)
    assert rerun.pairs("skipped") == set(seen)
    assert rerun.pairs("rendered").isdisjoint(seen)  # none rendered twice
    assert {k: v for k, v in markers(out).items() if k in seen} == seen
    assert all(files == PAIR_FILES for files in pair_dirs(out).values())
    assert len(pair_dirs(out)) == 4


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
    new pair starts, the summary is printed, exit 130, no lease left. With the session's server (the next test
    covers a run's own server on a second Ctrl-C)."""
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
    assert code == 130, run.stderr
    assert run.totals() == (0, 0, 0, 4)
    assert run.stderr.count("stopping: running renders stop at their next iteration") == 1
    assert "Traceback" not in run.stderr + run.stdout
    assert_consistent(out)
    assert pair_dirs(out) == {}  # nothing started is left behind: no result, no lease
    assert len(run.pairs("cancelled")) == 4


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
