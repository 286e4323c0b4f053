"""A run killed with SIGKILL after a checkpoint: the rerun resumes the pair from it, not from iteration 0."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tasks.storage.checkpoints import POINTER
from tasks.storage.records import LOSSES, read_losses
from tests.faults.faults_helpers import SLOW, assert_consistent, kill, start
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.support import wait_for


def test_sigkill_after_a_checkpoint_then_the_rerun_resumes_from_it(
    tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]
) -> None:
    manifest = tiny.cross(1, 1)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW[:-1], "60", "--checkpoint-every", "0.5"]
    run = start(*args, env=harness_env, cwd=tmp_path, name="killed")
    try:
        wait_for(lambda: any(out.glob(f"*/{POINTER}")) or run.proc.poll() is not None, 240, every=0.05)
    finally:
        kill(run)
    assert run.wait() == -signal.SIGKILL, f"the run ended before it was killed\n{run.stderr[-2000:]}"
    assert_consistent(out)
    [pointer] = out.glob(f"*/{POINTER}")
    saved = json.loads(pointer.read_text())["saved"][0]["iteration"]
    assert 0 < saved < 60

    rerun = start(*args, env=harness_env, cwd=tmp_path, name="rerun")
    assert rerun.wait() == 0, rerun.stderr
    assert rerun.totals() == (1, 0, 0, 0)
    [row] = rerun.summary().pairs
    assert row.resumed_at == saved
    assert f"resumed at iteration {saved}" in rerun.stdout  # the summary's table says so
    [(name, files)] = pair_dirs(out).items()
    assert files == PAIR_FILES  # the checkpoint went with the completed folder
    losses = read_losses((out / name / LOSSES).read_bytes())
    assert [r.iteration for r in losses] == list(range(1, 61))  # no gap, no repeat
