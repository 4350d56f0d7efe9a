"""Second derivatives in closed form: f''(z) of the built-in activations (a plugin's own
``d2f``, or differences of its ``df``, otherwise) and d²L/dpred² of the built-in losses."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gradient_lab.engine.compute.array_math import sigmoid, softmax
from gradient_lab.engine.plugin_api import Activation, Loss

# Central-difference step relative to max(1, |theta|): the cube root of float64's epsilon balances
# truncation (step squared) against rounding (epsilon / step).
FD_STEP = 6e-6
Array = np.ndarray
LossHessian = Callable[[Array], Array]


def builtin_second_derivative(name: str, z: Array, y: Array, a: float, b: float) -> Array | None:
    """f''(z) of a built-in activation (by its ``inline`` name), or None for an unknown name.

    ``y = f(z)``; ``a`` and ``b`` are the activation's scalar parameters, as for ``df``."""
    if name in ("linear", "relu", "leaky_relu"):
        return np.zeros_like(z)  # piecewise linear: zero almost everywhere
    if name == "sigmoid":
        return y * (1.0 - y) * (1.0 - 2.0 * y)
    if name == "tanh":
        return -2.0 * y * (1.0 - y * y)
    if name == "elu":
        return np.where(z > 0.0, 0.0, a * np.exp(np.minimum(z, 0.0)))
    if name == "gelu":
        return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * (2.0 - z * z)
    if name == "silu":
        s = sigmoid(z)
        return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    if name == "softplus":
        s = sigmoid(a * z)
        return np.where(a * z > b, 0.0, a * s * (1.0 - s))
    return None


def _first_derivative(act: Activation, z: Array) -> Array:
    return act.gradient(z, act.apply(z), np.ones_like(z))


def second_derivative(act: Activation, z: Array, y: Array) -> Array:
    """f''(z) for any element-wise activation.

    Built-ins use their closed forms; a plugin may define a static ``d2f(x, y, a, b)``; otherwise
    a central difference of the plugin's own ``df`` (error about 1e-10 relative), the best an
    activation that only declares f and f' allows."""
    a, b = act.scalar_args()
    known = builtin_second_derivative(act.inline, z, y, a, b)
    if known is not None:
        return known
    d2f = getattr(type(act), "d2f", None)
    if d2f is not None:
        return np.vectorize(d2f, otypes=[np.float64])(z, y, a, b)
    h = FD_STEP * np.maximum(1.0, np.abs(z))
    up, down = z + h, z - h
    return (_first_derivative(act, up) - _first_derivative(act, down)) / (up - down)


EXACT_LOSSES = frozenset(
    (
        "mse",
        "mae",
        "huber",
        "bce",
        "bce_with_logits",
        "cross_entropy_logits",
        "cross_entropy_probs",
        "hinge",
        "multi_margin",
    )
)


def loss_hessian(loss: Loss, pred: Array, target: Array) -> LossHessian | None:
    """r -> (d²L/dpred²) r for a built-in loss (by ``inline_name``), None for an unknown one.

    PyTorch's ``mean`` reduction: over every element, or over rows for cross-entropy. Losses with
    kinks (mae, hinge, multi_margin) have zero curvature almost everywhere."""
    name = loss.inline_name()
    n, rows = pred.size, len(pred)
    if name == "mse":
        return lambda r: (2.0 / n) * r
    if name in ("mae", "hinge", "multi_margin"):
        return lambda r: np.zeros_like(r)
    weight: Array
    if name == "huber":
        weight = (np.abs(pred - target) < loss.hp["delta"]) / n
    elif name == "bce":
        weight = (target / pred**2 + (1.0 - target) / (1.0 - pred) ** 2) / n
    elif name == "bce_with_logits":
        s = sigmoid(pred)
        weight = s * (1.0 - s) / n
    elif name == "cross_entropy_probs":
        weight = target / pred**2 / rows
    elif name == "cross_entropy_logits":
        return _softmax_cross_entropy_hessian(pred, target)
    else:
        return None
    return lambda r: weight * r


def _softmax_cross_entropy_hessian(logits: Array, target: Array) -> LossHessian:
    """Per row (diag(p) - p pᵀ) times the row's target mass, over the batch size."""
    p = softmax(logits)
    scale = target.sum(axis=-1, keepdims=True) / len(logits)
    return lambda r: scale * p * (r - (p * r).sum(axis=-1, keepdims=True))
