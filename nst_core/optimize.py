"""Optimisers of the image's pixels, the learning-rate schedule, and the memoised objective."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from nst_core.errors import OptimisationError
from nst_core.losses import LossTerms
from nst_core.settings import Settings

__all__ = ["Objective", "backward_together", "diverged", "lr_at", "make_optimizer"]

LINE_SEARCH_EVALUATIONS = 25  # torch's default for strong Wolfe


def lr_at(iteration: int, lr: float, schedule: dict[int, float]) -> float:
    """The learning rate at ``iteration``: the last schedule step reached, else ``lr``."""
    for start, value in schedule.items():  # sorted by Settings
        if iteration >= start:
            lr = value
    return lr


def make_optimizer(s: Settings, image: Tensor) -> torch.optim.Optimizer:
    if s.optimizer == "adam":
        return torch.optim.Adam([image], lr=s.lr)
    # One L-BFGS iteration per step() so that schedules, logs and snapshots work per iteration; the
    # curvature history persists across calls. The strong-Wolfe line search (as in the reference
    # implementation) keeps the first, badly scaled steps from diverging; no early stopping.
    # max_eval bounds the line search: max_iter=1 alone would leave it no evaluation to backtrack with.
    return torch.optim.LBFGS(
        [image],
        lr=s.lr,
        max_iter=1,
        max_eval=1 + LINE_SEARCH_EVALUATIONS,
        history_size=s.lbfgs_history,
        tolerance_grad=-1,
        tolerance_change=-1,
        line_search_fn="strong_wolfe",
    )


class Objective:
    """The closure optimisers call: loss and gradient at the image's current pixels.

    ``evaluate`` computes them, alone or together with other images (``backward_together``), and
    leaves the point in this objective's memo.

    The optimiser sees the total loss divided by its first value. Optimisers are invariant to that
    scale in exact arithmetic, but with the reference weights a total of ~1e17 is common, and a
    line-search trial point then overflows float32, which breaks L-BFGS's interpolation.

    L-BFGS's line search evaluates trial points and then moves to one of them, so the next step()
    starts by asking for a point already evaluated: the memo of this step's evaluations answers it
    without another forward and backward pass. Adam asks for each point once: without ``memo``
    nothing is copied or compared (on a GPU each comparison would wait for the device).
    """

    def __init__(self, image: Tensor, evaluate: Callable[[], None], memo: bool = True):
        self.image, self.evaluate, self.memo = image, evaluate, memo
        self.evaluations = 0
        self._latest: LossTerms | None = None  # the last point's terms
        self.scale: float | None = None  # 1 / the first total loss
        self.first_terms: LossTerms | None = None  # terms at the point the current step started from
        self._memo: list[tuple[Tensor, Tensor, LossTerms]] = []  # (pixels, gradient, terms)

    def start_step(self) -> None:
        self.first_terms = None

    def __call__(self) -> Tensor:
        terms = self._recall() if self.memo else None
        if terms is None:
            self.evaluate()
            terms = self._recall() if self.memo else self._latest
        if self.first_terms is None:
            self.first_terms = terms
            self._memo = self._memo[-1:]  # a new step: earlier points will not be asked for again
        return terms.total * self.scale

    def scaled(self, total: Tensor) -> Tensor:
        """``total`` divided by the first total this objective saw (which it keeps)."""
        if self.scale is None:
            self.scale = _scale_of(total.item())
        return total * self.scale

    def remember(self, terms: LossTerms) -> None:
        """Keep the current point's terms and gradient (in ``image.grad``) for ``__call__``."""
        self.evaluations += 1
        self._latest = LossTerms(*(t.detach() for t in terms))
        if self.memo:
            self._memo.append((self.image.detach().clone(), self.image.grad, self._latest))

    @property
    def last_point(self) -> tuple[Tensor, Tensor, LossTerms] | None:
        """The last point evaluated (pixels, gradient, terms), where ``memo`` keeps them."""
        return self._memo[-1] if self._memo else None

    def restore(self, scale: float | None, point: tuple[Tensor, Tensor, LossTerms] | None, evaluations: int) -> None:
        """Take up where an objective with these ``scale``, ``last_point`` and ``evaluations`` stopped."""
        self.scale, self.evaluations = scale, evaluations
        self._memo = [point] if point is not None else []
        self._latest = point[2] if point is not None else None

    def _recall(self) -> LossTerms | None:
        for pixels, grad, terms in reversed(self._memo):
            if torch.equal(pixels, self.image):
                self.image.grad = grad.clone()
                return terms
        return None


def backward_together(objectives: Sequence[Objective], terms: Sequence[LossTerms]) -> dict[int, OptimisationError]:
    """One backward pass for several images' loss terms, each total scaled by its objective; each
    objective remembers its point. An image whose first total is not finite gets its error (by
    position) and no gradient; the others are unaffected (the images share no pixels)."""
    scaled, errors = [], {}
    for position, (objective, image_terms) in enumerate(zip(objectives, terms, strict=True)):
        objective.image.grad = None
        try:
            scaled.append(objective.scaled(image_terms.total))
        except OptimisationError as exc:
            errors[position] = exc
    if scaled:
        torch.stack(scaled).sum().backward()
    for position, (objective, image_terms) in enumerate(zip(objectives, terms, strict=True)):
        if position not in errors:
            objective.remember(image_terms)
    return errors


def _scale_of(first_total: float) -> float:
    if not math.isfinite(first_total):
        raise diverged(1, first_total)
    return 1 / max(abs(first_total), 1e-30)


def diverged(iteration: int, total: float) -> OptimisationError:
    return OptimisationError(
        f"the loss became {total} at iteration {iteration}: lower lr, the loss weights or image_size"
    )
