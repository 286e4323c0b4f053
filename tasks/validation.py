"""Checks that need the inputs but no rendering (``stylebatch validate``)."""

from __future__ import annotations

from nst_core import InputError
from nst_core.images import load_image
from nst_core.settings import INIT_MODES
from tasks.manifest import Pair

__all__ = ["check_inputs"]


def check_inputs(pair: Pair) -> list[tuple[str, str]]:
    """(column, reason) for every input of ``pair`` that is missing or does not decode."""
    inputs = [("content", pair.content), *(("style", uri) for uri in pair.styles)]
    if pair.settings.init not in INIT_MODES:
        inputs.append(("init", pair.settings.init))
    problems = []
    for column, uri in inputs:
        try:
            load_image(uri, f"{column} image")
        except (InputError, OSError) as exc:
            problems.append((column, str(exc)))
    return problems
