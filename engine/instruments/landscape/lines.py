"""1D landscapes: the loss along the segment between two states or along one direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradient_lab.engine.instruments.landscape.grid import Array, Progress, Stop, alphas
from gradient_lab.engine.instruments.landscape.plane_loss import PlaneLoss
from gradient_lab.engine.training.evaluation import Evaluator

INTERPOLATION = (-0.5, 1.5, 201)  # alpha range and count of line_between
ALONG = (-1.0, 1.0, 201)  # alpha range and count of line_along


@dataclass
class LineResult:
    """The loss at ``alpha`` along a segment or a direction; NaN where a cancelled scan stopped."""

    alpha: Array
    loss: Array
    label: str
    description: str
    complete: bool = True


def _scan_line(
    plane: PlaneLoss,
    values: Array,
    exact: dict[float, float],
    label: str,
    progress: Progress | None,
    stop: Stop | None,
) -> LineResult:
    block = max(1, len(values)) if plane.fast else 16  # compiled: one sweep along the line
    losses = np.full(len(values), np.nan)
    for alpha, loss in exact.items():
        losses[values == alpha] = loss
    todo = np.flatnonzero(~np.isin(values, list(exact)))
    done_count = len(values) - len(todo)
    for start in range(0, len(todo), block):
        if stop is not None and stop():
            return LineResult(values, losses, label, plane.evaluator.data.description, False)
        idx = todo[start : start + block]
        losses[idx] = plane(values[idx], np.zeros(len(idx)))
        done_count += len(idx)
        if progress is not None:
            progress(done_count, len(values))
    return LineResult(values, losses, label, plane.evaluator.data.description)


def line_between(
    evaluator: Evaluator,
    theta_a: Array,
    theta_b: Array,
    alpha: Array | None = None,
    *,
    label: str = "interpolation",
    progress: Progress | None = None,
    stop: Stop | None = None,
    fast: bool | None = None,
) -> LineResult:
    """The loss at theta_a + alpha (theta_b - theta_a); by default alpha in [-0.5, 1.5] at 201
    points. alpha = 0 and 1 are evaluated at theta_a and theta_b themselves, so the end points
    reproduce the two states' losses exactly."""
    values = alphas(*INTERPOLATION) if alpha is None else np.asarray(alpha, dtype=np.float64)
    a = np.asarray(theta_a)
    b = np.asarray(theta_b)
    plane = PlaneLoss(evaluator, a, b - a, np.zeros_like(a), fast)
    exact = {}
    if np.any(values == 0.0):
        exact[0.0] = evaluator.loss(a)
    if np.any(values == 1.0):
        exact[1.0] = evaluator.loss(b)
    return _scan_line(plane, values, exact, label, progress, stop)


def line_along(
    evaluator: Evaluator,
    theta: Array,
    direction: Array,
    alpha: Array | None = None,
    *,
    label: str = "direction",
    progress: Progress | None = None,
    stop: Stop | None = None,
    fast: bool | None = None,
) -> LineResult:
    """The loss at theta + alpha direction; by default alpha in [-1, 1] at 201 points, with the
    value at alpha = 0 the loss at theta exactly."""
    values = alphas(*ALONG, exact=(0.0,)) if alpha is None else np.asarray(alpha, dtype=np.float64)
    center = np.asarray(theta)
    plane = PlaneLoss(evaluator, center, direction, np.zeros_like(center), fast)
    exact = {0.0: evaluator.loss(center)} if np.any(values == 0.0) else {}
    return _scan_line(plane, values, exact, label, progress, stop)
