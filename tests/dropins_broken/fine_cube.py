"""A valid drop-in next to broken ones: it must load although its neighbours fail."""

from gradient_lab.engine.plugin_api import Activation


class FineCube(Activation):
    name = "fine_cube"
    formula = r"f(x) = \frac{x^3}{3},\quad f'(x) = x^2"
    teaching = "Flat near zero and steep far away: its slope is the square of its input."

    @staticmethod
    def f(x, a, b):
        return x * x * x / 3.0

    @staticmethod
    def df(x, y, a, b):
        return x * x


PLUGINS = [FineCube]
