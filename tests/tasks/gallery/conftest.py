"""Fixtures of the gallery tests: screenshots and Debian's Chromium (the small output root: ``small_root``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.tasks.gallery.helpers import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: ``$STYLEBATCH_ARTIFACTS`` if set (CI keeps them), else under ``tmp_path``."""
    folder = Path(os.environ["STYLEBATCH_ARTIFACTS"]) if os.environ.get("STYLEBATCH_ARTIFACTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright (headless); CI must have it, elsewhere the test is skipped."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: install Debian's chromium package to run the gallery's browser tests"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so the browser tests must run)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """``new_page(width, height, **context options)``: a page in a fresh context (by default with a tall viewport);
    closed after the test."""
    contexts = []

    def make(width: int = 1400, height: int = 2400, **options: Any) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
