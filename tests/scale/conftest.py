"""Fixtures of the scale-out tests: subprocess groups, tiny manifests (the Prefect server: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scale.scale_helpers import Processes, write_manifest


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start subprocesses in their own process groups; all of them are killed after the test."""
    procs = Processes(tmp_path / "logs")
    yield procs
    procs.stop()


@pytest.fixture
def manifest(tmp_path: Path, pil_image: Callable[..., Any]) -> Callable[..., Path]:
    """``manifest(contents, styles, name="m.csv")``: tiny images under ``tmp_path/inputs`` and a manifest over them."""

    def make(contents: int, styles: int, name: str = "m.csv") -> Path:
        return write_manifest(tmp_path / "inputs", pil_image, contents, styles, name)

    return make
