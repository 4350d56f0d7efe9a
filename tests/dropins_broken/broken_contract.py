"""Two drop-ins that break the contract: each must be recorded as failed with its reason."""

from gradient_lab.engine.plugin_api import Activation, Param


class FromTheFuture(Activation):
    name = "from_the_future"
    api_version = 99
    formula = r"f(x) = x"
    teaching = "Written for a plugin API this version of Gradient Lab does not know."

    @staticmethod
    def f(x, a, b):
        return x

    @staticmethod
    def df(x, y, a, b):
        return 1.0


class DefaultOutOfRange(Activation):
    name = "default_out_of_range"
    params = (Param("slope", "float", 5.0, "a slope that must lie in [0, 1]", low=0.0, high=1.0),)
    formula = r"f(x) = a x"
    teaching = "Its declared default lies outside its own declared range."

    @staticmethod
    def f(x, a, b):
        return a * x

    @staticmethod
    def df(x, y, a, b):
        return a


PLUGINS = [FromTheFuture, DefaultOutOfRange]
