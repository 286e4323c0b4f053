"""What a run checks before anything renders, with retries of transient storage errors: that the manifest can
be used and that the output root can be written. ``stylebatch run`` checks both before Prefect starts; the
flow checks them again (a deployment's run has no command line)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nst_core import InputError
from tasks.manifest.read import Manifest, read_manifest
from tasks.storage.retries import retry_transient
from tasks.storage.root import OutputRoot

__all__ = ["check_output_root", "open_manifest"]


def open_manifest(uri: str, defaults: Mapping[str, Any] | None, retry_for_s: float) -> Manifest:
    """The parsed manifest.

    Raises:
        StorageError, SettingsError: as ``read_manifest``.
        InputError: it is not UTF-8 CSV, or no row of it can render (a required column missing, no rows).
    """
    parsed = retry_transient(lambda: read_manifest(uri, defaults), retry_for_s)
    if parsed.unusable is not None:
        raise InputError(parsed.unusable)
    return parsed


def check_output_root(out: str, retry_for_s: float) -> None:
    """Raises ``StorageError`` if ``out`` cannot be written (read-only, no access, unreachable)."""
    retry_transient(OutputRoot.open(out).check_writable, retry_for_s)
