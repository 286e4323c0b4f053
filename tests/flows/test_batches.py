"""Batched renders in the flow: one task per batch of one key, each pair written, marked done and resumed on its own."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.cli import main
from flows.render_manifest import render_manifest
from tasks.storage.leases import LEASE
from tasks.storage.records import DONE, RECORD, RenderRecord, read_record
from tests.flows.helpers import FAST, PAIR_FILES, Tiny, flow_run_id, pair_dirs
from tests.support import run_family

pytestmark = pytest.mark.usefixtures("prefect_api")


def run(manifest: Path, out: Path, **kwargs: Any) -> tuple[dict[str, Any], UUID]:
    state = render_manifest(str(manifest), out=str(out), defaults=FAST, return_state=True, **kwargs)
    return state.result(raise_on_failure=False), flow_run_id(state)


def record(out: Path, pair_id: str) -> RenderRecord:
    return read_record((out / pair_id / RECORD).read_bytes(), (out / pair_id / DONE).read_bytes())


def render_tasks(run_id: UUID) -> dict[str, str]:
    """The run's render task runs: name -> state (not the subflow's own task run)."""
    with get_client(sync_client=True) as client:
        runs = run_family(client, run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
    return {t.name: t.state_name for t in task_runs if t.name.startswith("render ")}


def rendered_together(out: Path, pair_ids: list[str]) -> bool:
    """Pairs of one batch share the batch's optimisation time (each render alone has its own)."""
    return len({record(out, pair_id).timings.optimise_s for pair_id in pair_ids}) == 1


def test_mixed_sizes_make_one_batch_per_size(tiny: Tiny, tmp_path: Path) -> None:
    (c1, c2), (s1, s2) = tiny.images(2, 2)
    rows = [("a", c1, s1, 32), ("b", c1, s2, 48), ("c", c2, s1, 32), ("d", c2, s2, 48), ("e", c1, s1, 48)]
    manifest = tiny.manifest("id,content,style,image_size\n" + "".join(f"{','.join(map(str, r))}\n" for r in rows))
    out = tmp_path / "out"
    summary, run_id = run(manifest, out, batch_size=8)

    assert (summary.rendered, summary.failed) == (5, 0)
    assert sorted(row.id for row in summary.pairs) == list("abcde")  # one outcome per pair
    assert render_tasks(run_id) == {"render a +1": "Completed", "render b +2": "Completed"}
    assert pair_dirs(out) == dict.fromkeys("abcde", PAIR_FILES)
    assert rendered_together(out, ["a", "c"])
    assert rendered_together(out, ["b", "d", "e"])
    assert not rendered_together(out, ["a", "b"])
    for pair_id, size in [("a", (32, 26)), ("b", (48, 38))]:
        with Image.open(out / pair_id / "result.png") as image:
            assert image.size == size


def test_batches_hold_at_most_batch_size_pairs(tiny: Tiny, tmp_path: Path) -> None:
    manifest, out = tiny.cross(2, 2), tmp_path / "out"
    summary, run_id = run(manifest, out, batch_size=3)
    rows = sorted(summary.pairs, key=lambda row: row.row)
    assert render_tasks(run_id) == {
        f"render {rows[0].label} +2": "Completed",
        f"render {rows[3].label} +0": "Completed",
    }
    assert rendered_together(out, [row.id for row in rows[:3]])


def test_a_rerun_after_a_kill_mid_batch_renders_only_the_pairs_without_a_done_record(
    tiny: Tiny, tmp_path: Path
) -> None:
    (c1, c2), (s1, s2) = tiny.images(2, 2)
    manifest = tiny.manifest(f"id,content,style\na,{c1},{s1}\nb,{c1},{s2}\nc,{c2},{s1}\nd,{c2},{s2}\n")
    out = tmp_path / "out"
    first, _ = run(manifest, out, batch_size=4)
    assert first.rendered == 4
    # as a kill mid-batch leaves it: b written but not marked done, c never written (its lease left by a dead process)
    (out / "b" / DONE).unlink()
    for path in (out / "c").iterdir():
        path.unlink()
    dead = {"owner": "killed", "host": socket.gethostname(), "pid": 2**22 + 17, "heartbeat": 0}
    (out / "c" / LEASE).write_text(json.dumps(dead))
    kept = {pair_id: (out / pair_id / DONE).read_bytes() for pair_id in "ad"}

    again, run_id = run(manifest, out, batch_size=4)
    assert {row.id: row.status for row in again.pairs} == {
        "a": "skipped",
        "b": "rendered",
        "c": "rendered",
        "d": "skipped",
    }
    assert render_tasks(run_id) == {"render b +1": "Completed"}  # the two unfinished pairs, in one batch
    assert {pair_id: (out / pair_id / DONE).read_bytes() for pair_id in "ad"} == kept
    assert pair_dirs(out) == dict.fromkeys("abcd", PAIR_FILES)
    assert rendered_together(out, ["b", "c"])


def test_run_batch_size_a_failing_pair_fails_alone(tiny: Tiny, tmp_path: Path) -> None:
    (c1, c2), (s1,) = tiny.images(2, 1)
    (tmp_path / "broken.png").write_text("not an image")
    manifest = tiny.manifest(f"id,content,style\nok1,{c1},{s1}\nbroken,broken.png,{s1}\nok2,{c2},{s1}\n")
    out = tmp_path / "out"
    flags = ["--weights", "random:0", "--image-size", "32", "--iterations", "2"]
    result = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), "--batch-size", "3", *flags])

    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("rendered 2, skipped 0, failed 1, cancelled 0 in ")
    assert f"row 3 broken: content image {tmp_path.resolve()}/broken.png: not an image Pillow can read" in (
        result.stderr.splitlines()
    )
    assert pair_dirs(out) == {"ok1": PAIR_FILES, "ok2": PAIR_FILES, "broken": {"failed.json"}}
    assert rendered_together(out, ["ok1", "ok2"])
