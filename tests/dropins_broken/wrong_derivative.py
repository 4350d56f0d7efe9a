"""A drop-in that keeps the contract but fails its check: its derivative is wrong."""

import math

from gradient_lab.engine.plugin_api import Activation


class WrongSlope(Activation):
    name = "wrong_slope"
    formula = r"f(x) = \sin x"
    teaching = "Claims the derivative of sin is sin: the conformance check catches it."

    @staticmethod
    def f(x, a, b):
        return math.sin(x)

    @staticmethod
    def df(x, y, a, b):
        return math.sin(x)


PLUGINS = [WrongSlope]
