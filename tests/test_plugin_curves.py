"""The plugin manager's curves against closed forms: f, f′ and the finite differences of
activations (tanh, sigmoid, relu away from its kink, softmax through its first output) and the
value and gradient of losses (mse, bce, cross-entropy) against one prediction."""

import numpy as np
import pytest

from gradient_lab.engine.instruments.plugin_curves import (
    KINK_GAP,
    Z_RANGE,
    activation_curves,
    activation_sweep,
    largest_gap,
    loss_curves,
    loss_sweep,
)
from gradient_lab.plugins.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from gradient_lab.plugins.losses import BCE, MSE, CrossEntropy, Hinge
from tests.test_conformance import WrongDerivative

EXACT = 1e-12  # the plugin's own values against the closed form
DIFFERENCES = 1e-7  # a central difference in float64 against the exact slope


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_the_sweep_covers_minus_four_to_four():
    z = activation_sweep()
    assert (z[0], z[-1]) == Z_RANGE == (-4.0, 4.0)
    assert np.all(np.diff(z) > 0)


@pytest.mark.parametrize(
    ("cls", "f", "df"),
    [
        (Tanh, np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
        (Sigmoid, sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z))),
        (Softmax, sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z))),  # softmax([z, 0])_0
    ],
    ids=["tanh", "sigmoid", "softmax"],
)
def test_smooth_activations_match_their_closed_forms(cls, f, df):
    z = activation_sweep()
    curves = activation_curves(cls, z)
    np.testing.assert_allclose(curves.f, f(z), rtol=EXACT, atol=1e-15)
    np.testing.assert_allclose(curves.df, df(z), rtol=EXACT, atol=1e-15)
    np.testing.assert_allclose(curves.df_fd, df(z), rtol=0, atol=DIFFERENCES)
    assert largest_gap(curves.df, curves.df_fd, z) < DIFFERENCES


def test_relu_matches_away_from_its_kink_and_the_gap_leaves_the_kink_out():
    z = np.concatenate([activation_sweep(400), [0.0, 2e-7, -2e-7]])  # the kink and next to it
    f, df, df_fd = activation_curves(ReLU, z)
    np.testing.assert_array_equal(f, np.maximum(z, 0.0))
    np.testing.assert_array_equal(df, (z > 0).astype(float))
    away = np.abs(z) > KINK_GAP
    np.testing.assert_allclose(df_fd[away], (z[away] > 0).astype(float), atol=DIFFERENCES)
    assert np.abs(df_fd[~away] - df[~away]).max() > 0.1  # differences straddle the corner
    assert largest_gap(df, df_fd, z) > 0.1
    assert largest_gap(df, df_fd, z, ReLU.kinks) < DIFFERENCES


def test_hyperparameters_reach_the_plugin():
    z = np.array([-2.0, -0.5, 1.5])
    f, df, _ = activation_curves(LeakyReLU, z, negative_slope=0.25)
    np.testing.assert_allclose(f, [-0.5, -0.125, 1.5])
    np.testing.assert_allclose(df, [0.25, 0.25, 1.0])


def test_a_wrong_derivative_shows_as_a_gap():
    z = activation_sweep()
    curves = activation_curves(WrongDerivative, z)  # claims sin' = sin
    np.testing.assert_allclose(curves.df_fd, np.cos(z), atol=DIFFERENCES)
    assert largest_gap(curves.df, curves.df_fd, z) == pytest.approx(
        np.abs(np.sin(z) - np.cos(z)).max(), rel=1e-6
    )


def test_mse_against_one_prediction():
    pred, target = loss_sweep(MSE)
    assert target.tolist() == [1.0]
    value, grad, grad_fd = loss_curves(MSE, pred, target)
    np.testing.assert_allclose(value, (pred - 1.0) ** 2, rtol=EXACT, atol=1e-15)
    np.testing.assert_allclose(grad, 2.0 * (pred - 1.0), rtol=EXACT, atol=1e-15)
    np.testing.assert_allclose(grad_fd, 2.0 * (pred - 1.0), atol=DIFFERENCES)


@pytest.mark.parametrize("t", [1.0, 0.0, 0.3])
def test_bce_against_one_probability(t):
    pred, _ = loss_sweep(BCE)
    assert pred.min() > 0.0 and pred.max() < 1.0  # probabilities: the log stays finite
    value, grad, grad_fd = loss_curves(BCE, pred, np.array([t]))
    exact = -(t * np.log(pred) + (1.0 - t) * np.log(1.0 - pred))
    slope = (pred - t) / (pred * (1.0 - pred))
    np.testing.assert_allclose(value, exact, rtol=1e-12)
    np.testing.assert_allclose(grad, slope, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_fd, slope, rtol=1e-6, atol=DIFFERENCES)


def test_cross_entropy_moves_the_right_class_s_score():
    """Scores [p, 0] with class 0 right: L = log(1 + e^-p), dL/dp = sigmoid(p) - 1."""
    pred, target = loss_sweep(CrossEntropy)
    assert target.tolist() == [1.0, 0.0]
    value, grad, grad_fd = loss_curves(CrossEntropy, pred, target)
    np.testing.assert_allclose(value, np.log1p(np.exp(-pred)), rtol=1e-12)
    np.testing.assert_allclose(grad, sigmoid(pred) - 1.0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad_fd, sigmoid(pred) - 1.0, atol=DIFFERENCES)


def test_the_loss_sweep_follows_the_target_encoding():
    pred, target = loss_sweep(Hinge)  # plus_minus_one: class 1 is +1
    value, grad, _ = loss_curves(Hinge, pred, target)
    np.testing.assert_allclose(value, np.maximum(0.0, 1.0 - pred))
    np.testing.assert_allclose(grad, np.where(pred < 1.0, -1.0, 0.0))
