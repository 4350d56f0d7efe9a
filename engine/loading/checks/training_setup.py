"""Initializers, regularizers and learning-rate schedules: the pieces a training run is set
up with. Shapes and seeding, penalty gradients and engine fast paths, finite rates."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
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
from gradient_lab.engine.plugin_api import Regularizer


def initializer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("shape and dtype", lambda: _check_initializer_shape(cls)),
        ("deterministic with the same seed", lambda: _check_initializer_seed(cls)),
    ]


INIT_SHAPES: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((3, 4), 3, 4),
    ((7,), 7, 7),
    ((2, 3, 4), 12, 8),
)


def _check_initializer_shape(cls: Any) -> str:
    init = cls()
    for shape, fan_in, fan_out in INIT_SHAPES:
        out = np.asarray(init.sample(shape, fan_in, fan_out, seeded_rng()))
        if out.shape != shape:
            raise CheckFailed(f"sample({shape}) returned shape {out.shape}")
        if not np.issubdtype(out.dtype, np.floating):
            raise CheckFailed(f"sample({shape}) returned dtype {out.dtype}, not a float")
        if not np.all(np.isfinite(out)):
            raise CheckFailed(f"sample({shape}) returned values that are not finite")
    return f"shapes {', '.join(str(s) for s, _, _ in INIT_SHAPES)} come back as finite floats"


def _check_initializer_seed(cls: Any) -> str:
    init = cls()
    for shape, fan_in, fan_out in INIT_SHAPES:
        first = np.asarray(init.sample(shape, fan_in, fan_out, seeded_rng(7)))
        second = np.asarray(init.sample(shape, fan_in, fan_out, seeded_rng(7)))
        if not np.array_equal(first, second):
            raise CheckFailed(f"two generators with the same seed gave different {shape} weights")
    return "the same seed gives the same weights"


def regularizer_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        (
            "penalty gradient" if cls.stage == "loss" else "transform keeps shape",
            lambda: _check_regularizer(cls),
        ),
        ("inline agrees", lambda: _check_regularizer_inline(cls)),
    ]


def _reg_point() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta, a weight mask (the last third are biases) and a vector to transform."""
    rng = seeded_rng(6)
    theta = rng.normal(size=12)
    mask = np.repeat([1.0, 0.0], [8, 4])
    return theta, mask, rng.normal(scale=3.0, size=12)


def _check_regularizer(cls: Any) -> str:
    reg = cls()
    theta, mask, vec = _reg_point()
    if reg.stage == "loss":
        grad = np.asarray(reg.penalty_grad(theta, mask))

        def penalty(t: np.ndarray) -> float:
            return float(reg.penalty(t, mask))

        worst, n = compare_differences("penalty_grad and differences", grad, penalty, theta)
        return f"penalty_grad matches central differences of penalty at {n} points ({worst:.1e})"
    out = np.asarray(reg.transform(vec.copy(), theta, mask, 0.1))
    if out.shape != vec.shape:
        raise CheckFailed(f"transform turned shape {vec.shape} into {out.shape}")
    if not np.all(np.isfinite(out)):
        raise CheckFailed("transform returned values that are not finite")
    return f"{reg.stage}-stage transform keeps the shape {vec.shape} and stays finite"


def _check_regularizer_inline(cls: Any) -> str | None:
    reg = cls()
    if not reg.inline:
        return None
    rule = kernels.REGULARIZER_RULES.get(reg.inline)
    if rule is None:
        return f"{reg.inline!r} is not an engine fast path here; the plugin's code is used"
    code, hp_name = rule
    codes, values = np.array([code], dtype=np.int64), np.array([float(reg.hp[hp_name])])
    theta, mask, vec = _reg_point()
    if reg.stage == "loss":
        _compare_penalty_kernel(reg, codes, values, theta, mask)
    elif reg.stage == "gradient":
        for scale in (1.0, 1e-3):  # clipped and left alone
            g = np.ascontiguousarray(vec * scale)
            expected = np.asarray(reg.transform(g.copy(), theta, mask, 0.1))
            kernels.transform_gradient(codes, values, g)
            compare(
                "engine and plugin transforms",
                g,
                expected,
                EXACT_RTOL,
                norm_tol(expected, EXACT_RTOL),
            )
    else:
        _compare_update_kernel(reg, codes, values, theta, mask)
    return f"the engine's {reg.inline!r} gives the same numbers"


def _compare_penalty_kernel(
    reg: Regularizer, codes: Any, values: Any, theta: Any, mask: Any
) -> None:
    grad = np.zeros_like(theta)
    total = kernels.add_penalties(codes, values, theta, mask, grad)
    compare("engine and plugin penalties", total, reg.penalty(theta, mask), EXACT_RTOL, 1e-300)
    expected = np.asarray(reg.penalty_grad(theta, mask))
    compare(
        "engine and plugin penalty gradients",
        grad,
        expected,
        EXACT_RTOL,
        norm_tol(expected, EXACT_RTOL),
    )


def _compare_update_kernel(
    reg: Regularizer, codes: Any, values: Any, theta: Any, mask: Any
) -> None:
    """An update-stage rule runs inside the optimizer step: plain SGD on a zero gradient."""
    lr, n = 0.1, theta.size
    update = np.zeros(n)
    hp = np.array([lr, 0.0, 0.0, 0.0, 0.0])
    kernels.optimizer_step(
        kernels.OPT_SGD,
        hp,
        np.zeros(1),
        np.zeros((3, n)),
        theta.copy(),
        np.zeros(n),
        update,
        mask,
        codes,
        values,
    )
    expected = np.asarray(reg.transform(np.zeros(n), theta, mask, lr))
    compare(
        "engine and plugin updates", update, expected, EXACT_RTOL, norm_tol(expected, EXACT_RTOL)
    )


def schedule_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("learning rates", lambda: _check_schedule(cls))]


def _check_schedule(cls: Any) -> str:
    schedule = cls()
    rates = [schedule.lr(0.1, t) for t in range(51)]
    bad = [t for t, v in enumerate(rates) if not (math.isfinite(v) and v >= 0.0)]
    if bad:
        raise CheckFailed(f"lr(0.1, {bad[0]}) = {rates[bad[0]]!r} is not a finite rate >= 0")
    if rates[0] <= 0.0:
        raise CheckFailed(f"lr(0.1, 0) = {rates[0]!r}: training would not start")
    return (
        f"lr(0.1, t) for t = 0..50 is finite and positive at the start ({min(rates):.3g} to "
        f"{max(rates):.3g})"
    )
