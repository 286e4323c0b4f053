"""Leases: a live holder is never taken over, a stale one by one run only, a claim's lost try is its own (local
disk and S3)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tasks.storage import leases
from tasks.storage.leases import HEARTBEAT_S, STALE_S, Holder, Lease, acquire
from tasks.storage.records import LEASE
from tasks.storage.root import OutputRoot

if TYPE_CHECKING:  # fixtures' types (tests/conftest.py)
    from tests.support import Bucket


def holder(heartbeat_age_s: float, host: str = "render-box-7") -> dict[str, object]:
    return {"owner": "other", "host": host, "pid": 4242, "heartbeat": time.time() - heartbeat_age_s}


@pytest.mark.parametrize("age_s", [HEARTBEAT_S + 1, 2 * HEARTBEAT_S, STALE_S - 10])
def test_a_live_lease_on_another_host_is_never_taken_over(tmp_path: Path, age_s: float) -> None:
    """A heartbeat older than the renewal interval but younger than the stale limit: a slow renewal, not a dead
    run (its process cannot be checked from here)."""
    folder = tmp_path / "out" / "pair"
    folder.mkdir(parents=True)
    (folder / LEASE).write_text(json.dumps(holder(age_s)))
    found = acquire(OutputRoot.open(str(tmp_path / "out")), "pair")
    assert isinstance(found, Holder) and (found.host, found.pid) == ("render-box-7", 4242)
    assert json.loads((folder / LEASE).read_text())["owner"] == "other"


def test_two_runs_taking_over_one_stale_lease_on_s3_one_wins(s3: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runs read the stale lease; the first takes it over (its ETag changes); the second's takeover is
    conditional on the ETag it read, so it fails, and it sees the first as the holder."""
    root = OutputRoot.open(f"{s3.uri}/out")
    s3.put(f"out/pair/{LEASE}", json.dumps(holder(STALE_S + 60)).encode())
    stale = leases._read(root.fs, root.pair("pair", LEASE))  # what the second run read before the first wrote
    first = acquire(root, "pair")
    assert isinstance(first, Lease)
    reads = iter([stale])
    real_read = leases._read
    monkeypatch.setattr(leases, "_read", lambda fs, path: next(reads, None) or real_read(fs, path))
    try:
        second = acquire(root, "pair")
        assert isinstance(second, Holder), "both runs took the lease over"
        assert second.owner == first.holder.owner
        assert json.loads(s3.get(f"out/pair/{LEASE}"))["owner"] == first.holder.owner
    finally:
        first.release()
    assert s3.keys("out/pair") == set()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_claim_tried_again_finds_the_lease_its_lost_try_wrote(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    """A dropped connection after the store took the lease: the claim's next try (same owner) takes it as its own,
    and it is not reported as held by another run; any other claim still finds it held."""
    lost = {"owner": "claim-1", "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()}
    if where == "local":
        root = OutputRoot.open(str(tmp_path / "out"))
        (tmp_path / "out" / "pair").mkdir(parents=True)
        (tmp_path / "out" / "pair" / LEASE).write_text(json.dumps(lost))
    else:
        bucket: Bucket = request.getfixturevalue("s3")
        root = OutputRoot.open(f"{bucket.uri}/out")
        bucket.put(f"out/pair/{LEASE}", json.dumps(lost).encode())
    again = acquire(root, "pair", owner="claim-1")
    try:
        assert isinstance(again, Lease)
        other = acquire(root, "pair")
        assert isinstance(other, Holder) and other.owner == "claim-1"
    finally:
        again.release()
    assert not root.fs.exists(root.pair("pair", LEASE))
