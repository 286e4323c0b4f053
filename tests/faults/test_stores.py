"""Stores: an S3 endpoint that drops connections for a while, and an output root that is read-only."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tasks.storage.root import RUNS
from tests.faults.faults_helpers import SLOW, DroppingProxy, start
from tests.flows.helpers import PAIR_FILES, Tiny
from tests.support import Bucket, wait_for


def test_an_s3_outage_longer_than_a_retry_delay_is_ridden_out(
    tiny: Tiny, tmp_path: Path, s3: Bucket, moto_endpoint: str, harness_env: dict[str, str]
) -> None:
    """Inputs, manifest and outputs on S3 behind a proxy that drops every connection for 6 s mid-run."""
    content_names, style_names = tiny.images(1, 3)
    for name in [*content_names, *style_names]:
        s3.put(f"in/{name}", (tiny.root / name).read_bytes())
    rows = [f"{c},{s}" for c in content_names for s in style_names]
    manifest = s3.put("in/m.csv", ("content,style\n" + "\n".join(rows) + "\n").encode())
    host, port = moto_endpoint.removeprefix("http://").split(":")
    proxy = DroppingProxy((host, int(port)))
    env = harness_env | {"AWS_ACCESS_KEY_ID": "foo", "AWS_SECRET_ACCESS_KEY": "foo", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        run = start(
            "run", manifest, "--out", f"{s3.uri}/out", "--endpoint-url", proxy.url, *SLOW, env=env, cwd=tmp_path
        )
        wait_for(lambda: any(k.endswith("done.json") for k in s3.keys("out")) or run.proc.poll() is not None, 240)
        outage = threading.Thread(target=proxy.drop, args=(6,))
        outage.start()
        code = run.wait()
        outage.join()
    finally:
        proxy.close()
    assert code == 0, run.stderr
    assert run.totals() == (3, 0, 0, 0)
    assert proxy.dropped > 0  # the outage hit the run: botocore's retries and ours (tasks.storage.retries) rode it out
    pair_keys = {key for key in s3.keys("out") if not key.startswith(("gallery/", f"{RUNS}/"))}
    assert pair_keys == {f"{pair}/{name}" for pair in {k.split("/")[0] for k in pair_keys} for name in PAIR_FILES}
    assert len(pair_keys) == 3 * len(PAIR_FILES)
    [summary_key] = [key for key in s3.keys("out") if key.startswith(f"{RUNS}/")]
    assert f"summary: {s3.uri}/out/{summary_key}" in run.stdout.splitlines()
    # only the run's own lines: no library's messages about the dropped connections (asyncio's unretrieved
    # task exceptions, an aiohttp future's repr) among them
    noise = ("Task exception was never retrieved", "future: <", "ClientConnectionResetError", "closing transport")
    assert not [line for line in run.stderr.splitlines() if any(text in line for text in noise)], run.stderr


def test_retry_for_bounds_an_outage_and_says_so_while_it_waits(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    """``--retry-for 25`` with an S3 output root whose endpoint drops every connection: the run gives up within a
    few seconds of the budget, tries included, printing a line at least every 30 s, before any server starts."""
    manifest = tiny.cross(1, 1)
    proxy = DroppingProxy(("127.0.0.1", 9))  # never reached: it drops every connection
    proxy.dropping = True
    env = embedded_env | {"AWS_ACCESS_KEY_ID": "foo", "AWS_SECRET_ACCESS_KEY": "foo", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        args = ["run", str(manifest), "--out", "s3://renders/out", "--endpoint-url", proxy.url, "--retry-for", "25"]
        run = start(*args, *SLOW, env=env, cwd=tmp_path)
        lines = run.stderr_lines_as_they_come(timeout=120)
    finally:
        proxy.close()
    assert run.proc.returncode == 2
    *retries, (ended, last) = lines
    assert re.fullmatch(r"error: output s3://renders/out: \S.* \(gave up after \d+ tries in 2[5-9] s\)", last), last
    assert len(retries) >= 3 and all("trying again in" in line for _, line in retries)
    started = retries[0][0] - 1.0  # the first line follows the first try (a second at most when refused)
    assert ended - started < 25 + 5, lines
    times = [started] + [t for t, _ in lines]
    assert max(b - a for a, b in itertools.pairwise(times)) < 30
    assert run.stdout == ""


def unshare_works(tmp_path: Path) -> bool:
    """Whether this machine lets a process mount a read-only tmpfs in namespaces of its own."""
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount -t tmpfs -o ro tmpfs {probe} && ! touch {probe}/x 2>/dev/null"
    return subprocess.run(["unshare", "-r", "-m", "sh", "-c", script], capture_output=True).returncode == 0


def test_a_read_only_output_root_is_one_error_and_nothing_runs(
    tiny: Tiny, tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    if not unshare_works(tmp_path):
        pytest.skip("this machine allows no private read-only mount (unshare -r -m)")
    manifest = tiny.cross(1, 2)
    out = tmp_path / "out"
    out.mkdir()
    script = f'mount -t tmpfs -o ro tmpfs {out} && exec "$@"'
    args = ["unshare", "-r", "-m", "sh", "-c", script, "sh", str(Path(shutil.which("stylebatch") or "")), "run"]
    result = subprocess.run(
        [*args, str(manifest), "--out", str(out), *SLOW],
        env=embedded_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: output {out}: read-only file system"
    assert result.stdout == ""
    assert list(out.iterdir()) == []
