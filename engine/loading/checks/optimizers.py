"""Optimizers: state of numpy arrays, descent on a seeded quadratic bowl, and an engine fast
path that follows the plugin's update step for step in several settings."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.loading.checks.common import (
    EXACT_RTOL,
    Check,
    CheckFailed,
    compare,
    norm_tol,
    seeded_rng,
)
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.plugin_api import Optimizer, OptimizerContext, PluginError

QUADRATIC_STEPS = 300
QUADRATIC_LRS = (0.1, 0.03, 0.01)  # tried when the default hyperparameters do not converge
INLINE_STEPS = 15


@dataclass
class _Quadratic:
    """f(θ) = ½ θᵀAθ − bᵀθ with A SPD, condition number 10: the optimizer's test bowl."""

    a: np.ndarray
    b: np.ndarray
    root: np.ndarray  # A^(1/2): residuals r = A^(1/2)θ − A^(-1/2)b give f = ½|r|² + const
    c: np.ndarray  # A^(-1/2) b
    start: np.ndarray
    best: float

    def value(self, theta: np.ndarray) -> float:
        return float(0.5 * theta @ self.a @ theta - self.b @ theta)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return self.a @ theta - self.b


def _quadratic(n: int = 10, condition: float = 10.0) -> _Quadratic:
    rng = seeded_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.geomspace(1.0, condition, n)
    a = (q * eig) @ q.T
    root = (q * np.sqrt(eig)) @ q.T
    b = rng.normal(size=n)
    c = q @ ((q.T @ b) / np.sqrt(eig))
    optimum = np.linalg.solve(a, b)
    problem = _Quadratic(a, b, root, c, optimum + rng.normal(size=n), 0.0)
    problem.best = problem.value(optimum)
    return problem


class _QuadraticContext(OptimizerContext):
    """The quadratic as least squares, for optimizers that ask for residuals and a Jacobian."""

    def __init__(self, problem: _Quadratic) -> None:
        self.problem = problem

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return self.problem.root @ theta - self.problem.c

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        return self.problem.root.copy()

    def loss(self, theta: np.ndarray) -> float:
        return self.problem.value(theta)


def optimizer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("state is arrays", lambda: _check_state(cls)),
        ("decreases a quadratic", lambda: _check_descent(cls)),
        ("inline agrees", lambda: _check_optimizer_inline(cls)),
    ]


def _check_state(cls: Any) -> str:
    opt = cls()
    state = opt.init(np.zeros(10))
    if not isinstance(state, dict):
        raise CheckFailed(f"init returned {type(state).__name__}, expected a dict of arrays")
    not_arrays = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if not_arrays:
        raise CheckFailed(f"state entries that are not numpy arrays: {', '.join(not_arrays)}")
    if "step" not in state or state["step"].shape != (1,):
        raise CheckFailed('the state needs a "step" counter of shape (1,)')
    missing = [name for name in cls.inline_state if name not in state]
    if missing:
        raise CheckFailed(f"inline_state names missing from the state: {', '.join(missing)}")
    return f"init returns numpy arrays: {', '.join(state)}"


def _remaining_gap(opt: Optimizer, problem: _Quadratic, steps: int) -> float:
    """(f(θ_end) − f*) / (f(θ_0) − f*) after ``steps`` updates (inf when it blows up)."""
    theta = problem.start.copy()
    state = opt.init(theta)
    ctx = _QuadraticContext(problem) if opt.needs_context else None
    for _ in range(steps):
        update, state = opt.update(problem.grad(theta), state, theta, ctx)
        theta += np.asarray(update, dtype=np.float64)
        if not np.all(np.isfinite(theta)):
            return math.inf
    return (problem.value(theta) - problem.best) / (problem.value(problem.start) - problem.best)


def _descent_settings(cls: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "default hyperparameters", {}
    if any(p.name == "lr" for p in cls.params):
        for lr in QUADRATIC_LRS:
            yield f"lr = {lr}", {"lr": lr}


def _check_descent(cls: Any) -> str:
    problem = _quadratic()
    tried = []
    for label, hp in _descent_settings(cls):
        try:
            opt = cls(**hp)
        except PluginError:
            continue
        gap = _remaining_gap(opt, problem, QUADRATIC_STEPS)
        if gap <= 0.5:
            return (
                f"with {label}, {QUADRATIC_STEPS} steps close {100 * (1 - gap):.1f}% of the gap "
                "to the minimum of a 10-d quadratic (condition 10)"
            )
        tried.append(f"{label}: {_progress(gap)}")
    raise CheckFailed(
        f"{QUADRATIC_STEPS} steps never closed half the gap to the minimum ({'; '.join(tried)})"
    )


def _progress(gap: float) -> str:
    """The remaining gap to the minimum in words."""
    if not math.isfinite(gap):
        return "diverged"
    if gap > 1.0:
        return f"moved away from the minimum (gap x{gap:.2g})"
    return f"closed {100 * (1 - gap):.1f}%"


# Non-default settings so the inline comparison covers momentum, decay and the other branches.
INLINE_SETTINGS: tuple[dict[str, Any], ...] = (
    {},
    {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.05, "lr_decay": 0.1, "weight_decay": 0.05},
    {"lr": 0.05, "centered": True, "momentum": 0.5},
    {"lr": 0.05, "amsgrad": True, "weight_decay": 0.05},
    {"lr": 0.05, "beta1": 0.5, "beta2": 0.9},
    {"lr": 0.5, "rho": 0.7, "eps": 1e-4},
)


def _inline_optimizers(cls: Any) -> Iterator[Optimizer]:
    """Instances for each INLINE_SETTINGS entry the plugin declares (each distinct one once)."""
    declared = {p.name for p in cls.params}
    seen: list[dict[str, Any]] = []
    for setting in INLINE_SETTINGS:
        hp = {k: v for k, v in setting.items() if k in declared}
        if hp in seen or (setting and set(hp) <= {"lr"}):
            continue
        seen.append(hp)
        try:
            yield cls(**hp)
        except PluginError:
            continue


def _check_optimizer_inline(cls: Any) -> str | None:
    rule = kernels.OPTIMIZER_RULES.get(cls.inline)
    if not cls.inline:
        return None
    if rule is None:
        return f"{cls.inline!r} is not an engine fast path here; the plugin's update is used"
    code, names = rule
    problem = _quadratic()
    settings = 0
    for opt in _inline_optimizers(cls):
        missing = [n for n in names if n not in opt.hp]
        if missing:
            raise CheckFailed(f"the engine rule reads {', '.join(missing)}, not declared")
        _compare_optimizer_kernel(opt, code, names, problem)
        settings += 1
    return (
        f"{INLINE_STEPS} steps of the engine's {cls.inline!r} follow the plugin's update "
        f"in {settings} settings"
    )


def _compare_optimizer_kernel(
    opt: Optimizer, code: int, names: tuple[str, ...], problem: _Quadratic
) -> None:
    theta_p = problem.start.copy()
    theta_k = problem.start.copy()
    state_p = opt.init(theta_p)
    state_k = opt.init(theta_k)
    n = theta_k.size
    slots = np.zeros((max(3, len(opt.inline_state)), n))
    for i, name in enumerate(opt.inline_state):
        slots[i] = state_k[name]
    step = np.array(state_k["step"], dtype=np.float64)
    hp = np.array([float(opt.hp[name]) for name in names])
    update = np.zeros(n)
    no_regs = (np.zeros(0, dtype=np.int64), np.zeros(0))
    for t in range(1, INLINE_STEPS + 1):
        delta, state_p = opt.update(problem.grad(theta_p), state_p, theta_p)
        theta_p += delta
        grad = problem.grad(theta_k)
        kernels.optimizer_step(code, hp, step, slots, theta_k, grad, update, np.ones(n), *no_regs)
        compare(
            f"step {t} with {opt.hp}: engine and plugin theta",
            theta_k,
            theta_p,
            EXACT_RTOL,
            norm_tol(theta_p, EXACT_RTOL),
        )
