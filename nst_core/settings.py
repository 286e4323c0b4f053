"""The single validated settings model: every knob, its default, range and meaning.

Loss terms are scale-free by default (``normalization="target"``, see ``losses``), so one set of
weights fits every backbone, weights file and image size; the defaults were picked with
``bench/quality.py``. ``normalization="reference"`` restores gordicaleksa/pytorch-neural-style-transfer's
terms and weights (content 1e5, style 3e4, TV 1) to reproduce its numbers. ``start_size`` makes a
render multi-scale: see ``Settings.levels``.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from nst_core.catalogue import NETWORKS, RANDOM_WEIGHTS, layer_names
from nst_core.errors import SettingsError

__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHTS", "Knob", "Settings", "parse_list"]

T = TypeVar("T")  # a loss term: a float, or a tensor

DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.04}  # Adam: gordicaleksa's 10 on the 0-255 scale, per pixel
# Loss weights per normalization: (content, style, tv).
DEFAULT_WEIGHTS = {"target": (1.0, 3.0, 0.1), "reference": (1e5, 3e4, 1.0)}
# Clips, picked with bench/video.py: the temporal term's weight; a later frame's iterations (a share of the first's).
TEMPORAL_WEIGHT, FRAME_ITERATIONS = 30.0, 125
# Picked with bench/checkpoint.py: the reference implementations' history; a checkpoint's interval.
LBFGS_HISTORY, CHECKPOINT_EVERY_S = 100, 300.0
INIT_MODES = ("content", "noise", "style")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Knob:
    """What a setting is beyond its value (``Annotated`` metadata of its field; most settings are ``Knob()``)."""

    per_image: bool = False  # each image of a batch may have its own (``nst_core.batch_key`` leaves it out)
    pixels: bool = True  # it can change the picture, so it is part of a pair's fingerprint and id
    compared: bool = True  # the gallery tells pairs apart by it
    clip: bool = False  # only a clip's frames use it: a still's fingerprint leaves it out
    masks: bool = False  # only rows with masks use it: the fingerprint of a row without masks leaves it out
    newer: bool = False  # newer than pairs finished with its default's behaviour: at its default, left out of ids


PER_IMAGE = Knob(per_image=True)  # targets, loss weights, optimiser state: each image's own
SPEED = Knob(pixels=False)  # how fast it runs, not what it makes: finished pairs keep their ids when it changes
INPUT_LIMIT = Knob(per_image=True, pixels=False)  # which inputs it accepts
PLACE = Knob(pixels=False, compared=False)  # where it runs says nothing about the picture
CLIP = Knob(clip=True)  # how a clip's frames render
CLIP_PER_IMAGE = Knob(per_image=True, clip=True)
CLIP_LIMIT = Knob(per_image=True, pixels=False, clip=True)  # which clips it accepts
MASKS = Knob(per_image=True, masks=True)  # how masks place styles (``nst_core.masks``)
NEWER_PER_IMAGE = Knob(per_image=True, newer=True)
CHECKPOINTS = Knob(per_image=True, pixels=False, compared=False)  # when the pipeline saves a render's state
_LIST_FIELDS = ("content_layers", "content_layer_weights", "style_layers", "style_layer_weights", "style_weights")


def parse_list(value: Any) -> Any:
    """Split ``"a|b"`` or ``"a,b"`` (CSV cells, CLI flags) into a list; other values pass through."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[|,]", value) if part.strip()]
    return value


class Settings(BaseModel):
    """Everything that controls one render. Field names are the CLI flags and manifest columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(512, ge=16, le=8192, description="Long side of the output in pixels.")
    iterations: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Optimisation steps at image_size (Adam: one forward and backward pass each; L-BFGS: one "
        "step with line search).",
    )
    start_size: int = Field(
        0,
        ge=0,
        le=8192,
        description="Multi-scale: long side of the smallest level, e.g. 128; levels double up to image_size "
        "(image_size/2^k >= start_size). 0 (the default), or more than half of image_size: single scale.",
    )
    level_iterations: int = Field(
        150, ge=0, le=100_000, description="Multi-scale: optimisation steps at each level below image_size."
    )
    backbone: Literal["vgg19", "vgg16", "squeezenet1_1"] = Field("vgg19", description="Feature network.")
    weights: str = Field(
        "imagenet",
        description="imagenet (torchvision, via the Torch hub cache), a path or fsspec URI of a state dict, "
        "or random:SEED.",
    )
    pooling: Literal["max", "avg"] = Field("max", description="Pooling in the backbone.")
    content_layers: list[str] | None = Field(
        None, validate_default=True, description="Content layers (default: relu4_2 for VGG, fire5 for SqueezeNet)."
    )
    content_layer_weights: Annotated[list[float] | None, PER_IMAGE] = Field(
        None, validate_default=True, description="Weight per content layer (default: 1 each)."
    )
    style_layers: list[str] | None = Field(
        None,
        validate_default=True,
        description="Style layers (default: relu1_1|relu2_1|relu3_1|relu4_1|relu5_1 for VGG, "
        "relu1|fire2|fire3|fire5|fire7 for SqueezeNet).",
    )
    style_layer_weights: Annotated[list[float] | None, PER_IMAGE] = Field(
        None, validate_default=True, description="Weight per style layer (default: 1 each)."
    )
    normalization: Literal["target", "reference"] = Field(
        "target",
        description="target: each loss term relative to its target (scale-free: weights mean the same on any "
        "backbone and size); reference: gordicaleksa's sums on the 0-255 scale (to reproduce its numbers).",
    )
    content_weight: Annotated[float | None, PER_IMAGE] = Field(
        None, ge=0, validate_default=True, description="Weight of the content loss (default: 1; reference: 1e5)."
    )
    style_weight: Annotated[float | None, PER_IMAGE] = Field(
        None, ge=0, validate_default=True, description="Weight of the style loss (default: 3; reference: 3e4)."
    )
    tv_weight: Annotated[float | None, PER_IMAGE] = Field(
        None,
        ge=0,
        validate_default=True,
        description="Weight of the total-variation loss (default: 0.1; reference: 1).",
    )
    tv_norm: Annotated[Literal["l1", "l2"], PER_IMAGE] = Field(
        "l1", description="Total variation: absolute (l1) or squared (l2) neighbour differences."
    )
    style_weights: Annotated[list[float] | None, PER_IMAGE] = Field(
        None, description="Blend weights of several style images, e.g. 0.7|0.3 (default: equal)."
    )
    style_scale: Annotated[float, PER_IMAGE] = Field(
        1.0, gt=0, le=8, description="Style image size relative to the output's long side."
    )
    init: Annotated[str, PER_IMAGE] = Field(
        "content", description="Start image: content, noise (seeded), style, or an image path/URI."
    )
    optimizer: Literal["lbfgs", "adam"] = Field("lbfgs", description="Optimiser of the image's pixels.")
    lbfgs_history: Annotated[int, NEWER_PER_IMAGE] = Field(
        LBFGS_HISTORY,
        ge=1,
        le=1000,
        description="L-BFGS: steps of curvature history kept (each one two copies of the image in memory and in "
        "checkpoints).",
    )
    lr: Annotated[float | None, PER_IMAGE] = Field(
        None, gt=0, validate_default=True, description="Learning rate (default: 1.0 for lbfgs, 0.04 for adam)."
    )
    lr_schedule: Annotated[dict[int, float], PER_IMAGE] = Field(
        default_factory=dict,
        description="Learning-rate steps ITER:LR, e.g. 180:0.1|400:0.01 (from iteration 180 on, lr 0.1).",
    )
    preserve_color: Annotated[Literal["none", "luminance", "histogram", "yuv_style"], PER_IMAGE] = Field(
        "none",
        description="Colour preservation: none, luminance (keep the content's chroma), histogram (match the "
        "style's colours to the content first), yuv_style (give the style the content's U and V first).",
    )
    seed: Annotated[int, PER_IMAGE] = Field(
        0, ge=0, description="Seed of noise init; the same seed gives the same pixels on the CPU."
    )
    device: Annotated[str, PLACE] = Field(
        "auto", description="auto (CUDA, then MPS, then CPU), cpu, mps, cuda or cuda:N."
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast on CUDA (fp32 elsewhere).")
    channels_last: bool = Field(False, description="channels_last memory format on CUDA.")
    cudnn_benchmark: Annotated[bool, SPEED] = Field(
        False, description="cuDNN autotuning on CUDA: the fastest convolution algorithms, timed once per image shape."
    )
    compile: Annotated[bool, SPEED] = Field(
        False,
        description="torch.compile the network (once per process and image shape: seconds to minutes); where "
        "compiling fails, the render runs without it.",
    )
    tile_size: Annotated[int, SPEED] = Field(
        0,
        ge=0,
        le=8192,
        description="Compute the loss and its gradient in tiles of this many pixels (rounded up to the network's "
        "stride) when the image is larger: memory then follows the tile, not the image. 0: no tiles.",
    )
    snapshot_every: Annotated[int, PER_IMAGE] = Field(
        0, ge=0, description="Keep a snapshot every N iterations (0: none)."
    )
    checkpoint_every_s: Annotated[float, CHECKPOINTS] = Field(
        CHECKPOINT_EVERY_S,
        ge=0,
        description="Save the render's state (pixels, optimiser, log) this often, in seconds of rendering, and at "
        "once on SIGTERM; a rerun resumes from it (0: never).",
    )
    temporal_weight: Annotated[float, CLIP_PER_IMAGE] = Field(
        TEMPORAL_WEIGHT,
        ge=0,
        description="Clips: weight of the temporal term (Ruder et al.), which holds each frame to the stylised frame "
        "before it, warped along the content's optical flow. 0: every frame on its own, as a still.",
    )
    frame_iterations: Annotated[int, CLIP] = Field(
        FRAME_ITERATIONS,
        ge=1,
        le=100_000,
        description="Clips: optimisation steps of each frame after the first, which starts from the frame before "
        "it, warped (single-scale, at image_size). The first frame takes iterations.",
    )
    long_term: Annotated[bool, CLIP_PER_IMAGE] = Field(
        False, description="Clips: hold each frame to frames t-2 and t-4 as well, where t-1 cannot be followed."
    )
    flow: Annotated[Literal["dis", "farneback"], CLIP] = Field(
        "dis", description="Clips: optical flow between content frames (OpenCV's DIS, or Farneback)."
    )
    frame_start: Annotated[int, CLIP_PER_IMAGE] = Field(0, ge=0, description="Clips: the first frame, counting from 0.")
    frame_end: Annotated[int | None, CLIP_PER_IMAGE] = Field(
        None, ge=1, description="Clips: the frame to stop before (default: the clip's end)."
    )
    frame_step: Annotated[int, CLIP_PER_IMAGE] = Field(1, ge=1, description="Clips: take every Nth frame.")
    max_frames: Annotated[int, CLIP_LIMIT] = Field(
        2000, ge=1, description="Clips: refuse a clip from which more frames than this are selected."
    )
    keep_mask: Annotated[str | None, MASKS] = Field(
        None,
        description="A mask image (path/URI), white where the output must stay the content's own pixels, exactly "
        "(read at the output's size, binary at half grey).",
    )
    mask_mode: Annotated[Literal["simple", "inside"], MASKS] = Field(
        "simple",
        description="Style masks at each layer: simple (the mask's mean over each position's share: soft borders), "
        "or inside (only positions that see the region alone).",
    )
    mask_threshold: Annotated[float, MASKS] = Field(
        0.5, ge=0, le=1, description="Style masks in inside mode: grey levels from this up are in the region."
    )
    max_pixels: Annotated[int, INPUT_LIMIT] = Field(
        64_000_000,
        ge=1,
        description="Refuse input images with more pixels than this (64 Mpx), read from their header before decoding.",
    )

    @field_validator(*_LIST_FIELDS, mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return parse_list(value)

    @field_validator("lr_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return dict(tuple(part.split(":")) for part in parse_list(value))
        except ValueError:
            raise ValueError(f"expected ITER:LR pairs like 180:0.1|400:0.01, got {value!r}") from None

    @field_validator("lr_schedule")
    @classmethod
    def _check_schedule(cls, value: dict[int, float]) -> dict[int, float]:
        if any(it < 1 or lr <= 0 for it, lr in value.items()):
            raise ValueError("iterations must be >= 1 and learning rates > 0")
        return dict(sorted(value.items()))

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: str) -> str:
        if value.startswith("random") and not RANDOM_WEIGHTS.match(value):
            raise ValueError(f"random weights need a seed, e.g. random:0 (got {value!r})")
        if not value:
            raise ValueError("expected imagenet, random:SEED, or a path/URI")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not DEVICE.match(value):
            raise ValueError(f"expected auto, cpu, mps, cuda or cuda:N, got {value!r}")
        return value

    @field_validator("init")
    @classmethod
    def _check_init(cls, value: str) -> str:
        if not value:
            raise ValueError(f"expected one of {', '.join(INIT_MODES)} or an image path/URI")
        return value

    @field_validator("content_layers", "style_layers")
    @classmethod
    def _check_layers(cls, value: list[str] | None, info: ValidationInfo) -> list[str]:
        backbone = info.data.get("backbone")
        if backbone is None:  # the backbone itself was invalid; that error is reported
            return value or []
        if value is None:
            network = NETWORKS[backbone]
            return list(network.content_layers if info.field_name == "content_layers" else network.style_layers)
        if not value:
            raise ValueError("at least one layer is needed")
        known = layer_names(backbone)
        for layer in value:
            if layer not in known:
                close = difflib.get_close_matches(layer, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown layer {layer!r} for {backbone}{hint} Allowed: {', '.join(known)}")
        return value

    @field_validator("content_layer_weights", "style_layer_weights")
    @classmethod
    def _check_layer_weights(cls, value: list[float] | None, info: ValidationInfo) -> list[float]:
        layers = info.data.get(info.field_name.removesuffix("_weights") + "s")
        if layers is None:
            return value or []
        if value is None:
            return [1.0] * len(layers)
        if len(value) != len(layers):
            raise ValueError(f"expected {len(layers)} weights (one per layer), got {len(value)}")
        if any(w < 0 for w in value):
            raise ValueError(f"weights must be >= 0, got {value}")
        return value

    @field_validator("style_weights")
    @classmethod
    def _check_blend(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(w < 0 for w in value) or sum(value) <= 0):
            raise ValueError(f"blend weights must be >= 0 with a positive sum, got {value}")
        return value

    @field_validator("content_weight", "style_weight", "tv_weight")
    @classmethod
    def _default_weight(cls, value: float | None, info: ValidationInfo) -> float:
        if value is not None:
            return value
        index = ("content_weight", "style_weight", "tv_weight").index(info.field_name)
        return DEFAULT_WEIGHTS[info.data.get("normalization", "target")][index]

    @field_validator("lr")
    @classmethod
    def _default_lr(cls, value: float | None, info: ValidationInfo) -> float:
        return DEFAULT_LR[info.data.get("optimizer", "lbfgs")] if value is None else value

    def levels(self) -> list[tuple[int, int]]:
        """The multi-scale pyramid as (long side, iterations), smallest first; the last is at image_size."""
        sizes = [self.image_size]
        while self.start_size and round(sizes[0] / 2) >= max(self.start_size, 16):
            sizes.insert(0, round(sizes[0] / 2))
        return [(size, self.level_iterations) for size in sizes[:-1]] + [(self.image_size, self.iterations)]

    def style_side(self, level_side: int) -> int:
        """The style images' long side at a level whose output's long side is ``level_side``."""
        return max(1, round(level_side * self.style_scale))

    @property
    def deepest_layer(self) -> str:
        """The deepest layer in use: the network is cut after it, and every image goes through it."""
        layers = layer_names(self.backbone)
        return max([*self.content_layers, *self.style_layers], key=layers.index)

    @property
    def total_iterations(self) -> int:
        """Optimisation steps over all levels."""
        return sum(iterations for _, iterations in self.levels())

    def weighted(self, content: T, style: T, tv: T) -> tuple[T, T, T]:
        """The loss terms as they enter the total (each times its weight); the total is their sum."""
        return self.content_weight * content, self.style_weight * style, self.tv_weight * tv

    @classmethod
    def knob(cls, name: str) -> Knob:
        return next((m for m in cls.model_fields[name].metadata if isinstance(m, Knob)), Knob())

    @classmethod
    def names(cls, **knob: bool) -> frozenset[str]:
        """The settings whose ``Knob`` has these values, e.g. ``names(pixels=True)``."""
        return frozenset(n for n in cls.model_fields if all(getattr(cls.knob(n), k) == v for k, v in knob.items()))

    def as_cells(self) -> dict[str, str]:
        """Each setting that has a value, as a manifest cell holds it: lists a|b, schedules 180:0.1|400:0.01,
        on/off as true/false."""
        return {key: _cell(value) for key, value in self.model_dump(mode="json").items() if value not in (None, {})}

    def flags(self, base: Settings | None = None) -> str:
        """The command-line flags that make these settings from ``base`` (the defaults): each setting the gallery
        compares by whose cell differs, as ``--name value`` (on/off settings as ``--name`` and ``--no-name``)."""
        before = (base or Settings()).as_cells()
        changed = {k: v for k, v in self.as_cells().items() if before.get(k) != v and self.knob(k).compared}
        return " ".join(_flag(name, value) for name, value in changed.items())

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Settings:
        """Validate ``values`` (strings allowed, blank = default); raise ``SettingsError``."""
        given = {k: v for k, v in values.items() if v is not None and v != ""}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise SettingsError([_problem(err) for err in exc.errors()]) from None


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return "|".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, list):
        return "|".join(map(_cell, value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _flag(name: str, value: str) -> str:
    flag = name.replace("_", "-")
    if value in ("true", "false"):
        return f"--{flag}" if value == "true" else f"--no-{flag}"
    return f"--{flag} {shlex.quote(value)}"


def _problem(err: Any) -> tuple[str, str]:
    name = str(err["loc"][0]) if err["loc"] else "settings"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(name, Settings.model_fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return name, f"unknown setting{hint} Known settings: {', '.join(Settings.model_fields)}"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] != "value_error":
        message += f" (got {err['input']!r})"
    return name, message
