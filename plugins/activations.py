"""Built-in activations, written as any third-party plugin would be.

Each gives its scalar function ``f(x, a, b)`` and derivative ``df(x, y, a, b)`` in plain ``math``;
``inline`` tells the engine it may use its own compiled copy of the same formula.
"""

import math

import numpy as np

from gradient_lab.engine.plugin_api import Activation, Param


class Linear(Activation):
    name = "linear"
    inline = "linear"
    formula = r"f(x) = x"
    teaching = "Passes its input through unchanged: a network of linear layers is one linear map."

    @staticmethod
    def f(x, a, b):
        return x

    @staticmethod
    def df(x, y, a, b):
        return 1.0


class Sigmoid(Activation):
    name = "sigmoid"
    inline = "sigmoid"
    output_range = (0.0, 1.0)
    formula = r"\sigma(x) = \frac{1}{1 + e^{-x}}, \quad \sigma'(x) = \sigma(x)(1 - \sigma(x))"
    teaching = (
        "Squashes any number into (0, 1). Its slope is at most 1/4, so gradients shrink through "
        "every sigmoid layer: the classic vanishing-gradient problem."
    )

    @staticmethod
    def f(x, a, b):
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @staticmethod
    def df(x, y, a, b):
        return y * (1.0 - y)


class Tanh(Activation):
    name = "tanh"
    inline = "tanh"
    output_range = (-1.0, 1.0)
    formula = r"\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}, \quad \tanh'(x) = 1 - \tanh^2(x)"
    teaching = "A zero-centred sigmoid with range (-1, 1) and slope 1 at the origin."

    @staticmethod
    def f(x, a, b):
        return math.tanh(x)

    @staticmethod
    def df(x, y, a, b):
        return 1.0 - y * y


class ReLU(Activation):
    name = "relu"
    inline = "relu"
    output_range = (0.0, math.inf)
    kinks = (0.0,)
    formula = r"\mathrm{ReLU}(x) = \max(0, x)"
    teaching = (
        "Keeps positive inputs and zeroes the rest. Cheap and does not saturate for x > 0, but a "
        "unit whose input is always negative gets no gradient: a dead unit."
    )

    @staticmethod
    def f(x, a, b):
        return 0.0 if x <= 0.0 else x  # a NaN input stays NaN, so divergence shows

    @staticmethod
    def df(x, y, a, b):
        return 1.0 if x > 0.0 else 0.0


class LeakyReLU(Activation):
    name = "leaky_relu"
    inline = "leaky_relu"
    kinks = (0.0,)
    params = (Param("negative_slope", "float", 0.01, "slope for x < 0", low=0.0, high=1.0),)
    formula = r"f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}"
    teaching = "A ReLU with a small slope for negative inputs, so no unit dies completely."

    @staticmethod
    def f(x, a, b):
        return x if x > 0.0 else a * x

    @staticmethod
    def df(x, y, a, b):
        return 1.0 if x > 0.0 else a


class ELU(Activation):
    name = "elu"
    inline = "elu"
    kinks = (0.0,)
    params = (
        Param("alpha", "float", 1.0, "value approached for very negative x is -alpha", low=0.0),
    )
    formula = r"f(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}"
    teaching = "Smooth for negative inputs and pushes mean activations towards zero."

    @staticmethod
    def f(x, a, b):
        return x if x > 0.0 else a * math.expm1(x)

    @staticmethod
    def df(x, y, a, b):
        return 1.0 if x > 0.0 else y + a


class GELU(Activation):
    name = "gelu"
    inline = "gelu"
    formula = (
        r"\mathrm{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \mathrm{erf}(x/\sqrt{2})\right)"
    )
    teaching = (
        "Weights its input by the chance a standard normal falls below it; used in transformers."
    )

    @staticmethod
    def f(x, a, b):
        return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))

    @staticmethod
    def df(x, y, a, b):
        cdf = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
        return cdf + x * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


class SiLU(Activation):
    name = "silu"
    inline = "silu"
    formula = r"\mathrm{SiLU}(x) = x\,\sigma(x)"
    teaching = "Also called swish: smooth, non-monotonic near zero, and ReLU-like for large x."

    @staticmethod
    def f(x, a, b):
        if x >= 0.0:
            return x / (1.0 + math.exp(-x))
        e = math.exp(x)
        return x * e / (1.0 + e)

    @staticmethod
    def df(x, y, a, b):
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return s * (1.0 + x * (1.0 - s))


class Softplus(Activation):
    name = "softplus"
    inline = "softplus"
    output_range = (0.0, math.inf)
    params = (
        Param(
            "beta",
            "float",
            1.0,
            "sharpness: larger beta is closer to ReLU",
            low=0.0,
            low_inclusive=False,
        ),
        Param(
            "threshold", "float", 20.0, "above beta*x > threshold the output is x itself", low=0.0
        ),
    )
    formula = r"f(x) = \frac{1}{\beta} \log(1 + e^{\beta x})"
    teaching = "A smooth ReLU; its derivative is the sigmoid of beta*x."

    @staticmethod
    def f(x, a, b):
        if a * x > b:
            return x
        return math.log1p(math.exp(a * x)) / a

    @staticmethod
    def df(x, y, a, b):
        if a * x > b:
            return 1.0
        z = a * x
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


class Softmax(Activation):
    name = "softmax"
    inline = "softmax"
    elementwise = False
    output_range = (0.0, 1.0)
    formula = r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}"
    teaching = (
        "Turns a row of scores into probabilities that sum to 1; with cross-entropy its gradient "
        "is simply p - y."
    )

    def forward_rows(self, z):
        shifted = np.exp(z - z.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def backward_rows(self, z, y, dy):
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


PLUGINS = [Linear, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, GELU, SiLU, Softplus, Softmax]
