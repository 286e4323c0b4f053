"""Shared fixtures: tiny images written under ``tmp_path``, and a guard that tests write nowhere else."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
IGNORED_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"}

# The tensors here are tiny, so threads buy nothing; and OpenMP threads spinning on a busy 2-core
# machine (another job, a CI neighbour) make each iteration ~20x slower. The engine is unchanged.
torch.set_num_threads(1)


def _repo_files() -> set[Path]:
    files: set[Path] = set()
    for folder, dirs, names in os.walk(REPO_ROOT):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
        files.update(Path(folder, name).relative_to(REPO_ROOT) for name in names)
    return files


@pytest.fixture(scope="session", autouse=True)
def no_stray_files() -> Iterator[None]:
    """Fail the session if any test wrote a file into the repository (write under ``tmp_path`` only)."""
    before = _repo_files()
    yield
    new = sorted(str(path) for path in _repo_files() - before)
    if new:
        raise AssertionError(f"tests left files in the repository: {', '.join(new)}")


def make_image(seed: int, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Image.Image:
    """A smooth colour gradient with some seeded noise, so styles and contents differ but resample alike."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([np.sin(2 * np.pi * (x / w + y / h) + p) for p in phase], axis=-1)
    pixels = 0.5 + 0.3 * base + 0.05 * rng.standard_normal((h, w, 3))
    image = Image.fromarray((pixels.clip(0, 1) * 255).round().astype(np.uint8), "RGB")
    return image if mode == "RGB" else image.convert(mode)


@pytest.fixture
def pil_image() -> Callable[..., Image.Image]:
    """``pil_image(seed, size=(40, 32), mode="RGB")``: a tiny in-memory image."""
    return make_image


@pytest.fixture
def image_factory(tmp_path: Path) -> Callable[..., Path]:
    """``image_factory(name, seed=0, size=(40, 32), mode="RGB")`` writes a tiny image under ``tmp_path``."""

    def write(name: str, seed: int = 0, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Path:
        path = tmp_path / name
        make_image(seed, size, mode).save(path)
        return path

    return write


@pytest.fixture
def content_path(image_factory: Callable[..., Path]) -> Path:
    return image_factory("content.png", seed=1)


@pytest.fixture
def style_path(image_factory: Callable[..., Path]) -> Path:
    return image_factory("style.png", seed=2, size=(36, 36))
