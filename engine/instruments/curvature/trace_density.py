"""Randomized estimates over the whole spectrum: Hutchinson's trace and the eigenvalue
density by stochastic Lanczos quadrature."""

from __future__ import annotations

import math

import numpy as np

from gradient_lab.engine.instruments.curvature.derivatives import Array
from gradient_lab.engine.instruments.curvature.eigen import lanczos
from gradient_lab.engine.instruments.curvature.hessian import HessianOperator, apply_in_blocks
from gradient_lab.engine.training.evaluation import Evaluator


def hutchinson_trace(
    evaluator: Evaluator, theta: Array, samples: int = 100, seed: int = 0
) -> tuple[float, float]:
    """(estimate, standard error) of tr H as the mean of zᵀ H z over Rademacher vectors z.

    Rademacher entries give the least variance among independent unit-variance probes:
    2 Σ_{i≠j} H_ij² per sample, none from the diagonal."""
    if samples < 2:
        raise ValueError(f"samples = {samples} is not allowed: expected 2 or more")
    op = HessianOperator(evaluator, theta)
    z = np.random.default_rng(seed).integers(0, 2, (samples, op.n)) * 2.0 - 1.0
    quad = np.einsum("ij,ij->i", z, apply_in_blocks(op, z))
    return float(quad.mean()), float(quad.std(ddof=1) / math.sqrt(samples))


def slq_nodes(
    evaluator: Evaluator, theta: Array, lanczos_steps: int = 30, probes: int = 5, seed: int = 0
) -> tuple[Array, Array]:
    """Stochastic Lanczos quadrature: nodes and weights (probes, min(lanczos_steps, P)), each
    row a Gauss quadrature of the spectral measure seen by one random unit probe (weights sum
    to 1).

    Averaged over probes the measure is the eigenvalue density (1/P) Σ δ(λ - λᵢ); rows that
    finish early (a closed Krylov space) are padded with zero weights."""
    op = HessianOperator(evaluator, theta)
    rng = np.random.default_rng(seed)
    steps = min(lanczos_steps, op.n)
    nodes, weights = np.zeros((probes, steps)), np.zeros((probes, steps))
    for p in range(probes):
        start = rng.integers(0, 2, (1, op.n)) * 2.0 - 1.0
        t, _ = lanczos(op.matmat, start, steps)
        values, vectors = np.linalg.eigh(t)
        nodes[p, : len(values)] = values
        weights[p, : len(values)] = vectors[0] ** 2
    return nodes, weights


def density(
    evaluator: Evaluator,
    theta: Array,
    lanczos_steps: int = 30,
    probes: int = 5,
    grid: Array | int = 1000,
    sigma: float | None = None,
    seed: int = 0,
) -> tuple[Array, Array]:
    """(grid, density): the Hessian's eigenvalue density by stochastic Lanczos quadrature with
    Gaussian broadening of width sigma; it integrates to 1 over the default grid.

    ``grid`` is a number of points (spanning the nodes plus 6 sigma each side) or the points
    themselves; sigma defaults to 1% of the spectrum's span and to at least two grid spacings,
    so the trapezoid rule resolves every peak."""
    nodes, weights = slq_nodes(evaluator, theta, lanczos_steps, probes, seed)
    used = nodes[weights > 0]
    lo, hi = (float(used.min()), float(used.max())) if used.size else (0.0, 0.0)
    span = hi - lo if hi > lo else 1e-3 * max(1.0, abs(lo), abs(hi))
    if isinstance(grid, int | np.integer):
        width = sigma if sigma is not None else span / 100.0
        points = np.linspace(lo - 6.0 * width, hi + 6.0 * width, int(grid))
        if sigma is None:
            width = max(width, 2.0 * float(points[1] - points[0]))
            points = np.linspace(lo - 6.0 * width, hi + 6.0 * width, int(grid))
    else:
        points = np.asarray(grid, dtype=np.float64)
        spacing = float(np.median(np.diff(points))) if points.size > 1 else 0.0
        width = sigma if sigma is not None else max(span / 100.0, 2.0 * spacing)
    return points, _broaden(nodes, weights, points, width)


def _broaden(nodes: Array, weights: Array, grid: Array, sigma: float) -> Array:
    """The probes' average of Σ wⱼ N(x; nodeⱼ, sigma²) on the grid."""
    d = (grid[:, None] - nodes.ravel()[None, :]) / sigma
    kernel = np.exp(-0.5 * d * d) / (sigma * math.sqrt(2.0 * math.pi))
    return kernel @ weights.ravel() / len(nodes)
