"""Activations: f and df compile as cfuncs, df matches differences of f (backward_rows of
forward_rows for row-wise ones), and an ``inline`` fast path gives the same numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.activations import activation_functions
from gradient_lab.engine.loading.checks.common import (
    EXACT_RTOL,
    FD_RTOL,
    Check,
    compare,
    compare_differences,
    configurations,
    difference_step,
    seeded_rng,
)
from gradient_lab.engine.loading.registry import Registry

KINK_GAP = 1e-3  # activation points this close to a declared kink are left out


def activation_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("jit compile", lambda: _check_jit(cls)),
        ("derivative", lambda: _check_activation_derivative(cls)),
        ("inline agrees", lambda: _check_activation_inline(cls)),
    ]


def _activation_points(cls: Any) -> np.ndarray:
    """200 seeded points in [-4, 4], minus those within KINK_GAP of a declared kink."""
    x = seeded_rng().uniform(-4.0, 4.0, 200)
    for kink in cls.kinks:
        x = x[np.abs(x - kink) > KINK_GAP]
    return x


def _scalar_values(act: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plugin's own (Python) f and df at the points x."""
    a, b = act.scalar_args()
    y = np.array([act.f(float(v), a, b) for v in x], dtype=np.float64)
    dy = np.array([act.df(float(v), float(w), a, b) for v, w in zip(x, y, strict=True)])
    return y, dy


def _check_jit(cls: Any) -> str | None:
    if not cls.elementwise:
        return None
    f, df = activation_functions(cls)
    act = cls()
    a, b = act.scalar_args()
    x = _activation_points(cls)
    y, dy = _scalar_values(act, x)
    compiled_y = np.array([f(float(v), a, b) for v in x])
    compiled_dy = np.array([df(float(v), float(w), a, b) for v, w in zip(x, y, strict=True)])
    compare("compiled f and Python f", compiled_y, y, EXACT_RTOL, 1e-15, at=x)
    compare("compiled df and Python df", compiled_dy, dy, EXACT_RTOL, 1e-15, at=x)
    return f"f and df compile as cfuncs and agree with the Python code at {len(x)} points"


def _check_activation_derivative(cls: Any) -> str:
    if not cls.elementwise:
        return _check_row_derivative(cls())
    x = _activation_points(cls)
    worst = 0.0
    for configured, act in configurations(cls):
        a, b = act.scalar_args()
        _, dy = _scalar_values(act, x)

        def f(v: float, fn: Any = act.f, a: float = a, b: float = b) -> float:
            return fn(v, a, b)

        numeric = np.array([_scalar_difference(f, float(v)) for v in x])
        what = f"df and central differences{configured}"
        worst = max(worst, compare(what, dy, numeric, FD_RTOL, FD_RTOL, at=x))
    return (
        f"df matches central differences of f at {len(x)} points in [-4, 4], at the defaults "
        f"and with the parameters moved (worst error {worst:.1e})"
    )


def _scalar_difference(f: Callable[[float], float], x: float) -> float:
    h = difference_step(x)
    return (f(x + h) - f(x - h)) / (2.0 * h)


def _check_row_derivative(act: Any) -> str:
    rng = seeded_rng()
    z = rng.normal(scale=2.0, size=(3, 5))
    r = rng.normal(size=(3, 5))
    analytic = act.backward_rows(z, act.forward_rows(z), r)

    def loss(zz: np.ndarray) -> float:
        return float(np.sum(act.forward_rows(zz) * r))

    worst, n = compare_differences("backward_rows and differences", analytic, loss, z)
    return f"backward_rows matches differences of forward_rows at {n} inputs (worst {worst:.1e})"


def _check_activation_inline(cls: Any) -> str | None:
    if not cls.inline:
        return None
    code = kernels.ACTIVATION_CODES.get(cls.inline)
    if code is None:
        return f"{cls.inline!r} is not an engine fast path here; the compiled f and df are used"
    for configured, act in configurations(cls):
        _compare_activation_kernel(cls, act, code, configured)
    return f"the engine's inline {cls.inline!r} gives the same values and derivatives"


def _compare_activation_kernel(cls: Any, act: Any, code: int, configured: str) -> None:
    a, b = act.scalar_args()
    if cls.elementwise:
        z = _activation_points(cls).reshape(1, -1)
        y, dy = (v.reshape(1, -1) for v in _scalar_values(act, z.ravel()))
        upstream = np.ones_like(z)
        expected_dz = dy
    else:
        rng = seeded_rng()
        z = rng.normal(scale=2.0, size=(3, 5))
        upstream = rng.normal(size=z.shape)
        y = np.ascontiguousarray(act.forward_rows(z))  # the kernels take C-ordered rows
        expected_dz = act.backward_rows(z, y, upstream)
    kernel_y = np.empty_like(z)
    kernels.apply_activation(code, a, b, kernels.NO_FUNCTION, z, kernel_y)
    at = z if cls.elementwise else None
    what = f"engine {cls.inline!r} and the plugin's"
    compare(f"{what} values{configured}", kernel_y, y, EXACT_RTOL, 1e-15, at)
    kernel_dz = np.empty_like(z)
    kernels.activation_backward(code, a, b, kernels.NO_DERIVATIVE, z, y, upstream, kernel_dz)
    compare(f"{what} derivatives{configured}", kernel_dz, expected_dz, EXACT_RTOL, 1e-15, at)
