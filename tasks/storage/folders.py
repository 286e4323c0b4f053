"""Per-pair output folders on local disk or any fsspec store (S3 ...), written atomically.

What a folder holds is ``tasks.storage.records``'s business; this module only writes and reads it. The
files of a finished pair arrive together, the completion record last: a folder without it is
unfinished and is rendered again. On a local disk all files are staged in a hidden folder and
renamed into place together, so a result never exists without its completion record; on an object
store each file is one atomic PUT and the completion record goes last. Every error is a
``StorageError`` naming the output and the cause; callers retry the transient ones (``tasks.storage.retries``).
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import shutil
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from nst_core.io_errors import storage_error
from tasks.storage.leases import LEASE
from tasks.storage.records import DONE, FAILED, FailureRecord, RecordError, failure_file, read_completion

__all__ = ["check_writable", "finished", "is_s3", "pair_folder", "pipe_files", "write_failure", "write_pair"]

T = TypeVar("T")


def pair_folder(out: str, pair_id: str) -> str:
    return f"{out.rstrip('/')}/{pair_id}"


def _put_options(fs: Any, path: str) -> dict[str, str]:
    """How to write ``path`` to ``fs`` so that a browser shows it: on S3 with its Content-Type (S3's default,
    ``binary/octet-stream``, makes browsers download it); files need nothing."""
    kind, _ = mimetypes.guess_type(path)
    if not is_s3(fs) or kind is None:
        return {}
    return {"ContentType": f"{kind}; charset=utf-8" if kind.startswith("text/") else kind}


def is_s3(fs: Any) -> bool:
    return "s3" in ({fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol))


def pipe_files(fs: Any, files: dict[str, bytes]) -> None:
    """Write ``files`` (path -> bytes) in batches, each file as ``_put_options`` says."""
    batches: dict[tuple[tuple[str, str], ...], dict[str, bytes]] = {}
    for path, data in files.items():
        batches.setdefault(tuple(_put_options(fs, path).items()), {})[path] = data
    for options, batch in batches.items():
        fs.pipe(batch, **dict(options))


def _as_output_error(uri: str, op: Callable[[], T]) -> T:
    try:
        return op()
    except Exception as exc:
        raise storage_error(exc, "output", uri) from exc


def finished(out: str, pair_id: str, fingerprint: str) -> bool:
    """True if the pair's completion record exists and was written for these inputs and settings.

    A damaged record (as a crash may leave) counts as unfinished."""
    path = f"{pair_folder(out, pair_id)}/{DONE}"

    def read() -> bytes | None:
        try:
            with fsspec.open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    data = _as_output_error(path, read)
    try:
        return data is not None and read_completion(data).fingerprint == fingerprint
    except RecordError:
        return False


def check_writable(out: str) -> None:
    """Create ``out`` if needed and write (then delete) a small file there.

    Raises:
        StorageError: ``out`` cannot be written (read-only, no access, unreachable ...).
    """

    def probe() -> None:
        fs, root = fsspec.url_to_fs(out)
        fs.makedirs(root, exist_ok=True)
        path = f"{root.rstrip('/')}/.stylebatch-write-check-{uuid.uuid4().hex}"
        fs.pipe_file(path, b"")
        fs.rm_file(path)

    _as_output_error(out, probe)


def write_pair(out: str, pair_id: str, files: dict[str, bytes]) -> str:
    """Replace the pair's folder with ``files`` (relative name -> bytes, ``records.pair_files``),
    written in their order: the completion record is the last."""
    if list(files)[-1] != DONE:
        raise ValueError(f"the last file of a pair must be {DONE}")
    folder = pair_folder(out, pair_id)

    def write() -> None:
        fs, root = fsspec.url_to_fs(folder)
        if isinstance(fs, LocalFileSystem):
            _replace_local(root, files)
        else:
            _replace_remote(fs, root, files)

    _as_output_error(folder, write)
    return folder


def write_failure(out: str, pair_id: str, failure: FailureRecord) -> None:
    """Record why a pair failed (the gallery shows it); a later success replaces it."""
    path = f"{pair_folder(out, pair_id)}/{FAILED}"
    data = failure_file(failure)

    def write() -> None:
        fs, local_path = fsspec.url_to_fs(path)
        if isinstance(fs, LocalFileSystem):
            os.makedirs(os.path.dirname(local_path), exist_ok=True)
            tmp = f"{local_path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, local_path)
        else:
            fs.pipe_file(local_path, data)

    _as_output_error(path, write)


def _replace_local(folder: str, files: dict[str, bytes]) -> None:
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
        fs.pipe_file(f"{folder}/{name}", data, **_put_options(fs, name))
