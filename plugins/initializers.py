"""Built-in weight initializers.

``sample(shape, fan_in, fan_out, rng)`` returns a float64 array drawn only from the session's
seeded generator, so the same seed always gives the same network. The scaled schemes (Xavier/Glorot,
He/Kaiming, LeCun) choose the spread from the layer's fan-in and fan-out so that signals neither
explode nor vanish as they pass through many layers.
"""

import math
from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import Initializer, Param, PluginError

Shape = tuple[int, ...]


def _gain(default: float, help_text: str = "multiplies the spread") -> Param:
    return Param("gain", "float", default, help_text, low=0.0)


def _positive_fan(value: int, what: str, name: str) -> int:
    """Fan-scaled schemes divide by the fan; a zero fan means the layer has no inputs."""
    if value < 1:
        raise PluginError(f"{name} needs {what} >= 1, got {value}")
    return int(value)


class Zeros(Initializer):
    name = "zeros"
    formula = r"W = 0"
    teaching = (
        "Every weight starts at zero. Fine for biases, but for weights every unit in a layer then "
        "computes the same thing and gets the same gradient, so they never become different."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        return np.zeros(shape)


class Constant(Initializer):
    name = "constant"
    params = (
        Param("value", "float", 0.0, "the value every weight starts at (default 0, like zeros)"),
    )
    formula = r"W = c"
    teaching = (
        "Every weight starts at the same value c (0 by default; a small positive value such as "
        "0.1 is sometimes used for biases before ReLU). Like zeros, it cannot break symmetry."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        return np.full(shape, self.hp["value"], dtype=np.float64)


class Uniform(Initializer):
    name = "uniform"
    params = (
        Param("low", "float", -0.05, "smallest possible value"),
        Param("high", "float", 0.05, "largest possible value"),
    )
    formula = r"W_{ij} \sim \mathcal{U}(a, b)"
    teaching = (
        "Weights drawn evenly from a fixed interval. Small random values break symmetry, but the "
        "right interval depends on the layer's width, which the scaled schemes take into account."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        if self.hp["low"] > self.hp["high"]:
            raise PluginError(f"uniform: low = {self.hp['low']} is above high = {self.hp['high']}")

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.uniform(self.hp["low"], self.hp["high"], size=shape)


class Normal(Initializer):
    name = "normal"
    params = (
        Param("mean", "float", 0.0, "centre of the bell curve"),
        Param("std", "float", 0.05, "standard deviation (spread)", low=0.0),
    )
    formula = r"W_{ij} \sim \mathcal{N}(\mu, \sigma^2)"
    teaching = (
        "Weights drawn from a bell curve with a fixed spread. Too large and activations blow up "
        "layer after layer; too small and they fade away."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.normal(self.hp["mean"], self.hp["std"], size=shape)


class XavierUniform(Initializer):
    name = "xavier_uniform"
    params = (_gain(1.0),)
    formula = r"W_{ij} \sim \mathcal{U}(-a, a),\quad a = g\sqrt{\frac{6}{n_{in} + n_{out}}}"
    teaching = (
        "Glorot and Bengio's rule: scale by both fan-in and fan-out so the variance of signals "
        "forward and of gradients backward stays about the same. Suits tanh and sigmoid."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        fans = _positive_fan(fan_in + fan_out, "fan_in + fan_out", self.name)
        bound = self.hp["gain"] * math.sqrt(6.0 / fans)
        return rng.uniform(-bound, bound, size=shape)


class XavierNormal(Initializer):
    name = "xavier_normal"
    params = (_gain(1.0),)
    formula = (
        r"W_{ij} \sim \mathcal{N}(0, \sigma^2),\quad \sigma = g\sqrt{\frac{2}{n_{in} + n_{out}}}"
    )
    teaching = (
        "Glorot and Bengio's rule with a bell curve: the same variance 2/(fan-in + fan-out) as "
        "Xavier uniform, so signals keep their size in both directions."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        fans = _positive_fan(fan_in + fan_out, "fan_in + fan_out", self.name)
        return rng.normal(0.0, self.hp["gain"] * math.sqrt(2.0 / fans), size=shape)


class HeUniform(Initializer):
    name = "he_uniform"
    params = (_gain(math.sqrt(2.0), "multiplies the spread; √2 suits ReLU"),)
    formula = r"W_{ij} \sim \mathcal{U}(-a, a),\quad a = g\sqrt{\frac{3}{n_{in}}},\ g = \sqrt{2}"
    teaching = (
        "He (Kaiming) initialization: ReLU zeroes half of its inputs, so the variance is doubled "
        "to 2/fan-in to keep signals from shrinking layer after layer."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        fan = _positive_fan(fan_in, "fan_in", self.name)
        bound = self.hp["gain"] * math.sqrt(3.0 / fan)
        return rng.uniform(-bound, bound, size=shape)


class HeNormal(Initializer):
    name = "he_normal"
    params = (_gain(math.sqrt(2.0), "multiplies the spread; √2 suits ReLU"),)
    formula = (
        r"W_{ij} \sim \mathcal{N}(0, \sigma^2),\quad \sigma = \frac{g}{\sqrt{n_{in}}},\ g = \sqrt2"
    )
    teaching = (
        "He (Kaiming) initialization with a plain (untruncated) bell curve of variance 2/fan-in, "
        "made for ReLU networks."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        fan = _positive_fan(fan_in, "fan_in", self.name)
        return rng.normal(0.0, self.hp["gain"] / math.sqrt(fan), size=shape)


class LecunNormal(Initializer):
    name = "lecun_normal"
    formula = r"W_{ij} \sim \mathcal{N}(0, \sigma^2),\quad \sigma = \frac{1}{\sqrt{n_{in}}}"
    teaching = (
        "LeCun's 1998 rule: variance 1/fan-in keeps each unit's weighted sum at unit variance. "
        "This is the plain normal of the paper, not the truncated normal some libraries use."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        fan = _positive_fan(fan_in, "fan_in", self.name)
        return rng.normal(0.0, 1.0 / math.sqrt(fan), size=shape)


class Orthogonal(Initializer):
    name = "orthogonal"
    params = (_gain(1.0),)
    formula = (
        r"W = g\,Q\,\mathrm{sign}(\mathrm{diag}\,R),\quad A = QR,\ A_{ij} \sim \mathcal{N}(0, 1)"
    )
    teaching = (
        "An orthogonal matrix keeps the length of every vector it multiplies, so signals and "
        "gradients neither grow nor shrink through a linear layer; it is drawn uniformly at "
        "random via a QR decomposition."
    )

    def sample(
        self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Like torch's orthogonal_, the weight is seen as (shape[0], everything else); a 1-D
        shape is taken as one row, which comes out as a random unit vector times gain."""
        shape = tuple(int(n) for n in shape)
        rows = shape[0] if len(shape) >= 2 else 1
        cols = math.prod(shape) // rows if rows else 0
        if rows * cols == 0:
            return np.zeros(shape)
        return self.hp["gain"] * _orthogonal(rows, cols, rng).reshape(shape)


def _orthogonal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (tall) or rows (wide).

    The QR factors are made unique by giving R a positive diagonal; without that sign fix the
    result would not be uniformly distributed over orthogonal matrices."""
    tall = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(tall)
    q *= np.where(np.diag(r) < 0.0, -1.0, 1.0)
    return q if rows >= cols else q.T


PLUGINS = [
    Zeros,
    Constant,
    Uniform,
    Normal,
    XavierUniform,
    XavierNormal,
    HeUniform,
    HeNormal,
    LecunNormal,
    Orthogonal,
]
