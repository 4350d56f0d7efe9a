"""Built-in regularizers: penalties on the loss, decoupled weight decay, and gradient clipping.

``mask`` is 1.0 on weights and 0.0 on biases: the penalties and the decay use it (biases are
usually left free), the clipping rules act on the whole gradient vector as PyTorch's do. Results
keep theta's dtype. ``inline`` names the engine's compiled copy of the same rule.
"""

from typing import Any

import numpy as np

from gradient_lab.engine.plugin_api import Param, Regularizer


def _strength(help_text: str) -> Param:
    return Param("strength", "float", 1e-4, help_text, low=0.0)


class L1(Regularizer):
    name = "l1"
    inline = "l1"
    stage = "loss"
    params = (_strength("weight of the penalty λ·Σ|w|"),)
    formula = (
        r"\Omega(\theta) = \lambda \sum_i |w_i|,\quad \nabla\Omega = \lambda\,\mathrm{sign}(w)"
    )
    teaching = (
        "Adds the sum of absolute weights to the loss. Its pull towards zero has the same size "
        "for every weight, so small weights end up exactly at zero: sparse networks."
    )

    def penalty(self, theta: np.ndarray, mask: np.ndarray) -> float:
        return self.hp["strength"] * float(np.sum(np.abs(theta * mask)))

    def penalty_grad(self, theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (self.hp["strength"] * np.sign(theta) * mask).astype(theta.dtype, copy=False)


class L2(Regularizer):
    name = "l2"
    inline = "l2"
    stage = "loss"
    params = (_strength("weight of the penalty λ·Σw²"),)
    formula = r"\Omega(\theta) = \lambda \sum_i w_i^2,\quad \nabla\Omega = 2\lambda w"
    teaching = (
        "Adds the sum of squared weights to the loss. Its pull is proportional to each weight, so "
        "large weights shrink fast and small ones barely: smooth, small-weight solutions."
    )

    def penalty(self, theta: np.ndarray, mask: np.ndarray) -> float:
        w = theta * mask
        return self.hp["strength"] * float(np.sum(w * w))

    def penalty_grad(self, theta: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (2.0 * self.hp["strength"] * theta * mask).astype(theta.dtype, copy=False)


class WeightDecay(Regularizer):
    name = "weight_decay"
    inline = "weight_decay"
    stage = "update"
    params = (
        Param("decay", "float", 1e-4, "fraction of each weight removed per unit of lr", low=0.0),
    )
    formula = r"\Delta\theta \leftarrow \Delta\theta - \eta\,\lambda\,w"
    teaching = (
        "Decoupled weight decay: after the optimizer has chosen its step, every weight is shrunk "
        "a little towards zero. Unlike an L2 penalty it is not rescaled by adaptive optimizers."
    )

    def transform(
        self, vec: np.ndarray, theta: np.ndarray, mask: np.ndarray, lr: float
    ) -> np.ndarray:
        return (vec - lr * self.hp["decay"] * theta * mask).astype(vec.dtype, copy=False)


class ClipNorm(Regularizer):
    name = "clip_norm"
    inline = "clip_norm"
    stage = "gradient"
    params = (
        Param("max_norm", "float", 1.0, "largest allowed norm of the whole gradient", low=0.0),
        Param(
            "norm_type",
            "float",
            2.0,
            "which p-norm measures the gradient (2 = Euclidean length)",
            low=0.0,
            low_inclusive=False,
        ),
    )
    formula = r"g \leftarrow g \cdot \min\left(1, \frac{c}{\lVert g \rVert_p + 10^{-6}}\right)"
    teaching = (
        "If the whole gradient is longer than max_norm, shrink it to that length without turning "
        "it: the direction is kept, only runaway step sizes are cut (common for RNNs)."
    )

    def __init__(self, **hp: Any) -> None:
        super().__init__(**hp)
        if self.hp["norm_type"] != 2.0:
            self.inline = ""  # the compiled copy measures the Euclidean norm only

    def transform(
        self, vec: np.ndarray, theta: np.ndarray, mask: np.ndarray, lr: float
    ) -> np.ndarray:
        total = _p_norm(vec, self.hp["norm_type"])
        scale = self.hp["max_norm"] / (total + 1e-6)
        if scale < 1.0:
            return (vec * scale).astype(vec.dtype, copy=False)
        return vec.copy()


def _p_norm(vec: np.ndarray, p: float) -> float:
    """(Σ|g|^p)^(1/p), in float64 so float32 gradients cannot overflow on the way."""
    v = np.abs(np.asarray(vec, dtype=np.float64))
    if p == 2.0:
        return float(np.sqrt(np.dot(v, v)))
    return float(np.sum(v**p) ** (1.0 / p))


class ClipValue(Regularizer):
    name = "clip_value"
    inline = "clip_value"
    stage = "gradient"
    params = (Param("clip_value", "float", 1.0, "each gradient entry is cut to [-v, v]", low=0.0),)
    formula = r"g_i \leftarrow \min(\max(g_i, -v), v)"
    teaching = (
        "Cut every gradient entry to the range [-v, v]. Simple and robust, but unlike norm "
        "clipping it can change the direction of the step."
    )

    def transform(
        self, vec: np.ndarray, theta: np.ndarray, mask: np.ndarray, lr: float
    ) -> np.ndarray:
        v = self.hp["clip_value"]
        return np.clip(vec, -v, v)


PLUGINS = [L1, L2, WeightDecay, ClipNorm, ClipValue]
