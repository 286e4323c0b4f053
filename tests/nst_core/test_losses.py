"""Losses: each term against an independent computation (both normalisations), and the Gram
matrix's hand-written backward."""

from __future__ import annotations

import pytest
import torch

from nst_core.losses import _Gram, content_loss, gram_matrix, layer_weights, style_loss, tv_loss


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def naive_gram(feats: torch.Tensor) -> torch.Tensor:
    _, c, h, w = feats.shape
    f = feats.reshape(c, h * w)
    return torch.mm(f, f.t()) / (c * h * w)


def test_gram_matrix_value() -> None:
    feats = randn(1, 5, 4, 3)
    gram = gram_matrix(feats)
    assert gram.shape == (5, 5)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, naive_gram(feats))
    # element by element, as a sum over positions
    i, j = 1, 3
    expected = (feats[0, i] * feats[0, j]).sum() / feats.numel()
    torch.testing.assert_close(gram[i, j], expected)
    torch.testing.assert_close(gram, gram.T)


def test_gram_matrix_is_float32_for_half_input() -> None:
    feats = randn(1, 4, 3, 3).to(torch.bfloat16)
    gram = gram_matrix(feats)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, naive_gram(feats.float()))


def test_gram_backward_gradcheck() -> None:
    f = randn(3, 5, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(_Gram.apply, (f,))


def test_gram_matrix_gradient_equals_naive_gradient() -> None:
    feats = randn(1, 6, 5, 4, seed=1)
    weights = randn(6, 6, seed=2)  # an asymmetric upstream gradient
    a = feats.clone().requires_grad_(True)
    b = feats.clone().requires_grad_(True)
    (gram_matrix(a) * weights).sum().backward()
    (naive_gram(b) * weights).sum().backward()
    assert a.grad is not None
    assert b.grad is not None
    torch.testing.assert_close(a.grad, b.grad)
    assert a.grad.abs().sum() > 0


def test_gram_matrix_of_channels_last_features() -> None:
    """channels_last features (the CUDA fast path) give the same Gram matrix and gradient, from a view."""
    feats = randn(1, 6, 5, 4, seed=3)
    a = feats.clone().requires_grad_(True)
    b = feats.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert not b.is_contiguous()
    weights = randn(6, 6, seed=4)
    (gram_matrix(a) * weights).sum().backward()
    (gram_matrix(b) * weights).sum().backward()
    torch.testing.assert_close(gram_matrix(b), gram_matrix(a))
    torch.testing.assert_close(b.grad, a.grad)


def test_gram_matrix_takes_one_image() -> None:
    with pytest.raises(ValueError, match=r"one image, \(1, C, H, W\), got \(2, 6, 5, 4\)"):
        gram_matrix(randn(2, 6, 5, 4))


def test_content_loss() -> None:
    feats = {"a": randn(1, 4, 3, 3, seed=1), "b": randn(1, 2, 2, 2, seed=2)}
    targets = {"a": randn(1, 4, 3, 3, seed=3), "b": randn(1, 2, 2, 2, seed=4)}
    weights = {"a": 0.5, "b": 2.0}
    mse = {name: ((feats[name] - targets[name]) ** 2).sum() / feats[name].numel() for name in feats}
    expected = (0.5 * mse["a"] + 2.0 * mse["b"]) / 2
    torch.testing.assert_close(content_loss(feats, targets, weights), expected)
    assert content_loss(targets, targets, weights).item() == 0
    # only the weighted layers count
    torch.testing.assert_close(content_loss(feats, targets, {"a": 1.0}), mse["a"])


def test_style_loss() -> None:
    feats = {"a": randn(1, 4, 3, 3, seed=1), "b": randn(1, 2, 5, 2, seed=2)}
    target_grams = {"a": naive_gram(randn(1, 4, 3, 3, seed=3)), "b": naive_gram(randn(1, 2, 4, 4, seed=4))}
    weights = {"a": 3.0, "b": 0.25}
    terms = [w * ((naive_gram(feats[n]) - target_grams[n]) ** 2).sum() for n, w in weights.items()]
    torch.testing.assert_close(style_loss(feats, target_grams, weights), sum(terms) / len(terms))
    own = {name: naive_gram(value) for name, value in feats.items()}
    assert style_loss(feats, own, weights).item() == pytest.approx(0, abs=1e-12)


def test_style_loss_gradient_flows_to_features() -> None:
    feats = randn(1, 3, 4, 4).requires_grad_(True)
    loss = style_loss({"x": feats}, {"x": torch.zeros(3, 3)}, {"x": 1.0})
    loss.backward()
    assert feats.grad is not None
    # d/dF of sum(G^2) with G = F F^T / N is 4 G F / N (G symmetric)
    f = feats.detach()[0].reshape(3, 16)
    n = f.numel()
    expected = (4 * (f @ f.T / n) @ f / n).reshape(1, 3, 4, 4)
    torch.testing.assert_close(feats.grad, expected)


def test_target_normalised_content_loss_is_the_relative_error() -> None:
    feats = {"a": randn(1, 4, 3, 3, seed=1), "b": 100 * randn(1, 2, 2, 2, seed=2)}
    targets = {"a": randn(1, 4, 3, 3, seed=3), "b": 100 * randn(1, 2, 2, 2, seed=4)}
    weights = layer_weights(["a", "b"], [0.5, 2.0], targets, "target", "content")
    relative = {n: (((feats[n] - targets[n]) ** 2).sum() / (targets[n] ** 2).sum()).item() for n in feats}
    expected = (0.5 * relative["a"] + 2.0 * relative["b"]) / 2
    assert content_loss(feats, targets, weights).item() == pytest.approx(expected, rel=1e-5)
    # the 100x larger layer b does not dominate: its relative error is of the same order as a's
    assert 0.1 < relative["a"] / relative["b"] < 10


def test_target_normalised_style_loss_is_the_relative_error() -> None:
    feats = {"a": randn(1, 4, 3, 3, seed=1), "b": randn(1, 2, 5, 2, seed=2)}
    grams = {"a": naive_gram(randn(1, 4, 6, 6, seed=3)), "b": naive_gram(1e3 * randn(1, 2, 4, 4, seed=4))}
    weights = layer_weights(["a", "b"], [1.0, 3.0], grams, "target", "style")
    relative = [((naive_gram(feats[n]) - grams[n]) ** 2).sum() / (grams[n] ** 2).sum() for n in ("a", "b")]
    expected = (relative[0] + 3 * relative[1]) / 2
    assert style_loss(feats, grams, weights).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reference_normalisation_keeps_the_layer_weights() -> None:
    targets = {"a": randn(1, 4, 3, 3), "b": randn(1, 2, 2, 2)}
    assert layer_weights(["a", "b"], [0.5, 2.0], targets, "reference", "content") == {"a": 0.5, "b": 2.0}


def test_a_zero_target_does_not_divide_by_zero() -> None:
    weights = layer_weights(["a"], [1.0], {"a": torch.zeros(1, 2, 3, 3)}, "target", "content")
    loss = content_loss({"a": torch.ones(1, 2, 3, 3)}, {"a": torch.zeros(1, 2, 3, 3)}, weights)
    assert torch.isfinite(loss)


def test_tv_loss_l1_and_l2() -> None:
    image = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    x = image.double().numpy()[0]
    horizontal = x[:, :, 1:] - x[:, :, :-1]
    vertical = x[:, 1:, :] - x[:, :-1, :]
    assert tv_loss(image, "l1").item() == pytest.approx(abs(horizontal).mean() + abs(vertical).mean(), rel=1e-5)
    assert tv_loss(image, "l2").item() == pytest.approx((horizontal**2).mean() + (vertical**2).mean(), rel=1e-5)
    # the reference: sums on the 0-255 scale
    l1 = 255 * (abs(horizontal).sum() + abs(vertical).sum())
    l2 = 255**2 * ((horizontal**2).sum() + (vertical**2).sum())
    assert tv_loss(image, "l1", "reference").item() == pytest.approx(l1, rel=1e-5)
    assert tv_loss(image, "l2", "reference").item() == pytest.approx(l2, rel=1e-5)


def test_tv_costs_the_same_per_pixel_at_any_size() -> None:
    small, large = (torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(n)) for n in (32, 64))
    for norm in ("l1", "l2"):
        assert tv_loss(large, norm).item() == pytest.approx(tv_loss(small, norm).item(), rel=0.05)
        # the reference's sum grows with the pixel count
        assert tv_loss(large, norm, "reference").item() > 3.5 * tv_loss(small, norm, "reference").item()


def test_tv_loss_of_flat_image_is_zero_and_of_a_step_is_known() -> None:
    flat = torch.full((1, 3, 4, 4), 0.3)
    assert tv_loss(flat, "l1").item() == 0
    assert tv_loss(flat, "l2").item() == 0
    step = torch.zeros(1, 3, 4, 4)
    step[..., 2:] = 1.0  # one vertical edge of height 4 in 3 channels, 255 high
    assert tv_loss(step, "l1", "reference").item() == pytest.approx(3 * 4 * 255)
    assert tv_loss(step, "l2", "reference").item() == pytest.approx(3 * 4 * 255**2)
    # per pixel: 12 of the 36 horizontal differences are 1, none of the vertical ones
    assert tv_loss(step, "l1").item() == pytest.approx(12 / 36)
