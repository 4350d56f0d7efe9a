"""A swish activation with an adjustable gate, written as any third-party plugin would be."""

import math

from gradient_lab.engine.plugin_api import Activation, Param


class SampleSwishBeta(Activation):
    name = "sample_swish_beta"
    version = "0.1.0"
    params = (
        Param(
            "beta",
            "float",
            1.5,
            "how sharply the gate opens: 0 gives x/2, large values approach ReLU",
            low=0.0,
            high=10.0,
        ),
    )
    formula = (
        r"f(x) = x\,\sigma(\beta x),\quad "
        r"f'(x) = \sigma(\beta x) + \beta x\,\sigma(\beta x)\,(1 - \sigma(\beta x))"
    )
    teaching = (
        "Swish multiplies its input by a sigmoid gate. With beta = 1 it is SiLU; a larger beta "
        "makes the gate switch faster, so the curve looks more and more like a ReLU."
    )

    @staticmethod
    def f(x, a, b):
        z = a * x
        if z >= 0.0:
            s = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        return x * s

    @staticmethod
    def df(x, y, a, b):
        z = a * x
        if z >= 0.0:
            s = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        return s + z * s * (1.0 - s)


PLUGINS = [SampleSwishBeta]
