"""Objectives (2D test functions): finite at the start, gradient and Hessian against
differences, a symmetric Hessian."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.loading.checks.common import (
    EXACT_RTOL,
    Check,
    CheckFailed,
    compare,
    compare_differences,
    norm_tol,
    seeded_rng,
)
from gradient_lab.engine.loading.registry import Registry


def objective_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("value finite at start", lambda: _check_objective_start(cls)),
        ("gradient vs finite differences", lambda: _check_objective_gradient(cls)),
        ("Hessian vs finite differences", lambda: _check_objective_hessian(cls)),
        ("Hessian symmetric", lambda: _check_objective_symmetry(cls)),
    ]


OBJECTIVE_POINTS = 20  # seeded points inside the declared bounds


def _objective_points(objective: Any) -> np.ndarray:
    (x0, x1), (y0, y1) = objective.bounds
    rng = seeded_rng(11)
    return np.column_stack(
        [rng.uniform(x0, x1, OBJECTIVE_POINTS), rng.uniform(y0, y1, OBJECTIVE_POINTS)]
    )


def _check_objective_start(cls: Any) -> str:
    objective = cls()
    value = float(objective.value(*map(float, objective.start)))
    if not math.isfinite(value):
        raise CheckFailed(f"value at the start {tuple(objective.start)} is {value!r}")
    return f"value {value:.6g} at the start {tuple(objective.start)}"


def _check_objective_gradient(cls: Any) -> str:
    objective = cls()
    worst = 0.0
    for p in _objective_points(objective):
        analytic = np.asarray(objective.gradient(float(p[0]), float(p[1])), dtype=np.float64)
        error, _ = compare_differences(
            f"gradient at {tuple(np.round(p, 4))}",
            analytic,
            lambda q: float(objective.value(float(q[0]), float(q[1]))),
            p,
        )
        worst = max(worst, error)
    return (
        f"gradient matches central differences of value at {OBJECTIVE_POINTS} points "
        f"(worst error {worst:.1e})"
    )


def _check_objective_hessian(cls: Any) -> str:
    objective = cls()
    worst = 0.0
    for p in _objective_points(objective):
        hessian = np.asarray(objective.hessian(float(p[0]), float(p[1])), dtype=np.float64)
        if hessian.shape != (2, 2):
            raise CheckFailed(f"hessian returned shape {hessian.shape}, expected (2, 2)")
        for i in range(2):
            error, _ = compare_differences(
                f"Hessian row {i} at {tuple(np.round(p, 4))}",
                hessian[i],
                _gradient_component(objective, i),
                p,
            )
            worst = max(worst, error)
    return (
        f"Hessian matches central differences of the gradient at {OBJECTIVE_POINTS} points "
        f"(worst error {worst:.1e})"
    )


def _gradient_component(objective: Any, i: int) -> Callable[[np.ndarray], float]:
    return lambda q: float(objective.gradient(float(q[0]), float(q[1]))[i])


def _check_objective_symmetry(cls: Any) -> str:
    objective = cls()
    for p in _objective_points(objective):
        hessian = np.asarray(objective.hessian(float(p[0]), float(p[1])), dtype=np.float64)
        compare(
            f"Hessian at {tuple(np.round(p, 4))} and its transpose",
            hessian,
            hessian.T,
            EXACT_RTOL,
            norm_tol(hessian, EXACT_RTOL),
        )
    return f"Hessian symmetric at {OBJECTIVE_POINTS} points"
