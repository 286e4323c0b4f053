"""What renders take and give back: jobs, the loss terms of each iteration, timings, results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from nst_core.settings import Settings
from nst_core.temporal import Guide

__all__ = ["BatchJob", "ImageInput", "RenderResult", "StepInfo", "Timings"]

ImageInput = str | Image.Image  # a path or fsspec URI, or an image already in memory


@dataclass(frozen=True)
class BatchJob:
    """One render of a batch (``render_batch``)."""

    content: ImageInput
    styles: Sequence[ImageInput]
    settings: Settings
    guide: Guide | None = None  # a clip's frame: the frames before it, warped (``nst_core.video.chain``)
    style_masks: Sequence[ImageInput] = ()  # where each style applies on the content, one per style (none: blended)
    style_image_masks: Sequence[ImageInput | None] = ()  # which part of each style image (None: all of it)
    keep_mask: ImageInput | None = None  # ``settings.keep_mask``'s image, where the caller has read it already


@dataclass(frozen=True)
class StepInfo:
    """Loss terms (unweighted) and total (weighted) of one iteration; iterations count across levels."""

    iteration: int
    content: float
    style: float
    tv: float
    total: float
    lr: float
    elapsed_s: float  # since the optimisation started
    level: int = 1  # multi-scale level, 1 = the smallest
    temporal: float = 0.0  # a clip's frame: the temporal term (unweighted)


@dataclass(frozen=True)
class Timings:
    """A render's times; in a batch, the setup and optimisation times are the batch's, shared by its images."""

    setup_s: float  # reading images, loading the backbone
    optimise_s: float  # every level, its targets included
    ms_per_iteration: float  # over all levels
    evaluations: int  # forward and backward passes (L-BFGS's line search may add some)

    @property
    def ms_per_evaluation(self) -> float:
        return 1000 * self.optimise_s / max(self.evaluations, 1)

    @property
    def total_s(self) -> float:
        return self.setup_s + self.optimise_s


@dataclass(frozen=True)
class RenderResult:
    image: Image.Image
    losses: list[StepInfo]
    timings: Timings
    device: str
    precision: str
    settings: Settings
    snapshots: dict[int, Image.Image] = field(default_factory=dict)  # at their level's size
