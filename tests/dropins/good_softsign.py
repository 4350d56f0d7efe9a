"""A drop-in activation: copy a file like this into the plugins folder and it is loaded."""

from gradient_lab.engine.plugin_api import Activation


class Softsign(Activation):
    name = "softsign"
    output_range = (-1.0, 1.0)
    kinks = (0.0,)  # |x| makes the second derivative jump at 0
    formula = r"f(x) = \frac{x}{1 + |x|},\quad f'(x) = \frac{1}{(1 + |x|)^2}"
    teaching = (
        "Like tanh it squashes into (-1, 1), but its tails approach the limits polynomially, "
        "not exponentially, so it saturates more gently."
    )

    @staticmethod
    def f(x, a, b):
        return x / (1.0 + abs(x))

    @staticmethod
    def df(x, y, a, b):
        d = 1.0 + abs(x)
        return 1.0 / (d * d)


PLUGINS = [Softsign]
