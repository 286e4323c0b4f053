"""A clip rendered as a chain of frames (Ruder et al. 2016): frame t starts from the stylised frame t-1 warped into it
and is held to it by the temporal term (``nst_core.temporal``), wherever the content's optical flow can be trusted.

The first frame renders with the row's settings, as a still would; the frames after it with ``frame_iterations``
at ``image_size`` alone (the warped start replaces multi-scale's coarse levels). With ``temporal_weight`` 0 every
frame renders on its own, exactly as a still. Flows are computed between the content frames at the render's size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from nst_core.images import resize_long_side
from nst_core.rendering import render_batch
from nst_core.results import BatchJob, ImageInput, RenderResult
from nst_core.settings import Settings
from nst_core.temporal import Guide, long_term_masks
from nst_core.tensors import to_tensor
from nst_core.video.flow import FlowMethod, optical_flow, reliability
from nst_core.video.warp import warp

__all__ = ["LONG_TERM", "Motion", "frame_job", "frame_settings", "motion", "previous_frames", "render_clip"]

LONG_TERM = (1, 2, 4)  # the frames before t that long-term consistency follows, as in the paper


@dataclass(frozen=True)
class Motion:
    """How frame t maps back to an earlier frame: ``backward = flow(frame_t, earlier)``, and where it holds."""

    backward: np.ndarray  # (H, W, 2)
    reliable: np.ndarray  # (H, W) in {0, 1}


def motion(frame: Image.Image, earlier: Image.Image, method: FlowMethod = "dis") -> Motion:
    """The flows both ways between ``frame`` and ``earlier`` (same size), checked against each other."""
    backward, forward = optical_flow(frame, earlier, method), optical_flow(earlier, frame, method)
    return Motion(backward, reliability(backward, forward))


def previous_frames(index: int, long_term: bool) -> list[int]:
    """The earlier frames that frame ``index`` follows, nearest first."""
    return [index - j for j in (LONG_TERM if long_term else LONG_TERM[:1]) if index - j >= 0]


def frame_settings(s: Settings, index: int) -> Settings:
    """The settings frame ``index`` of a chain renders with (see the module docstring)."""
    if index == 0 or s.temporal_weight == 0:
        return s
    return s.model_copy(update={"iterations": s.frame_iterations, "start_size": 0})


def frame_job(still: BatchJob, index: int, earlier: Sequence[tuple[Image.Image, Motion]] = ()) -> BatchJob:
    """Frame ``index``'s render from ``still``, its render alone (the frame at the render's size, the styles, any
    masks); ``earlier`` the stylised frames it follows (``previous_frames``), each with its ``Motion`` to it."""
    settings = frame_settings(still.settings, index)
    if settings is still.settings:
        return still
    warped = torch.cat([warp(to_tensor(image), m.backward) for image, m in earlier]).clamp(0, 1)
    masks = long_term_masks([torch.from_numpy(m.reliable)[None] for _, m in earlier])
    return dataclasses.replace(still, settings=settings, guide=Guide(warped, masks))


def render_clip(
    frames: Sequence[Image.Image],
    styles: Sequence[ImageInput],
    s: Settings,
    *,
    on_frame: Callable[[int, RenderResult], None] | None = None,
) -> list[RenderResult]:
    """Render ``frames`` one after another, each following those before it; ``on_frame(index, result)`` as each
    frame is done.

    Raises:
        the first frame's error, as ``render`` would.
    """
    sized = [resize_long_side(frame, s.image_size) for frame in frames]
    results: list[RenderResult] = []
    for index, frame in enumerate(sized):
        follows = previous_frames(index, s.long_term) if s.temporal_weight else []
        earlier = [(results[i].image, motion(frame, sized[i], s.flow)) for i in follows]
        [result] = render_batch([frame_job(BatchJob(frame, styles, s), index, earlier)])
        if isinstance(result, Exception):
            raise result
        results.append(result)
        if on_frame is not None:
            on_frame(index, result)
    return results
