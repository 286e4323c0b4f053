"""A manifest mixing clips and stills, through the flow: both render, as tasks of their own, with their outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.render_manifest import render_manifest
from tasks.storage.records import DONE, VIDEO
from tasks.storage.root import FRAMES
from tests.flows.helpers import FAST, Tiny, flow_run_id
from tests.flows.test_render_manifest import render_task_runs
from tests.nst_core.video.samples import smooth_frames, write_mp4

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_manifest_of_clips_and_stills_renders_both(tiny: Tiny, tmp_path: Path) -> None:
    contents, styles = tiny.images(1, 1)
    write_mp4(str(tiny.root / "clip.mp4"), smooth_frames(3, (32, 24)))
    manifest = tiny.manifest(f"content,style\nclip.mp4,{styles[0]}\n{contents[0]},{styles[0]}\n")
    out = tmp_path / "out"
    state = render_manifest(str(manifest), out=str(out), defaults=FAST | {"frame_iterations": 1}, return_state=True)
    summary = state.result(raise_on_failure=False)
    assert (summary.rendered, summary.failed) == (2, 0), [row.reason for row in summary.pairs]
    assert state.is_completed()
    clip_id = next(row.id for row in summary.pairs if row.id.startswith("clip"))
    assert (out / clip_id / VIDEO).stat().st_size > 0 and (out / clip_id / DONE).exists()
    assert len(list((out / FRAMES / clip_id).glob(f"*/{DONE}"))) == 3
    names = render_task_runs(flow_run_id(state))
    assert sorted(name.split(" ")[1] for name in names) == [
        "clip",
        "content1",
    ]  # "render clip ...", "render content1 ..."
