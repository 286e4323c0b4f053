"""Optimising a batch of images together on one device, level by level.

Every image keeps its own targets, loss weights, learning rate, optimiser and memoised objective
(``optimize.Objective``), so it gets the pixels it would get alone; what the images share is the
network's forward and backward passes (``gather.Gatherer``). The images of a batch have the same
tensor shape at every level: nothing is padded. An image that fails (its init image, too small for
the layers, a diverging loss, its ``on_step`` raising) leaves the batch; the others go on.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch
from PIL import Image
from torch import Tensor

from nst_core.backbones import FeatureNet
from nst_core.checkpoints import Checkpoints, TrackState, on_device, to_cpu
from nst_core.device import autocast
from nst_core.gather import Gatherer
from nst_core.levels import (
    Level,
    blend_weights,
    complete_terms,
    finish,
    initial_image,
    level_images,
    level_targets,
    loss_terms,
    upscaled,
)
from nst_core.losses import LossTerms
from nst_core.network import memory_format
from nst_core.optimize import Objective, backward_together, diverged, lr_at, make_optimizer
from nst_core.regions import Masks
from nst_core.results import StepInfo
from nst_core.settings import Settings
from nst_core.temporal import Guide
from nst_core.tiling import Tiler

__all__ = ["Batch", "OnSnapshot", "Track"]

OnSnapshot = Callable[[int, int, Image.Image], None]  # (job index, iteration, image) as each snapshot is taken
Pending = tuple[int, float, float, LossTerms]  # iteration, lr, elapsed, terms on the device


class Track:
    """One image's render in progress, across levels: its inputs, pixels, optimiser, log and snapshots."""

    def __init__(
        self,
        key: int,
        settings: Settings,
        content: Image.Image,
        styles: list[Image.Image],
        guide: Guide | None = None,
        masks: Masks | None = None,
    ):
        self.key, self.s, self.content, self.styles = key, settings, content, styles
        self.guide, self.masks = guide, masks
        self.blend = blend_weights(settings.style_weights, len(styles))
        self.error: Exception | None = None  # why it left the batch
        self.log: list[StepInfo] = []
        self.snapshots: dict[int, Image.Image] = {}
        self.iteration = 0
        self.past_evaluations = 0  # of the levels before this one
        self.pending: list[Pending] = []
        self.image: Tensor | None = None  # the pixels being optimised (a leaf)
        self.level: Level | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.objective: Objective | None = None

    def begin_level(self, level: Level, image: Tensor, request: Callable[[int], None]) -> None:
        """Optimise ``image`` for ``level`` from here on, with a fresh optimiser."""
        self.past_evaluations = self.evaluations
        self.level, self.image = level, image.detach().requires_grad_(True)
        self.optimizer = make_optimizer(self.s, self.image)
        self.objective = Objective(self.image, lambda: request(self.key), memo=self.s.optimizer == "lbfgs")

    def start_step(self) -> float:
        """Count the iteration and set its learning rate; return it."""
        self.iteration += 1
        lr = lr_at(self.iteration, self.s.lr, self.s.lr_schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.objective.start_step()
        return lr

    def step(self) -> None:
        self.optimizer.step(self.objective)

    def state(self) -> TrackState:
        """Its state after its last iteration (its pending log rows recorded), on the CPU."""
        point = self.objective.last_point
        memo = None if point is None else (point[0], point[1], tuple(point[2]))
        return TrackState(
            self.level.number,
            self.iteration,
            to_cpu(self.image),
            to_cpu(self.optimizer.state_dict()),
            self.objective.scale,
            to_cpu(memo),
            self.past_evaluations,
            self.objective.evaluations,
            tuple(self.log),
        )

    def resume(self, level: Level, state: TrackState, request: Callable[[int], None]) -> None:
        """Optimise ``level`` from ``state`` on (its pixels, optimiser, objective, log), as it was saved."""
        device = level.content.device
        self.begin_level(level, state.image.to(device), request)
        self.optimizer.load_state_dict(on_device(state.optimizer, device))
        memo = None if state.memo is None else on_device(state.memo, device)
        point = None if memo is None else (memo[0], memo[1], LossTerms(*memo[2]))
        self.objective.restore(state.scale, point, state.evaluations)
        self.past_evaluations, self.iteration, self.log = state.past_evaluations, state.iteration, list(state.log)

    @property
    def evaluations(self) -> int:
        return self.past_evaluations + (self.objective.evaluations if self.objective is not None else 0)

    @property
    def seen(self) -> Tensor:
        """The pixels that the loss sees (``Level.seen``)."""
        return self.level.seen(self.image)

    @property
    def result(self) -> Image.Image:
        return finish(self.image, self.level, self.s)


class Batch:
    """Runs the levels of a batch of tracks that share ``batch_key`` and shapes, on ``net``."""

    def __init__(
        self,
        net: FeatureNet,
        settings: Settings,
        device: torch.device,
        precision: str,
        on_step: Callable[[int, StepInfo], None] | None,
        on_snapshot: OnSnapshot | None = None,
        checkpoints: Checkpoints | None = None,
    ):
        self.s, self.device, self.precision, self.on_step = settings, device, precision, on_step
        self.on_snapshot, self.checkpoints = on_snapshot, checkpoints
        self.layers = list(dict.fromkeys(settings.content_layers + settings.style_layers))
        self.net, self.memory = net, memory_format(settings, device)  # net: prepared in that format
        self.tiler = Tiler(net, self.layers, settings.tile_size, device, precision) if settings.tile_size else None
        # Reading losses to the host syncs the device: Adam on an accelerator reads them in chunks.
        self.chunk = 10 if settings.optimizer == "adam" and device.type != "cpu" else 1
        self.tracks: dict[int, Track] = {}

    def run(self, tracks: list[Track], states: dict[int, TrackState] | None = None) -> float:
        """Optimise every track through every level (failures end up in ``Track.error``), or from ``states`` (by
        track key: one level and iteration for all) on; return the time taken."""
        start = time.perf_counter()
        self.tracks = {track.key: track for track in tracks}
        states = states or {}
        resumed = {(state.level, state.iteration) for state in states.values()}
        if len(resumed) > 1 or (states and set(states) != set(self.tracks)):
            raise ValueError(f"a batch resumes from one level and iteration for all its images, not {resumed}")
        [(first_level, done)] = resumed or {(1, 0)}
        logged = [state.log[-1].elapsed_s for state in states.values() if state.log]
        start -= max(logged, default=0.0)  # times go on from where the render stopped
        before = 0  # iterations of the levels before this one
        with Gatherer(self._evaluate, len(tracks)) as gather:
            for number, (size, iterations) in enumerate(self.s.levels(), start=1):
                if number >= first_level:
                    for track in self._live():
                        state = states.get(track.key) if number == first_level else None
                        try:
                            self._begin_level(track, (number, iterations), size, gather.request, state)
                        except Exception as exc:
                            track.error = exc
                    for n in range(max(done - before, 0) + 1, iterations + 1):
                        if not self._live():
                            break
                        self._step(gather, start, last=n == iterations)
                before += iterations
        return time.perf_counter() - start

    def _live(self) -> list[Track]:
        return [track for track in self.tracks.values() if track.error is None]

    def _begin_level(
        self,
        track: Track,
        plan: tuple[int, int],
        size: int,
        request: Callable[[int], None],
        state: TrackState | None = None,
    ) -> None:
        content, styles, masks = level_images(track.content, track.styles, size, track.s, track.masks)
        guide = None if track.guide is None else track.guide.at(content.shape[-2:]).to(self.device)
        if state is not None:
            image = state.image.to(self.device)
        elif track.image is not None:
            image = upscaled(track.seen, content.to(self.device))
        elif guide is not None:
            image = guide.start(content.to(self.device))
        else:
            image = initial_image(track.s, content, styles[0]).to(self.device)
        with autocast(self.device, self.precision):
            level = level_targets(
                self.net,
                plan,
                content.to(self.device),
                [s.to(self.device) for s in styles],
                track.blend,
                track.s,
                masks,
                self.tiler,
            )
        level = dataclasses.replace(level, guide=guide)
        if state is not None:
            track.resume(level, dataclasses.replace(state, image=image.contiguous(memory_format=self.memory)), request)
        else:
            track.begin_level(level, image.contiguous(memory_format=self.memory), request)

    def _step(self, gather: Gatherer, start: float, last: bool) -> None:
        """One iteration of every live track: the steps together, then each track's log."""
        live = self._live()
        lrs = {track.key: track.start_step() for track in live}
        errors = gather.step({track.key: track.step for track in live})
        elapsed = time.perf_counter() - start
        for track in live:
            track.error = errors.get(track.key)
            if track.error is not None:
                continue
            track.pending.append((track.iteration, lrs[track.key], elapsed, track.objective.first_terms))
            try:
                if len(track.pending) == self.chunk or last:
                    self._record(track)
                if track.s.snapshot_every and track.iteration % track.s.snapshot_every == 0:
                    self._snapshot(track)
            except Exception as exc:
                track.error = exc
        if self.checkpoints is not None and self.checkpoints.due():
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Hand the live tracks' states to ``checkpoints.save`` (their pending log rows recorded first); what it
        raises (it ends the render: a preemption) becomes every live track's error."""
        states = {}
        for track in self._live():
            try:
                if track.pending:
                    self._record(track)
                states[track.key] = track.state()
            except Exception as exc:
                track.error = exc
        try:
            self.checkpoints.save(states)
        except Exception as exc:
            for track in self._live():
                track.error = exc

    def _snapshot(self, track: Track) -> None:
        """Keep the track's picture at this iteration, and hand it to ``on_snapshot`` at once (a render that is
        stopped or times out later has its snapshots so far)."""
        track.snapshots[track.iteration] = track.result
        if self.on_snapshot is not None:
            self.on_snapshot(track.key, track.iteration, track.snapshots[track.iteration])

    def _evaluate(self, keys: list[int]) -> dict[int, Exception]:
        """Loss terms and gradients of the tracks ``keys`` at their current pixels: one pass through the network."""
        tracks = [self.tracks[key] for key in keys]
        seen = [track.seen for track in tracks]
        x = torch.cat(seen)  # (B, 3, H, W); the gradient flows back to each image
        if self.tiler is not None and self.tiler.splits(x):
            content, style = self.tiler.losses(x, [track.level for track in tracks])
            terms = [complete_terms(t.level, t.s, content[i], style[i], seen[i]) for i, t in enumerate(tracks)]
        else:
            with autocast(self.device, self.precision):
                feats = self.net(x, self.layers)
            # split, not f[i : i + 1]: a slice's backward fills a zero tensor of the whole batch's features
            parts = {name: f.split(1) for name, f in feats.items()}
            terms = [
                loss_terms(t.level, t.s, {name: p[i] for name, p in parts.items()}, seen[i])
                for i, t in enumerate(tracks)
            ]
        errors = backward_together([track.objective for track in tracks], terms)
        return {tracks[position].key: exc for position, exc in errors.items()}

    def _record(self, track: Track) -> None:
        """Copy the track's pending loss terms to the host (one sync), stop on a non-finite loss, report."""
        pending, track.pending = track.pending, []
        rows = torch.stack([torch.stack(terms) for *_, terms in pending]).cpu().tolist()
        steps = []
        for (iteration, lr, elapsed, _), row in zip(pending, rows, strict=True):
            terms = LossTerms(*row)
            if not all(math.isfinite(value) for value in terms):
                raise diverged(iteration, terms.total)
            steps.append(StepInfo(iteration, **terms._asdict(), lr=lr, elapsed_s=elapsed, level=track.level.number))
        track.log += steps
        if self.on_step is not None:
            for step in steps:
                self.on_step(track.key, step)
