"""What a render requires of its inputs, checked before anything is optimised.

No torch here: ``stylebatch validate`` applies the same checks to a manifest's images, so a row that
``run`` would fail before rendering fails in ``validate`` too, with the same reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from nst_core.catalogue import min_side
from nst_core.errors import InputError
from nst_core.images import long_side_size
from nst_core.settings import Settings

__all__ = ["check_sizes", "size_problem"]

Size = tuple[int, int]  # (width, height)


def check_sizes(content: Size, styles: Sequence[Size], s: Settings) -> None:
    """Every image is large enough for the deepest layer in use at every level (multi-scale, style_scale).

    Raises:
        InputError: for the first image that is too small: its size at that level and what would help.
    """
    for role, size in [("content image", content), *(("style image", style) for style in styles)]:
        if (problem := size_problem(size, role == "style image", s)) is not None:
            raise InputError(f"{role} {problem}")


def size_problem(size: Size, style: bool, s: Settings) -> str | None:
    """Why an image of ``size`` (a style image's, if ``style``) is too small at some level of ``s``'s
    render, as "is W x H px at ...: too small ...", or None."""
    deepest = s.deepest_layer
    need = min_side(s.backbone, deepest)
    for level_side, _ in s.levels():  # the smallest first
        side = s.style_side(level_side) if style else level_side
        w, h = long_side_size(size, side)
        if min(w, h) < need:
            where = f"style_scale {s.style_scale:g} of {level_side} px" if style else f"{level_side} px"
            return (
                f"is {w}x{h} px at {where}: too small for the layers up to {deepest} (at least {need} px a side); "
                "use a larger image_size, start_size or style_scale"
            )
    return None
