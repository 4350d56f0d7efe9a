"""Loss and gradient of a session's model at any parameter vector, in evaluation mode.

Instruments (landscapes, curvature, diagnostics) probe the loss away from the training path; they
must neither disturb the session nor depend on minibatches. An ``Evaluator`` holds a fixed data
set (the full training set, or a seeded subsample of stated size) and restores the parameters
bit for bit after every probe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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

    @contextmanager
    def at(self, theta: np.ndarray) -> Iterator[None]:
        """Temporarily load ``theta`` (and keep the gradient buffer); restore both exactly."""
        saved_theta = self.model.theta.copy()
        saved_grad = self.model.grad.copy()
        saved_state = {k: v.copy() for k, v in self.model.state_arrays().items()}
        self.model.theta[...] = theta
        try:
            yield
        finally:
            self.model.theta[...] = saved_theta
            self.model.grad[...] = saved_grad
            for key, arr in self.model.state_arrays().items():
                arr[...] = saved_state[key]

    def outputs(self, theta: np.ndarray, x: np.ndarray | None = None) -> np.ndarray:
        with self.at(theta):
            return self.model.forward(self.data.x if x is None else x, training=False)

    def loss(self, theta: np.ndarray) -> float:
        return float(self.loss_fn.value(self.outputs(theta), self.data.t))

    def loss_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Full-batch loss and its gradient with respect to theta."""
        with self.at(theta):
            pred = self.model.forward(self.data.x, training=False)
            value = float(self.loss_fn.value(pred, self.data.t))
            dy = self.loss_fn.grad(pred, self.data.t)
            for k in range(len(self.model.layers) - 1, -1, -1):
                dy = self.model.backward_layer(k, dy)
            return value, self.model.grad.copy()

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        return self.loss_and_gradient(theta)[1]
