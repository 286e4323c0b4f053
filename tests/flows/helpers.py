"""Helpers of the flow tests: tiny manifests, pair folders, polling, S3 buckets, subprocess environments."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from tasks.storage.records import DONE, LOSSES, RECORD, RESULT
from tasks.storage.root import GALLERY, RUNS

# Settings for every flow test: a random tiny VGG, 32 px, 2 iterations (~0.3 s per pair on a CPU).
FAST = {"weights": "random:0", "image_size": 32, "iterations": 2}
PAIR_FILES = {RESULT, LOSSES, RECORD, DONE}


def pair_dirs(out: Path) -> dict[str, set[str]]:
    """Pair folders under ``out`` (not hidden staging folders, the gallery, the runs' summaries) -> their files."""
    folders = [
        p for p in sorted(out.iterdir()) if p.is_dir() and not p.name.startswith(".") and p.name not in {GALLERY, RUNS}
    ]
    return {p.name: {f.name for f in p.iterdir()} for p in folders}


@dataclass(frozen=True)
class Tiny:
    """Tiny images in ``root`` and helpers to write manifests over them."""

    root: Path
    make_image: Callable[..., Any]

    def images(self, contents: int = 2, styles: int = 2) -> tuple[list[str], list[str]]:
        names = [f"content{i}.png" for i in range(1, contents + 1)], [f"style{i}.png" for i in range(1, styles + 1)]
        for seed, name in enumerate([*names[0], *names[1]], start=1):
            path = self.root / name
            if not path.exists():
                self.make_image(seed, (40, 32) if name.startswith("content") else (36, 36)).save(path)
        return names

    def manifest(self, text: str, name: str = "m.csv") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def cross(self, contents: int = 2, styles: int = 2, name: str = "m.csv") -> Path:
        """A manifest of every content x every style, with paths relative to the manifest."""
        content_names, style_names = self.images(contents, styles)
        rows = [f"{c},{s}" for c in content_names for s in style_names]
        return self.manifest("\n".join(["content,style", *rows]) + "\n", name)


def flow_run_id(state: Any) -> UUID:
    return state.state_details.flow_run_id


def subprocess_env(api_url: str, home: Path) -> dict[str, str]:
    """Environment of a ``stylebatch`` subprocess: the session's Prefect server, no telemetry, its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AWS_"))}
    env |= {
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(home),
        "COLUMNS": "200",  # rich wraps the summary line at the terminal width otherwise
    }
    return env
