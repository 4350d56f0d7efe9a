"""Regularizers as a chain around the optimizer (optax's ``chain``), not stages of the session.

In front of the optimizer: the penalties' gradients (L1, L2) are added to the gradient, then the
gradient transforms (clipping) rewrite it; behind it, the update transforms (decoupled weight
decay) rewrite the update. The supervised step and every parameter group of an architecture's
own step go through the same chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def chained_update(
    regularizers: Sequence[Any],
    optimizer: Any,
    grad: np.ndarray,
    state: dict[str, np.ndarray],
    theta: np.ndarray,
    mask: np.ndarray,
    lr: float,
    context: Any = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(update, optimizer state, the gradient the optimizer saw) for one step."""
    g = grad
    for reg in regularizers:
        if reg.stage == "loss":
            g = g + reg.penalty_grad(theta, mask)
    for reg in regularizers:
        if reg.stage == "gradient":
            g = reg.transform(g, theta, mask, lr)
    update, state = optimizer.update(g, state, theta, context)
    for reg in regularizers:
        if reg.stage == "update":
            update = reg.transform(update, theta, mask, lr)
    return update, state, g
