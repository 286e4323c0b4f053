"""Leases on pair folders: two runs on one output root render each pair once between them.

``<out>/<pair id>/lease.json`` names the run rendering the pair (owner, host, pid, heartbeat). It is
created exclusively: on a local disk with ``O_EXCL``, on S3 with a conditional put (``If-None-Match``).
Its holder renews the heartbeat every ``HEARTBEAT_S`` from a thread. A lease is stale when its
heartbeat is older than ``STALE_S``, or at once when its process is gone (same host): another run
takes it over, and only one can (a takeover token created with ``O_EXCL`` on a local disk; a put
conditional on the stale lease's ETag on S3). Other stores get a best-effort check-then-put.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from nst_core.errors import StorageError
from nst_core.io_errors import storage_error
from tasks.storage.records import LEASE
from tasks.storage.root import OutputRoot, write_file

__all__ = ["HEARTBEAT_S", "STALE_S", "Holder", "Lease", "acquire", "release_all"]

HEARTBEAT_S = 30.0
STALE_S = 300.0
log = logging.getLogger(__name__)
_held: set[Lease] = set()  # this process's leases, for release_all
_held_lock = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, and when it last said so."""

    owner: str
    host: str
    pid: int
    heartbeat: float  # seconds since the epoch, the holder's clock

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"

    def stale(self) -> bool:
        if time.time() - self.heartbeat > STALE_S:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


class Lease:
    """A lease this process holds on a pair folder; renewed from a thread until released."""

    def __init__(self, fs: Any, path: str, holder: Holder, etag: str | None):
        self.fs, self.path, self.holder, self.etag = fs, path, holder, etag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease {path}", daemon=True)
        self._thread.start()
        with _held_lock:
            _held.add(self)

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours (a finished local pair's is gone already).

        Raises:
            StorageError: the store could not be reached (callers may try again: a lease left behind only keeps
                other runs off the pair until it is stale).
        """
        with _held_lock:
            _held.discard(self)
        self._stop.set()
        self._thread.join()
        try:
            current = _read(self.fs, self.path)
            if current is not None and current[0].owner == self.holder.owner:
                self.fs.rm_file(self.path)
            if isinstance(self.fs, LocalFileSystem):
                with contextlib.suppress(OSError):  # a pair that left nothing behind leaves no folder either
                    os.rmdir(os.path.dirname(self.path))
        except Exception as exc:
            raise storage_error(exc, "lease", self.path) from exc

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            holder = Holder(self.holder.owner, self.holder.host, self.holder.pid, time.time())
            try:
                self.etag = _put(self.fs, self.path, holder, match=self.etag or "")
            except Exception as exc:
                log.warning("could not renew %s: %s", self.path, storage_error(exc, "lease", self.path).cause)


def release_all(timeout_s: float) -> None:
    """Release every lease this process holds, together, waiting at most ``timeout_s`` for the store (a run
    about to exit at once: its leases would otherwise keep other runs off its pairs until they are stale)."""
    with _held_lock:
        leases = list(_held)
    threads = [threading.Thread(target=_release_once, args=(lease,), name="lease release") for lease in leases]
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _release_once(lease: Lease) -> None:
    try:
        lease.release()
    except StorageError as exc:
        log.warning("could not release %s: %s", lease.path, exc.cause)


def acquire(root: OutputRoot, pair_id: str, owner: str | None = None) -> Lease | Holder:
    """Take the lease on a pair's folder: our ``Lease``, or the live ``Holder`` of it. Every try of one claim
    passes the same ``owner``: a try whose write reached the store but whose answer was lost (a dropped
    connection) leaves a lease that the next try finds to be its own.

    Raises:
        StorageError: the store could not be reached or written.
    """
    fs, path = root.fs, root.pair(pair_id, LEASE)
    mine = Holder(owner or uuid.uuid4().hex, socket.gethostname(), os.getpid(), time.time())
    try:
        fs.makedirs(root.pair(pair_id), exist_ok=True)
        current = _read(fs, path)
        if current is None:
            return Lease(fs, path, mine, _put(fs, path, mine, match=None))
        holder, etag = current
        if holder.owner == mine.owner:
            return Lease(fs, path, mine, etag)
        if not holder.stale():
            return holder
        if root.local:  # only one run takes over this stale lease
            write_file(fs, f"{path}.takeover-{holder.owner or int(holder.heartbeat)}", b"", exclusive=True)
        log.info("taking over the stale lease of %s on %s", holder, root.pair_uri(pair_id))
        return Lease(fs, path, mine, _put(fs, path, mine, match=etag or ""))
    except FileExistsError:  # another run was quicker, or this claim's lost try
        current = _read(fs, path)
        if current is not None and current[0].owner == mine.owner:
            return Lease(fs, path, mine, current[1])
        return current[0] if current is not None else Holder("", "another run", 0, time.time())
    except Exception as exc:
        raise storage_error(exc, "output", root.pair_uri(pair_id)) from exc


def _read(fs: Any, path: str) -> tuple[Holder, str | None] | None:
    """The lease at ``path`` and its ETag (None on a local disk), or None if there is none."""
    try:
        etag = None if isinstance(fs, LocalFileSystem) else fs.info(path).get("ETag")
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(data)), etag
    except (ValueError, TypeError):  # being written, or not ours: held, as of its file's time
        return Holder("", "unknown", 0, fs.modified(path).timestamp()), etag


def _put(fs: Any, path: str, holder: Holder, match: str | None) -> str | None:
    """Write the lease: create it (``match`` None), or replace the version ``match`` ("" for any); its ETag."""
    data = json.dumps(asdict(holder)).encode()
    return write_file(fs, path, data, exclusive=match is None, if_match=match or None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
