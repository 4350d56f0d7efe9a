"""The conformance check is sharp: a derivative wrong by one part in 10⁴ fails it, the exact one
passes. (Plugins wrong by a factor of 2 would fail even a checker 10⁴ times looser.)"""

import math

import numpy as np
import pytest

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.plugin_api import Layer, Loss, Param
from gradient_lab.plugins.optimizers import Adam
from tests.test_conformance import GoodSine

REGISTRY = discover(safe_mode=True)
OFF = 1.0 + 1e-4  # the relative error of the nearly right plugins


class NearlySine(GoodSine):
    name = "nearly_sine"
    teaching = "Its derivative is 1e-4 too large."

    @staticmethod
    def df(x, y, a, b):
        return math.cos(x) * 1.0001


class SquaredError(Loss):
    name = "exact_squared_error"
    formula = r"L = \frac{1}{N}\sum (p - t)^2"
    teaching = "The exact gradient."
    factor = 1.0

    def value(self, pred, target):
        return float(np.mean((pred - target) ** 2))

    def grad(self, pred, target):
        return self.factor * 2.0 * (pred - target) / pred.size


class NearlySquaredError(SquaredError):
    name = "nearly_squared_error"
    teaching = "Its gradient is 1e-4 too large."
    factor = OFF


class Cube(Layer):
    name = "exact_cube"
    formula = r"y = x^3"
    teaching = "The exact backward."
    factor = 1.0

    def forward(self, ctx, p, x):
        ctx.save(x=x)
        return x**3

    def backward(self, ctx, p, dy):
        return self.factor * 3.0 * dy * ctx.saved["x"] ** 2, {}


class NearlyCube(Cube):
    name = "nearly_cube"
    teaching = "Its backward is 1e-4 too large."
    factor = OFF


def derivative_item(report):
    names = ("derivative", "backward vs finite differences")
    return next(i for i in report.items if i.name in names)


PAIRS = {
    "activation": (GoodSine, NearlySine),
    "loss": (SquaredError, NearlySquaredError),
    "layer": (Cube, NearlyCube),
}


@pytest.mark.parametrize("exact, nearly", PAIRS.values(), ids=PAIRS.keys())
def test_a_derivative_wrong_by_1e_4_fails_and_the_exact_one_passes(exact, nearly):
    good = check_plugin(exact, REGISTRY)
    assert good.passed, good.describe(only_failures=True)
    assert derivative_item(good).passed
    bad = check_plugin(nearly, REGISTRY)
    assert not derivative_item(bad).passed
    assert not bad.passed


# ----------------------------------------------------------- bugs only some inputs reveal


class AdamThatForgetsItsMoments(Adam):
    """Claims the engine's Adam fast path, but from the second step on drops the moments it
    kept (a state bug one step of comparison would never see)."""

    name = "adam_that_forgets"

    def update(self, grad, state, theta, ctx=None):
        if state["step"][0] >= 1:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key][...] = 0.0
        return super().update(grad, state, theta, ctx)


class WrongWhileTraining(Layer):
    """y = 2x while training and x at evaluation; its training backward forgets the 2."""

    name = "wrong_while_training"
    formula = r"y = 2x \text{ (training)}, \quad y = x \text{ (evaluation)}"
    teaching = "Right at evaluation, wrong while training."

    def forward(self, ctx, p, x):
        return 2.0 * x if ctx.training else x

    def backward(self, ctx, p, dy):
        return dy, {}


class NaNDerivative(GoodSine):
    name = "nan_derivative"
    teaching = "Its derivative is not a number."

    @staticmethod
    def df(x, y, a, b):
        return math.nan


def item_named(report, name):
    return next(i for i in report.items if i.name == name)


def test_an_optimizer_fast_path_is_compared_over_many_steps():
    report = check_plugin(AdamThatForgetsItsMoments, REGISTRY)
    assert not item_named(report, "inline agrees").passed


def test_a_layer_is_checked_in_training_mode_too():
    report = check_plugin(WrongWhileTraining, REGISTRY)
    failed = item_named(report, "backward vs finite differences")
    assert not failed.passed and "dL/dx" in failed.message


def test_nan_never_passes_a_comparison():
    report = check_plugin(NaNDerivative, REGISTRY)
    assert not item_named(report, "derivative").passed


class HingeWithFixedMargin(Loss):
    """Hinge loss whose gradient assumes margin 1 whatever the margin: right at the default."""

    name = "hinge_fixed_margin"
    params = (Param("margin", "float", 1.0, "the margin", low=0.0),)
    target_encoding = "plus_minus_one"
    formula = r"L = \frac{1}{N}\sum \max(0, m - t p)"
    teaching = "Its gradient ignores the margin."

    def value(self, pred, target):
        return float(np.mean(np.maximum(0.0, self.hp["margin"] - target * pred)))

    def grad(self, pred, target):
        return np.where(1.0 - target * pred > 0, -target, 0.0) / pred.size


def test_a_gradient_that_ignores_a_parameter_fails_away_from_its_default():
    report = check_plugin(HingeWithFixedMargin, REGISTRY)
    failed = item_named(report, "derivative")
    assert not failed.passed and "margin = 1.5" in failed.message
