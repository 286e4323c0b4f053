"""A run killed with SIGKILL after a checkpoint: the rerun resumes the pair from it, not from iteration 0; SIGTERM
reaches a flow run in a process of its own (a deployment's)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.storage.checkpoints import POINTER
from tasks.storage.records import LOSSES, read_losses
from tests.faults.faults_helpers import SLOW, assert_consistent, kill, start
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs
from tests.scale.scale_helpers import REPO_ROOT
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


def test_sigterm_reaches_a_flow_run_in_its_own_process(tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]) -> None:
    """A deployment's run (the flow in its process's main thread, as Prefect's workers and ``serve`` run it): SIGTERM
    saves the running render's checkpoint, and the run ends Preempted."""
    manifest = tiny.cross(1, 1)
    out = tmp_path / "out"
    script = (
        "import sys; from flows.render_manifest import render_manifest; "
        f"state = render_manifest({str(manifest)!r}, out={str(out)!r}, return_state=True, "
        "defaults={'weights': 'random:0', 'image_size': 32, 'iterations': 100000}); "
        "print(state.type.value, state.name, state.message)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=harness_env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: any(out.glob("*/lease.json")) or proc.poll() is not None, 240, every=0.05)
        time.sleep(1)  # a few iterations
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert stdout.decode().strip() == "CRASHED Preempted preempted: 0 rendered, 1 preempted"
    assert any(out.glob(f"*/{POINTER}"))
