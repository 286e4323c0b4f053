"""An output root, a local folder or any fsspec URI (``s3://bucket/prefix``), and its layout::

    <out>/<pair id>/   a pair's folder (its files: ``tasks.storage.records``)
    <out>/gallery/     the gallery: index.html, contents/, styles/, pairs/, thumbs/, contact_sheet*.png

``OutputRoot`` opens a root once and names every place in it, as a path of its filesystem or as a URI
(the form users and reports see). ``write_file`` is the one atomic write of a file: staged beside its
place and renamed on a local disk, one PUT (with its Content-Type) on an object store.
"""

from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from nst_core.io_errors import storage_error

__all__ = [
    "FLOWS",
    "FRAMES",
    "GALLERY",
    "INDEX",
    "RESERVED",
    "RUNS",
    "OutputRoot",
    "frame_folder",
    "is_s3",
    "put_files",
    "write_file",
]

GALLERY = "gallery"
INDEX = f"{GALLERY}/index.html"
RUNS = "runs"  # the runs' summary files
FRAMES = "frames"  # clips: each frame's folder, frames/<pair id>/<NNNNNN>/ (``frame_folder``)
FLOWS = "flows"  # clips: optical flows, shared by every style of a clip
# Folders no pair may take, and what they hold.
RESERVED = {GALLERY: "the gallery", RUNS: "the runs' summaries", FRAMES: "clips' frames", FLOWS: "clips' optical flows"}


def frame_folder(pair_id: str, index: int) -> str:
    """Frame ``index``'s folder of the clip ``pair_id``, relative to the output root."""
    return f"{FRAMES}/{pair_id}/{index:06d}"


@dataclass(frozen=True)
class OutputRoot:
    """An output root: its URI as given, its filesystem, and its path there."""

    uri: str
    fs: Any
    path: str

    @classmethod
    def open(cls, uri: str) -> OutputRoot:
        fs, path = fsspec.url_to_fs(uri)
        return cls(uri.rstrip("/"), fs, path.rstrip("/"))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def pair(self, pair_id: str, name: str = "") -> str:
        """A pair's folder, or the file ``name`` in it, as a path of ``fs``."""
        return _join(self.path, pair_id, name)

    def pair_uri(self, pair_id: str, name: str = "") -> str:
        """The same, as a URI (``s3://b/renders/<id>/result.png``, or a local path)."""
        return _join(self.uri, pair_id, name)

    def gallery(self, name: str = "") -> str:
        return _join(self.path, GALLERY, name)

    def gallery_uri(self, name: str = "") -> str:
        return _join(self.uri, GALLERY, name)

    def check_writable(self) -> None:
        """Create the root if needed and write (then delete) a small file there.

        Raises:
            StorageError: it cannot be written (read-only, no access, unreachable ...).
        """
        probe = f"{self.path}/.stylebatch-write-check-{uuid.uuid4().hex}"
        try:
            self.fs.makedirs(self.path, exist_ok=True)
            self.fs.pipe_file(probe, b"")
            self.fs.rm_file(probe)
        except Exception as exc:
            raise storage_error(exc, "output", self.uri) from exc


def _join(base: str, *names: str) -> str:
    return "/".join([base, *filter(None, names)])


def write_file(fs: Any, path: str, data: bytes, *, exclusive: bool = False, if_match: str | None = None) -> str | None:
    """Write ``path`` whole or not at all; return its ETag where the store gives one.

    ``exclusive``: only if it does not exist, else ``FileExistsError``; ``if_match``: only if S3 still holds
    that version of it (else ``FileExistsError``). Local: staged beside it, then renamed over it (linked, if
    exclusive). S3: one PUT, with its Content-Type and conditions. Other stores: one put, exclusive at best effort.
    """
    if isinstance(fs, LocalFileSystem):
        _write_local(path, data, exclusive)
        return None
    if is_s3(fs):
        condition = {"mode": "create"} if exclusive else {"IfMatch": if_match} if if_match else {}
        try:
            written = fs.pipe_file(path, data, **condition, **_put_options(fs, path))
        except OSError as exc:
            if _precondition_failed(exc):  # someone else wrote it first
                raise FileExistsError(path) from exc
            raise
        return written.get("ETag") if isinstance(written, dict) else None
    if exclusive and fs.exists(path):
        raise FileExistsError(path)
    fs.pipe_file(path, data)
    return None


def _write_local(path: str, data: bytes, exclusive: bool) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    staged = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(staged, "xb") as f:
            f.write(data)
        if exclusive:
            os.link(staged, path)  # fails if it exists (O_EXCL's guarantee), and it is whole when it appears
        else:
            os.replace(staged, path)
    finally:
        if os.path.exists(staged):
            os.unlink(staged)


def _precondition_failed(exc: BaseException) -> bool:
    response = getattr(exc.__cause__, "response", None) or {}
    return isinstance(exc, FileExistsError) or response.get("Error", {}).get("Code") in ("PreconditionFailed", "412")


def put_files(fs: Any, files: Mapping[str, bytes]) -> None:
    """Write many files (path -> bytes) in batches, each with its Content-Type on S3 (not atomically)."""
    batches: dict[tuple[tuple[str, str], ...], dict[str, bytes]] = {}
    for path, data in files.items():
        batches.setdefault(tuple(_put_options(fs, path).items()), {})[path] = data
    for options, batch in batches.items():
        fs.pipe(batch, **dict(options))


def is_s3(fs: Any) -> bool:
    return "s3" in ({fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol))


def _put_options(fs: Any, path: str) -> dict[str, str]:
    """How to write ``path`` to ``fs`` so that a browser shows it: on S3 with its Content-Type (S3's default,
    ``binary/octet-stream``, makes browsers download it); files need nothing."""
    kind, _ = mimetypes.guess_type(path)
    if not is_s3(fs) or kind is None:
        return {}
    return {"ContentType": f"{kind}; charset=utf-8" if kind.startswith("text/") else kind}
