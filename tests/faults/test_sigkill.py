"""A run killed with SIGKILL at any moment leaves nothing half-written and no server; the rerun finishes the rest."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.faults.faults_helpers import (
    SLOW,
    Run,
    assert_consistent,
    assert_no_stray_server,
    kill,
    markers,
    start,
    temporary_servers,
)
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import wait_for


def _has_server(run: Run) -> bool:
    return any(parent == run.proc.pid for _, parent in temporary_servers())


def test_sigkill_at_any_moment_then_rerun(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str], harness_env: dict[str, str]
) -> None:
    """Killed while its server starts, mid-render and after a pair: the rerun finishes only what is left.

    The run killed while it starts has its own server (which must not outlive it); the others use the
    session's server, to keep the suite short.
    """
    manifest = tiny.cross(1, 4)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW]
    moments = {
        "starting": (embedded_env, lambda run: _has_server(run) and time.monotonic() - run.started > 2),
        "mid-render": (harness_env, lambda run: any(out.glob("*/lease.json"))),
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
