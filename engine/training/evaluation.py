"""Loss and gradient of a session's model at any parameter vector, in evaluation mode.

Instruments (landscapes, curvature, diagnostics) probe the loss away from the training path; they
must neither disturb the session nor depend on minibatches. An ``Evaluator`` holds a fixed data
set (the full training set, or a seeded subsample of stated size) and runs the model at the
probed theta directly: layers are pure, so the session's parameters are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class EvalData:
    """The inputs and encoded targets an instrument evaluates on, and where they came from."""

    x: np.ndarray
    t: np.ndarray
    description: str


def eval_data(session: Any, subsample: int | None = None, seed: int = 0) -> EvalData:
    """The full training set, or ``subsample`` samples of it drawn with ``seed``."""
    x, t = session.x_train, session.targets_train
    n = len(x)
    if subsample is None or subsample >= n:
        return EvalData(x, t, f"full training set ({n} samples)")
    if subsample < 1:
        raise ValueError(f"subsample = {subsample} is not allowed: expected 1 to {n}")
    idx = np.sort(np.random.default_rng(seed).choice(n, subsample, replace=False))
    return EvalData(x[idx], t[idx], f"seeded subsample of {subsample} of {n} samples (seed {seed})")


class Evaluator:
    """Loss and gradient of ``session.loss`` at any theta, on fixed data, in evaluation mode."""

    def __init__(self, session: Any, data: EvalData | None = None) -> None:
        self.session = session
        self.model = session.model
        self.loss_fn = session.loss
        self.data = data or eval_data(session)

    def outputs(self, theta: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        """Model outputs at ``theta``; the layers are pure, so the session is untouched."""
        return self.model.forward(self.data.x if x is None else x, training=False, theta=theta)

    def loss(self, theta: np.ndarray) -> float:
        return float(self.loss_fn.value(self.outputs(theta), self.data.t))

    def loss_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Full-batch loss and its gradient with respect to theta."""
        theta = np.asarray(theta, dtype=self.model.dtype)
        return self.model.loss_gradient(self.data.x, self.loss_fn, self.data.t, theta)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        return self.loss_and_gradient(theta)[1]
