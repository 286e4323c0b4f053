"""Two ``stylebatch run`` processes on one manifest and output root render each pair once between them."""

from __future__ import annotations

from pathlib import Path

from tests.faults.faults_helpers import SLOW, start
from tests.flows.helpers import PAIR_FILES, Tiny, pair_dirs


def test_two_runs_share_the_work(tiny: Tiny, tmp_path: Path, harness_env: dict[str, str]) -> None:
    """Both report to the session's Prefect server (two embedded servers on one 2-core machine cost 20 s more)."""
    manifest = tiny.cross(2, 2)
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), *SLOW]
    first = start(*args, env=harness_env, cwd=tmp_path, name="first")
    second = start(*args, env=harness_env, cwd=tmp_path, name="second")
    assert first.wait() == 0, first.stderr
    assert second.wait() == 0, second.stderr

    rendered = first.pairs("rendered"), second.pairs("rendered")
    assert rendered[0].isdisjoint(rendered[1])  # no pair rendered twice
    assert rendered[0] | rendered[1] == set(pair_dirs(out))
    assert len(pair_dirs(out)) == 4
    assert all(files == PAIR_FILES for files in pair_dirs(out).values())
    for run, other in ((first, rendered[1]), (second, rendered[0])):
        assert run.pairs("skipped") == other  # what the other run rendered, this one skipped
        assert sum(run.totals()) == 4
