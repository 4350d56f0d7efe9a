"""The conformance check is sharp: a derivative wrong by one part in 10⁴ fails it, the exact one
passes. (Plugins wrong by a factor of 2 would fail even a checker 10⁴ times looser.)"""

import math

import numpy as np
import pytest

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.plugin_api import Activation, Layer, Loss

REGISTRY = discover(safe_mode=True)
OFF = 1.0 + 1e-4  # the relative error of the nearly right plugins


class ExactSine(Activation):
    name = "exact_sine"
    formula = r"f(x) = \sin x"
    teaching = "The exact derivative."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

    @staticmethod
    def df(x, y, a, b):
        return math.cos(x)


class NearlySine(Activation):
    name = "nearly_sine"
    formula = r"f(x) = \sin x"
    teaching = "Its derivative is 1e-4 too large."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

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

    def forward(self, x, training):
        self.cache = {"x": x}
        return x**3

    def backward(self, dy):
        return self.factor * 3.0 * dy * self.cache["x"] ** 2


class NearlyCube(Cube):
    name = "nearly_cube"
    teaching = "Its backward is 1e-4 too large."
    factor = OFF


def derivative_item(report):
    names = ("derivative", "backward vs finite differences")
    return next(i for i in report.items if i.name in names)


PAIRS = {
    "activation": (ExactSine, NearlySine),
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
