"""The optimiser's objective: L-BFGS's memo of evaluated points, and the scaling of the loss."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nst_core.errors import OptimisationError
from nst_core.losses import LossTerms
from nst_core.optimize import Objective, backward_together


def quadratic(image: torch.Tensor, calls: list[torch.Tensor]) -> LossTerms:
    """total = 3 * sum((x - 1)^2), with the point of each evaluation recorded."""
    calls.append(image.detach().clone())
    content = (image - 1).pow(2).sum()
    zero = torch.zeros(())
    return LossTerms(content, zero, zero, 3 * content, zero)


def alone(image: torch.Tensor, loss_terms: Callable[[], LossTerms]) -> Objective:
    """An objective evaluated on its own (a batch of one)."""

    def evaluate() -> None:
        for error in backward_together([objective], [loss_terms()]).values():
            raise error

    objective = Objective(image, evaluate)
    return objective


def evaluate(objective: Objective, image: torch.Tensor, at: torch.Tensor) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        image.copy_(at)
    value = objective().item()
    return value, image.grad.clone()


def test_a_point_evaluated_in_this_step_is_recalled_with_its_own_gradient() -> None:
    image = torch.zeros(2, 3).requires_grad_(True)
    calls: list[torch.Tensor] = []
    objective = alone(image, lambda: quadratic(image, calls))
    x1, x2 = torch.full((2, 3), 0.5), torch.full((2, 3), 2.0)
    objective.start_step()
    v1, g1 = evaluate(objective, image, x1)
    _, g2 = evaluate(objective, image, x2)
    again, g_again = evaluate(objective, image, x1)

    assert objective.evaluations == len(calls) == 2  # x1 was not evaluated twice
    assert again == v1
    assert torch.equal(g_again, g1)
    assert not torch.equal(g_again, g2)  # not the last gradient computed (x2's)


def test_the_loss_is_divided_by_its_first_value() -> None:
    image = torch.zeros(4).requires_grad_(True)
    objective = alone(image, lambda: quadratic(image, []))
    objective.start_step()
    first, grad = evaluate(objective, image, torch.zeros(4))  # total 12 at x = 0
    assert first == pytest.approx(1.0)
    torch.testing.assert_close(grad, torch.full((4,), -6.0 / 12))  # d/dx 3 (x - 1)^2 = -6 at 0, scaled
    assert objective.first_terms is not None
    assert objective.first_terms.total.item() == pytest.approx(12.0)  # the log keeps the unscaled terms
    later, _ = evaluate(objective, image, torch.full((4,), 0.5))
    assert later == pytest.approx(3.0 / 12)


def test_a_new_step_forgets_points_of_earlier_steps() -> None:
    image = torch.zeros(3).requires_grad_(True)
    calls: list[torch.Tensor] = []
    objective = alone(image, lambda: quadratic(image, calls))
    objective.start_step()
    evaluate(objective, image, torch.zeros(3))
    evaluate(objective, image, torch.ones(3))
    objective.start_step()
    evaluate(objective, image, torch.ones(3))  # where the last step ended: recalled
    evaluate(objective, image, torch.zeros(3))  # an earlier step's point: evaluated again
    assert len(calls) == 3


def test_a_non_finite_first_loss_is_an_optimisation_error() -> None:
    image = torch.zeros(2).requires_grad_(True)
    objective = alone(image, lambda: quadratic(image, [])._replace(total=torch.tensor(float("nan"))))
    objective.start_step()
    with pytest.raises(OptimisationError, match="nan at iteration 1"):
        objective()
