"""Losses: grad matches differences of value for every target encoding and output the loss
serves, and an engine fast path gives the same value and gradient."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.array_math import softmax
from gradient_lab.engine.compute.fused import loss_hp
from gradient_lab.engine.loading.checks.common import (
    EXACT_RTOL,
    Check,
    CheckFailed,
    compare,
    compare_differences,
    configurations,
    norm_tol,
    seeded_rng,
)
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.plugin_api import Loss, PluginError


@dataclass
class _LossCase:
    label: str
    loss: Loss
    pred: np.ndarray
    target: np.ndarray


def loss_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [
        ("derivative", lambda: _check_loss_derivative(cls)),
        ("inline agrees", lambda: _check_loss_inline(cls)),
    ]


def _loss_variants(loss: Loss) -> list[tuple[str, Loss, bool]]:
    """The loss as configured for a linear and for a softmax output (cross-entropy differs)."""
    variants: list[tuple[str, Loss, bool]] = [("", loss, False)]
    seen = [(type(loss), loss.get_config())]
    for output, after_softmax in (("linear", False), ("softmax", True)):
        try:
            other = loss.for_output(output)
        except PluginError:
            continue
        key = (type(other), other.get_config())
        if key not in seen:
            seen.append(key)
            variants.append((f" for a {output} output", other, after_softmax))
    return variants


def _targets(encoding: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if encoding == "one_hot":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    if encoding == "zero_one":
        return rng.integers(0, 2, shape).astype(np.float64)
    if encoding == "plus_minus_one":
        return rng.choice(np.array([-1.0, 1.0]), shape)
    return rng.normal(size=shape)


def _loss_cases(cls: Any) -> Iterator[_LossCase]:
    """Seeded (pred, target) pairs of shapes (6, 3) and (6, 1) for every variant of the loss, at
    its defaults and with its float parameters moved.

    Predictions are reals, softmax rows after a softmax output, and probabilities in
    (0.05, 0.95) for 0/1 targets (all of them where reals give no finite loss, as BCE)."""
    for configured, loss in configurations(cls):
        yield from _loss_cases_of(loss, configured)


def _loss_cases_of(loss: Loss, configured: str) -> Iterator[_LossCase]:
    rng = seeded_rng()
    for label, variant, after_softmax in _loss_variants(loss):
        for shape in ((6, 3), (6, 1)):
            target = _targets(loss.target_encoding, shape, rng)
            where = f"{label} at shape {shape}{configured}"
            if after_softmax:
                pred = softmax(rng.normal(size=shape))
                yield _LossCase(f"softmax rows{where}", variant, pred, target)
                continue
            reals = rng.normal(scale=1.5, size=shape)
            if math.isfinite(variant.value(reals, target)):
                yield _LossCase(f"real predictions{where}", variant, reals, target)
            elif loss.target_encoding != "zero_one":
                raise CheckFailed(f"the loss is not finite at real predictions{where}")
            if loss.target_encoding == "zero_one":
                probs = rng.uniform(0.05, 0.95, shape)
                yield _LossCase(f"probabilities{where}", variant, probs, target)


def _check_loss_derivative(cls: Any) -> str:
    worst, points, cases = 0.0, 0, 0
    for case in _loss_cases(cls):
        grad = np.asarray(case.loss.grad(case.pred, case.target))

        def value(p: np.ndarray, case: _LossCase = case) -> float:
            return float(case.loss.value(p, case.target))

        err, n = compare_differences(f"grad and differences ({case.label})", grad, value, case.pred)
        worst, points, cases = max(worst, err), points + n, cases + 1
    return (
        f"grad matches central differences of value in {cases} cases, {points} points "
        f"(worst {worst:.1e})"
    )


def _check_loss_inline(cls: Any) -> str | None:
    names = []
    for case in _loss_cases(cls):
        name = case.loss.inline_name()
        if not name:
            continue
        code = kernels.LOSS_CODES.get(name)
        if code is None:
            names.append(f"{name!r} (no engine fast path here)")
            continue
        _compare_loss_kernel(case, code)
        names.append(repr(name))
    if not names:
        return None
    return f"engine fast path {', '.join(dict.fromkeys(names))}: same value and gradient"


def _compare_loss_kernel(case: _LossCase, code: int) -> None:
    pred = np.ascontiguousarray(case.pred, dtype=np.float64)
    target = np.ascontiguousarray(case.target, dtype=np.float64)
    dp = np.empty_like(pred)
    value = kernels.loss_and_grad(code, pred, target, loss_hp(case.loss), dp)
    compare(
        f"engine and plugin loss values ({case.label})",
        value,
        case.loss.value(pred, target),
        EXACT_RTOL,
        1e-15,
    )
    grad = np.asarray(case.loss.grad(pred, target), dtype=np.float64)
    if code == kernels.LOSS_CE_PROBS:
        # this kernel returns dL/dz of the softmax in front: the plugin's grad taken through it
        grad = pred * (grad - (grad * pred).sum(axis=1, keepdims=True))
    compare(
        f"engine and plugin gradients ({case.label})",
        dp,
        grad,
        EXACT_RTOL,
        norm_tol(grad, EXACT_RTOL),
    )
