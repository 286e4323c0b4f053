"""The terminal: stderr gets progress, notes and errors (``say``, ``fail``); stdout only the summary and the
paths that commands print (``flows.display`` draws a run's progress and summary)."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

__all__ = ["console", "fail", "say"]

console = Console(stderr=True)


def say(line: str) -> None:
    """A line on stderr, as typed (no markup, no highlighting)."""
    console.print(line, highlight=False, markup=False)


def fail(problem: Exception | str, code: int = 2) -> NoReturn:
    """End the command with one line, ``error: <problem>``, and ``code``."""
    console.print(f"[red]error:[/red] {escape(str(problem))}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(code)
