"""A run killed with SIGKILL at any moment leaves nothing half-written and no server; the rerun finishes the rest."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

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
from tests.nst_core.video.samples import smooth_frames, write_mp4
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


def test_sigkill_mid_clip_then_rerun(tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]) -> None:
    """Killed after frame 2 of a clip is written: the rerun renders only the frames after it, and the video has them
    all, in order."""
    frames = smooth_frames(6, (32, 24))
    write_mp4(str(tiny.root / "clip.mp4"), frames)
    _, styles = tiny.images(0, 1)
    manifest = tiny.manifest(f"content,style\nclip.mp4,{styles[0]}\n")
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW, "--image-size", "32", "--frame-iterations", "10"]
    run = start(*args, env=harness_env, cwd=tmp_path, name="mid-clip")
    try:
        wait_for(lambda: any(out.glob("frames/*/000002/done.json")) or run.proc.poll() is not None, 240, every=0.05)
    finally:
        kill(run)
    assert run.wait() == -signal.SIGKILL, f"the run ended before it was killed\n{run.stderr[-2000:]}"
    written = {p.parent.name: p.read_text() for p in out.glob("frames/*/*/done.json")}
    assert "000002" in written and len(written) < 6
    assert not list(out.glob("clip*/done.json"))

    rerun = start(*args, env=harness_env, cwd=tmp_path, name="rerun-clip")
    assert rerun.wait() == 0, rerun.stderr
    assert rerun.totals() == (1, 0, 0, 0)
    after = {p.parent.name: p.read_text() for p in out.glob("frames/*/*/done.json")}
    assert {k: v for k, v in after.items() if k in written} == written  # no finished frame rendered again
    assert sorted(after) == [f"{t:06d}" for t in range(6)]
    [video] = out.glob("clip*/result.mp4")
    with av.open(str(video)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 6
    stills = [np.asarray(Image.open(out / "frames" / video.parent.name / f"{t:06d}" / "result.png")) for t in range(6)]
    order = [min(range(6), key=lambda t, f=f: np.abs(f.astype(int) - stills[t]).mean()) for f in decoded]
    assert order == list(range(6))  # each frame of the video is the frame rendered in its place
