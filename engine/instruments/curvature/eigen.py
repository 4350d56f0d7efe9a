"""Block Lanczos with full reorthogonalization, and the top Hessian eigenpairs from it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gradient_lab.engine.instruments.curvature.derivatives import Array
from gradient_lab.engine.instruments.curvature.hessian import HessianOperator
from gradient_lab.engine.training.evaluation import Evaluator

StopRule = Callable[[Array, Array, int], bool]


def _orthogonalize(rows: Array, basis: Array) -> Array:
    """Remove the rows' components along the rows of basis; twice, which suffices in floating
    point."""
    for _ in range(2):
        rows = rows - (rows @ basis.T) @ basis
    return rows


def _fresh_rows(count: int, basis: Array, rng: np.random.Generator) -> Array:
    """``count`` random orthonormal rows orthogonal to the rows of basis."""
    rows = _orthogonalize(rng.standard_normal((count, basis.shape[1])), basis)
    q, _ = np.linalg.qr(rows.T)
    return _orthogonalize(q.T, basis)


def _next_block(
    w: Array, basis: Array, scale: float, rng: np.random.Generator | None
) -> tuple[Array, Array, bool]:
    """Orthonormal rows Q spanning the rows of w (already orthogonal to basis), the coupling
    Q wᵀ, and whether w lost rank (the Krylov space closed in some direction).

    An SVD rather than a QR, so a rank-deficient w keeps all of its content; missing rows are
    filled with fresh random directions when ``rng`` is given."""
    u, singular, _ = np.linalg.svd(w.T, full_matrices=False)
    rank = int((singular > 1e-10 * scale).sum())
    q = u[:, :rank].T
    fill = min(len(w), w.shape[1] - len(basis)) - rank  # never more than the space has left
    if fill > 0 and rng is not None:
        q = np.vstack([q, _fresh_rows(fill, np.vstack([basis, q]), rng)])
    return q, q @ w.T, rank < len(w)


def lanczos(
    matmat: Callable[[Array], Array],
    start: Array,
    steps: int,
    rng: np.random.Generator | None = None,
    stop: StopRule | None = None,
) -> tuple[Array, Array]:
    """Block Lanczos with full reorthogonalization from the rows of ``start`` (b, P): the block
    tridiagonal T = Q H Qᵀ and the orthonormal basis Q (rows), at most ``steps`` blocks.

    A block of b vectors finds up to b copies of a repeated eigenvalue (one vector finds one);
    full reorthogonalization keeps converged eigenvalues from coming back as ghost copies. When
    the Krylov space closes (an invariant subspace) fresh random directions continue it if
    ``rng`` is given, else it ends there. ``stop(T, coupling, at)`` may end it early: coupling
    is the next block's (b, b) link to the last block, which begins at row ``at``."""
    n = start.shape[1]
    size = min(n, steps * len(start))
    basis, t = np.zeros((size, n)), np.zeros((size, size))
    if size == 0:
        return t, basis
    block, _, _ = _next_block(start, basis[:0], 1.0, rng)
    at = 0
    while True:
        block = block[: size - at]
        end = at + len(block)
        basis[at:end] = block
        w = matmat(block)
        t[at:end, at:end] = 0.5 * (block @ w.T + w @ block.T)
        w = _orthogonalize(w, basis[:end])
        scale = float(np.abs(t[:end, :end]).max())
        block, coupling, closed = _next_block(w, basis[:end], scale, rng)
        finished = end == size or len(block) == 0 or (closed and rng is None)
        if finished or (stop is not None and stop(t[:end, :end], coupling, at)):
            return t[:end, :end], basis[:end]
        width = min(len(block), size - end)
        t[end : end + width, at:end] = coupling[:width]
        t[at:end, end : end + width] = coupling[:width].T
        at = end


def _sign_fixed(vectors: Array) -> Array:
    """Each row with its largest-magnitude entry positive, so results are reproducible."""
    idx = np.abs(vectors).argmax(axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), idx])
    return vectors * np.where(signs == 0, 1.0, signs)[:, None]


def top_eigenvectors(
    evaluator: Evaluator,
    theta: Array,
    k: int = 2,
    iterations: int = 100,
    seed: int = 0,
    tol: float = 1e-10,
) -> tuple[Array, Array]:
    """The k algebraically largest Hessian eigenvalues (descending, (k,)) and unit eigenvectors
    (rows, (k, P)), by block Lanczos (block size k) from a seeded random start.

    At most ``iterations`` block steps, each k Hessian-vector products in one pass (P / k steps
    give the exact spectrum); it stops once the top k Ritz pairs have residuals
    |H y - λ y| <= tol max|λ|. A block of k finds up to k copies of a repeated eigenvalue."""
    n = int(np.asarray(theta).size)
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} is not allowed: expected 1 to {n} (the parameter count)")
    op = HessianOperator(evaluator, theta)
    rng = np.random.default_rng(seed)

    def converged(t: Array, coupling: Array, at: int) -> bool:
        if len(t) < k:
            return False
        values, vectors = np.linalg.eigh(t)
        residual = np.linalg.norm(coupling @ vectors[at:, -k:], axis=0)
        return bool(residual.max() <= tol * max(np.abs(values).max(), 1e-300))

    t, basis = lanczos(op.matmat, rng.standard_normal((k, n)), max(iterations, 1), rng, converged)
    values, vectors = np.linalg.eigh(t)
    order = np.argsort(values)[::-1][:k]
    ritz = vectors[:, order].T @ basis
    ritz /= np.linalg.norm(ritz, axis=1, keepdims=True)
    return values[order], _sign_fixed(ritz)
