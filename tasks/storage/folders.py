"""Per-pair output folders on local disk or any fsspec store (S3 ...), written atomically.

What a folder holds is ``tasks.storage.records``'s business; this module only writes and reads it. The
files of a finished pair arrive together, the completion record last: a folder without it is
unfinished and is rendered again. On a local disk all files are staged in a hidden folder and
renamed into place together, so a result never exists without its completion record; on an object
store each file is one atomic PUT and the completion record goes last. Every error is a
``StorageError`` naming the output and the cause; callers retry the transient ones (``tasks.storage.retries``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from nst_core.io_errors import storage_error
from tasks.storage.records import DONE, FAILED, LEASE, FailureRecord, RecordError, failure_file, read_completion
from tasks.storage.root import OutputRoot, write_file

__all__ = ["finished", "write_failure", "write_pair"]

T = TypeVar("T")


def _as_output_error(uri: str, op: Callable[[], T]) -> T:
    try:
        return op()
    except Exception as exc:
        raise storage_error(exc, "output", uri) from exc


def finished(out: str, pair_id: str, fingerprint: str) -> bool:
    """True if the pair's completion record exists and was written for these inputs and settings.

    A damaged record (as a crash may leave) counts as unfinished."""
    root = OutputRoot.open(out)

    def read() -> bytes | None:
        try:
            return root.fs.cat_file(root.pair(pair_id, DONE))
        except FileNotFoundError:
            return None

    data = _as_output_error(root.pair_uri(pair_id, DONE), read)
    try:
        return data is not None and read_completion(data).fingerprint == fingerprint
    except RecordError:
        return False


def write_pair(out: str, pair_id: str, files: dict[str, bytes]) -> str:
    """Replace the pair's folder with ``files`` (relative name -> bytes, ``records.pair_files``),
    written in their order: the completion record is the last; return the folder's URI."""
    root = OutputRoot.open(out)
    if list(files)[-1] != DONE:
        raise ValueError(f"the last file of a pair must be {DONE}")
    folder = root.pair(pair_id)
    _as_output_error(
        root.pair_uri(pair_id), lambda: (_replace_local if root.local else _replace_remote)(root.fs, folder, files)
    )
    return root.pair_uri(pair_id)


def write_failure(out: str, pair_id: str, failure: FailureRecord) -> None:
    """Record why a pair failed (the gallery shows it); a later success replaces it."""
    root = OutputRoot.open(out)
    path = root.pair(pair_id, FAILED)
    _as_output_error(root.pair_uri(pair_id, FAILED), lambda: write_file(root.fs, path, failure_file(failure)))


def _replace_local(fs: Any, folder: str, files: dict[str, bytes]) -> None:
    """Stage every file in a hidden sibling folder, then swap it in with one rename."""
    parent = os.path.dirname(folder)
    stage = os.path.join(parent, f".{os.path.basename(folder)}.{uuid.uuid4().hex}.tmp")
    try:
        for name, data in files.items():
            path = os.path.join(stage, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # a failed write (disk full ...) leaves nothing behind
        raise
    if os.path.exists(folder):  # an unfinished, failed, leased or outdated render: moved away whole, then deleted
        old = f"{stage}.old"
        os.rename(folder, old)
        os.rename(stage, folder)
        shutil.rmtree(old)
    else:
        os.rename(stage, folder)


def _replace_remote(fs: Any, folder: str, files: dict[str, bytes]) -> None:
    """Delete the old files (one request), then write each file, the completion record last.

    The lease stays until its holder releases it, so no other run starts this pair meanwhile.
    """
    old = [p for p in fs.find(folder) if posixpath.basename(p) != LEASE] if fs.exists(folder) else []
    if old:
        fs.rm(old)
    for name, data in files.items():  # dicts keep order: the completion record is last
        write_file(fs, f"{folder}/{name}", data)
