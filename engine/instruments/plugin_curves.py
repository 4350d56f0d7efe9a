"""What a plugin's curve shows: an activation's f and f′ over z, or a loss's value and gradient
against one prediction, each beside a central-difference estimate of the derivative.

The plugin manager draws these for a student checking a plugin they wrote: the two slopes lie
on each other exactly when the derivative is right. Everything is in float64; the values come
from the plugin's ``apply``/``gradient`` (the compiled path training uses) and ``value``/``grad``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from gradient_lab.engine.compute import activations as _compiled  # noqa: F401  (registers them)

Z_RANGE = (-4.0, 4.0)
POINTS = 401
STEP = 1e-6  # relative step of the central differences
KINK_GAP = 1e-3  # points this close to a declared kink are left out of the gap


class ActivationCurves(NamedTuple):
    f: np.ndarray
    df: np.ndarray
    df_fd: np.ndarray


class LossCurves(NamedTuple):
    value: np.ndarray  # L(pred_i, target) for each swept prediction
    grad: np.ndarray  # dL/dpred of the swept output
    grad_fd: np.ndarray  # its central-difference estimate


def activation_sweep(points: int = POINTS) -> np.ndarray:
    """The z at which an activation is drawn: evenly over Z_RANGE."""
    return np.linspace(*Z_RANGE, points)


def _step(x: np.ndarray) -> np.ndarray:
    return STEP * np.maximum(1.0, np.abs(x))


def activation_curves(cls: Any, z: np.ndarray, **hp: Any) -> ActivationCurves:
    """f(z), f′(z) from the plugin's gradient, and (f(z+h) − f(z−h)) / 2h.

    A row-wise activation (softmax) is drawn through its first output on the row [z, 0]."""
    act = cls(**hp)
    z = np.asarray(z, dtype=np.float64)
    h = _step(z)
    if act.elementwise:
        f = np.asarray(act.apply(z), dtype=np.float64)
        df = np.asarray(act.gradient(z, f, np.ones_like(z)), dtype=np.float64)
        ahead, behind = act.apply(z + h), act.apply(z - h)
    else:
        rows = np.stack([z, np.zeros_like(z)], axis=-1)
        y = act.forward_rows(rows)
        f = np.asarray(y[:, 0], dtype=np.float64)
        first = np.zeros_like(rows)
        first[:, 0] = 1.0
        df = np.asarray(act.backward_rows(rows, y, first)[:, 0], dtype=np.float64)
        moved = np.zeros_like(rows)
        moved[:, 0] = h
        ahead, behind = act.forward_rows(rows + moved)[:, 0], act.forward_rows(rows - moved)[:, 0]
    df_fd = (np.asarray(ahead, dtype=np.float64) - np.asarray(behind, dtype=np.float64)) / (2 * h)
    return ActivationCurves(f, df, df_fd)


def loss_sweep(cls: Any) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, target) worth drawing a loss over, from the targets it expects: the swept
    output's prediction and one sample's target (the loss's own encoding of class 1)."""
    if cls.target_encoding == "one_hot":
        return np.linspace(-4.0, 4.0, POINTS), np.array([1.0, 0.0])
    if cls.target_encoding == "zero_one" and not cls.takes_logits:
        return np.linspace(0.05, 0.95, POINTS), np.array([1.0])  # probabilities
    if cls.target_encoding == "zero_one":
        return np.linspace(-4.0, 4.0, POINTS), np.array([1.0])  # logits
    return np.linspace(-3.0, 3.0, POINTS), np.array([1.0])


def loss_curves(cls: Any, pred: np.ndarray, target: np.ndarray, **hp: Any) -> LossCurves:
    """The loss of one sample as its first output's prediction moves over ``pred`` (its other
    outputs 0), with ``target`` its target row, and the gradient against that prediction."""
    loss = cls(**hp)
    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.atleast_1d(np.asarray(target, dtype=np.float64)).reshape(1, -1)
    value, grad, grad_fd = (np.empty_like(pred) for _ in range(3))
    for i, p in enumerate(pred):
        row = np.zeros_like(target)
        row[0, 0] = p
        h = STEP * max(1.0, abs(p))
        value[i] = loss.value(row, target)
        grad[i] = np.asarray(loss.grad(row, target), dtype=np.float64)[0, 0]
        ahead, behind = row.copy(), row.copy()
        ahead[0, 0] += h
        behind[0, 0] -= h
        grad_fd[i] = (loss.value(ahead, target) - loss.value(behind, target)) / (2 * h)
    return LossCurves(value, grad, grad_fd)


def largest_gap(
    exact: np.ndarray, estimate: np.ndarray, x: np.ndarray, kinks: tuple[float, ...] = ()
) -> float:
    """max |exact − estimate| over the points not within KINK_GAP of a kink (where a central
    difference straddles the corner and disagrees with any derivative); nan when none is left."""
    x = np.asarray(x, dtype=np.float64)
    keep = np.ones(x.shape, dtype=bool)
    for kink in kinks:
        keep &= np.abs(x - kink) > KINK_GAP
    gaps = np.abs(np.asarray(exact) - np.asarray(estimate))[keep]
    return float(gaps.max()) if gaps.size else float("nan")
