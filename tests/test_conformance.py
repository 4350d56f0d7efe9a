"""The conformance check: every discovered plugin passes it, and broken plugins fail it."""

import math

import numpy as np
import pytest

from gradient_lab.engine.loading.conformance import CheckReport, check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.plugin_api import Activation, Layer, Loss, Optimizer, Param

pytest_plugins = ["gradient_lab.engine.testing"]

REGISTRY = discover(safe_mode=True)
SINE = "sin"  # looked up by name at run time: plain Python, but nothing Numba can compile


def record_id(record) -> str:
    return f"{record.kind}:{record.name}"


def item(report: CheckReport, name: str):
    found = [i for i in report.items if i.name == name]
    assert found, f"no item {name!r} in {[i.name for i in report.items]}"
    return found[0]


@pytest.mark.parametrize("record", REGISTRY.records, ids=record_id)
def test_discovered_plugin_conforms(record):
    assert record.ok, f"{record.kind} {record.name} did not load: {record.error}"
    report = check_plugin(record.cls, REGISTRY)
    if not report.passed:
        pytest.fail(report.describe(only_failures=True), pytrace=False)


def test_residual_block_passes_conformance():
    cls = REGISTRY.get("layer", "residual")
    report = check_plugin(cls, REGISTRY)
    assert report.passed, report.describe(only_failures=True)
    assert item(report, "backward vs finite differences").passed
    assert "4 weight gradients" in item(report, "backward vs finite differences").message


# ---------------------------------------------------------------------------- broken plugins


class WrongDerivative(Activation):
    name = "wrong_derivative"
    formula = r"f(x) = \sin x"
    teaching = "Claims the derivative of sin is sin."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

    @staticmethod
    def df(x, y, a, b):
        return math.sin(x)


class LyingTanh(Activation):
    name = "lying_tanh"
    inline = "tanh"
    formula = r"f(x) = \sin x"
    teaching = "Computes sin but asks the engine for its tanh fast path."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

    @staticmethod
    def df(x, y, a, b):
        return math.cos(x)


class NotCompilable(Activation):
    name = "not_compilable"
    formula = r"f(x) = \sin x"
    teaching = "Correct in Python, but Numba cannot compile getattr."

    @staticmethod
    def f(x, a, b):
        return getattr(math, SINE)(x)

    @staticmethod
    def df(x, y, a, b):
        return math.cos(x)


class GoodSine(Activation):
    name = "good_sine"
    formula = r"f(x) = \sin x"
    teaching = "A correct plugin, to show the fixture passes."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

    @staticmethod
    def df(x, y, a, b):
        return math.cos(x)


class HalfGradientMSE(Loss):
    name = "half_gradient_mse"
    formula = r"L = \frac{1}{N}\sum (p - t)^2"
    teaching = "Forgets the factor 2 in its gradient."

    def value(self, pred, target):
        return float(np.mean((pred - target) ** 2))

    def grad(self, pred, target):
        return (pred - target) / pred.size


class Ascent(Optimizer):
    name = "ascent"
    params = (Param("lr", "float", 0.01, "step size", low=0.0),)
    formula = r"\theta \leftarrow \theta + \eta g"
    teaching = "Walks uphill."

    def init(self, theta):
        return {"step": np.zeros(1)}

    def update(self, grad, state, theta, ctx=None):
        state["step"][0] += 1.0
        return self.hp["lr"] * grad, state


class WrongSquare(Layer):
    name = "wrong_square"
    formula = r"y = x^2"
    teaching = "Forgets the factor 2 in its backward."

    def forward(self, ctx, p, x):
        ctx.save(x=x)
        return x * x

    def backward(self, ctx, p, dy):
        return dy * ctx.saved["x"], {}


class ExplodingLayer(Layer):
    name = "exploding"
    formula = r"y = x"
    teaching = "Raises inside forward."

    def forward(self, ctx, p, x):
        raise ZeroDivisionError("boom")


class InvalidDefault(Activation):
    name = "invalid_default"
    params = (Param("slope", "float", 5.0, "must lie in [0, 1]", low=0.0, high=1.0),)
    formula = r"f(x) = a x"
    teaching = "Its default lies outside its own range."

    @staticmethod
    def f(x, a, b):
        return a * x

    @staticmethod
    def df(x, y, a, b):
        return a


def test_wrong_activation_derivative_fails():
    report = check_plugin(WrongDerivative, REGISTRY)
    assert not report.passed
    assert not item(report, "derivative").passed
    assert item(report, "jit compile").passed


def test_activation_numba_cannot_compile_fails_jit():
    report = check_plugin(NotCompilable, REGISTRY)
    assert item(report, "derivative").passed
    failed = item(report, "jit compile")
    assert not failed.passed and failed.message.startswith("TypingError: ")
    assert "\x1b" not in failed.message


def test_inline_claim_that_computes_something_else_fails():
    report = check_plugin(LyingTanh, REGISTRY)
    assert item(report, "derivative").passed
    failed = item(report, "inline agrees")
    assert not failed.passed and "tanh" in failed.message


def test_wrong_loss_gradient_fails():
    report = check_plugin(HalfGradientMSE, REGISTRY)
    assert not item(report, "derivative").passed
    assert item(report, "contract").passed


def test_optimizer_that_climbs_fails():
    report = check_plugin(Ascent, REGISTRY)
    failed = item(report, "decreases a quadratic")
    assert not failed.passed and "lr = 0.1" in failed.message
    assert item(report, "state is arrays").passed


def test_wrong_layer_backward_fails():
    report = check_plugin(WrongSquare, REGISTRY)
    assert item(report, "output shape").passed
    failed = item(report, "backward vs finite differences")
    assert not failed.passed and "dL/dx" in failed.message


def test_exception_inside_a_check_becomes_a_failed_item():
    report = check_plugin(ExplodingLayer, REGISTRY)
    failed = item(report, "output shape")
    assert not failed.passed
    assert failed.message == "ZeroDivisionError: boom"
    assert item(report, "contract").passed


def test_invalid_default_fails_contract_and_parameters():
    report = check_plugin(InvalidDefault, REGISTRY)
    assert not item(report, "contract").passed
    assert "slope" in item(report, "parameters").message
    assert not item(report, "parameters").passed
    assert all("\n" not in i.message for i in report.items)


def test_not_a_plugin_is_reported_not_raised():
    report = check_plugin(object, REGISTRY)
    assert not report.passed
    assert not item(report, "contract").passed


# ------------------------------------------------------------------------ the pytest fixture


def test_fixture_passes_a_good_plugin(plugin_check):
    report = plugin_check(GoodSine)
    assert report.passed


def test_fixture_fails_with_the_failed_items(plugin_check):
    with pytest.raises(pytest.fail.Exception, match="derivative"):
        plugin_check(WrongDerivative)
