"""Per-pair output folders on local disk or any fsspec store (S3 ...), written atomically.

``<out>/<pair_id>/`` holds ``result.png``, ``losses.csv``, ``settings.json``, optional
``snapshots/NNNNN.png`` and, written last, the completion marker ``done.json``. A folder without
the marker is unfinished and is rendered again. On a local disk all files are staged in a hidden
folder and renamed into place together, so ``result.png`` never exists without its marker; on an
object store each file is one atomic PUT and the marker goes last.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

__all__ = ["FAILURE", "MARKER", "finished", "pair_folder", "read_json", "write_failure", "write_pair"]

MARKER = "done.json"
FAILURE = "failed.json"


def pair_folder(out: str, pair_id: str) -> str:
    return f"{out.rstrip('/')}/{pair_id}"


def read_json(uri: str) -> dict[str, Any] | None:
    """The JSON object at ``uri``, or None if there is none."""
    try:
        with fsspec.open(uri, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def finished(out: str, pair_id: str, fingerprint: str) -> bool:
    """True if the pair's marker exists and was written for these inputs and settings."""
    marker = read_json(f"{pair_folder(out, pair_id)}/{MARKER}")
    return marker is not None and marker.get("fingerprint") == fingerprint


def write_pair(out: str, pair_id: str, files: dict[str, bytes], marker: dict[str, Any]) -> str:
    """Write ``files`` (relative name -> bytes) and then the marker into the pair's folder."""
    files = {**files, MARKER: json.dumps(marker, indent=2).encode()}
    fs, root = fsspec.url_to_fs(out)
    folder = f"{root.rstrip('/')}/{pair_id}"
    if isinstance(fs, LocalFileSystem):
        _replace_local(folder, files)
    else:
        if fs.exists(folder):  # an unfinished, failed or outdated render: the old marker goes with it
            fs.rm(folder, recursive=True)
        for name, data in files.items():  # dicts keep order: the marker is last
            fs.pipe_file(f"{folder}/{name}", data)
    return pair_folder(out, pair_id)


def write_failure(out: str, pair_id: str, failure: dict[str, Any]) -> None:
    """Record why a pair failed (the gallery shows it); a later success replaces it."""
    fs, root = fsspec.url_to_fs(out)
    path = f"{root.rstrip('/')}/{pair_id}/{FAILURE}"
    data = json.dumps(failure, indent=2).encode()
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def _replace_local(folder: str, files: dict[str, bytes]) -> None:
    """Stage every file in a hidden sibling folder, then swap it in with one rename."""
    parent = os.path.dirname(folder)
    stage = os.path.join(parent, f".{os.path.basename(folder)}.{uuid.uuid4().hex}.tmp")
    for name, data in files.items():
        path = os.path.join(stage, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    if os.path.exists(folder):  # an unfinished, failed or outdated render: moved away whole, then deleted
        old = f"{stage}.old"
        os.rename(folder, old)
        os.rename(stage, folder)
        shutil.rmtree(old)
    else:
        os.rename(stage, folder)
