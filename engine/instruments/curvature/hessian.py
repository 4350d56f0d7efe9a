"""The Hessian as a linear map at one theta (exact R-operator products, or central
differences of the gradient), and the dense Hessian of a small model."""

from __future__ import annotations

import math

import numpy as np

from gradient_lab.engine.instruments.curvature.derivatives import FD_STEP, Array, loss_hessian
from gradient_lab.engine.instruments.curvature.rops import Block
from gradient_lab.engine.instruments.curvature.rules import EXACT, hvp_method, model_ops
from gradient_lab.engine.model import Model
from gradient_lab.engine.training.evaluation import Evaluator

MAX_FULL_HESSIAN = 2000


class HessianOperator:
    """H at one theta as a linear map: the forward and backward passes run once here, after which
    each block of directions costs one R-forward and one R-backward pass (or two gradients per
    direction on the finite-difference path)."""

    def __init__(self, evaluator: Evaluator, theta: Array) -> None:
        self.evaluator = evaluator
        self.theta = np.array(theta, dtype=np.float64)
        self.n = int(self.theta.size)
        model = evaluator.model
        if self.n != model.n_params:
            raise ValueError(f"theta has {self.n} values, the model has {model.n_params}")
        self.method = hvp_method(model, evaluator.loss_fn)
        if self.method == EXACT and self.n:
            self._prepare(model)

    def _prepare(self, model: Model) -> None:
        ops = model_ops(model, self.theta)
        assert ops is not None
        self._ops = ops
        self._first = next(i for i, op in enumerate(ops) if op.has_params)
        ops[self._first].input_needed = False
        h = np.asarray(self.evaluator.data.x, dtype=np.float64)
        for op in ops:
            h = op.forward(h)
        target = np.asarray(self.evaluator.data.t, dtype=np.float64)
        curvature = loss_hessian(self.evaluator.loss_fn, h, target)
        assert curvature is not None
        self._loss_curvature = curvature
        g = np.asarray(self.evaluator.loss_fn.grad(h, target), dtype=np.float64)
        for op in reversed(ops[self._first :]):
            g = op.backward(g)

    def matvec(self, v: Array) -> Array:
        """H v for one direction (P,)."""
        return self.matmat(np.asarray(v, dtype=np.float64)[None, :])[0]

    def matmat(self, vs: Array) -> Array:
        """H vᵢ for each row of vs (k, P); rows are independent directions."""
        vs = np.asarray(vs, dtype=np.float64)
        if vs.ndim != 2 or vs.shape[1] != self.n:
            raise ValueError(f"directions must have shape (k, {self.n}), got {vs.shape}")
        if not self.n or not len(vs):
            return np.zeros_like(vs)
        if self.method == EXACT:
            return self._exact(vs)
        return self._differences(vs)

    def _exact(self, vs: Array) -> Array:
        block = Block(vs)
        r: Array | None = None
        for op in self._ops:
            r = op.rforward(r, block)
        assert r is not None
        rg = self._loss_curvature(r)
        for op in reversed(self._ops[self._first :]):
            rg = op.rbackward(rg, block)
        return block.out

    def _differences(self, vs: Array) -> Array:
        """(g(θ + h v) - g(θ - h v)) / 2h with h |v| = FD_STEP max(1, |θ|): approximate."""
        out = np.zeros_like(vs)
        reach = FD_STEP * max(1.0, float(np.linalg.norm(self.theta)))
        gradient = self.evaluator.gradient
        for i, v in enumerate(vs):
            size = float(np.linalg.norm(v))
            if size == 0.0:
                continue
            h = reach / size
            up = np.asarray(gradient(self.theta + h * v), dtype=np.float64)
            down = np.asarray(gradient(self.theta - h * v), dtype=np.float64)
            out[i] = (up - down) / (2.0 * h)
        return out

    def block_size(self) -> int:
        """Directions per R-pass that keep the work arrays to a few megabytes."""
        widest = max(math.prod(shape) for shape in self.evaluator.model.shapes)
        per_direction = max(1, len(self.evaluator.data.x) * widest)
        return int(min(32, max(1, 2_000_000 // per_direction)))


def hvp(evaluator: Evaluator, theta: Array, v: Array) -> Array:
    """H v of the evaluator's loss at theta; v is one direction (P,) or a block (k, P)."""
    op = HessianOperator(evaluator, theta)
    v = np.asarray(v, dtype=np.float64)
    return op.matvec(v) if v.ndim == 1 else op.matmat(v)


def apply_in_blocks(op: HessianOperator, vs: Array) -> Array:
    size = op.block_size()
    return np.concatenate([op.matmat(vs[i : i + size]) for i in range(0, len(vs), size)])


def full_hessian(evaluator: Evaluator, theta: Array) -> Array:
    """The (P, P) Hessian from P products with unit vectors, symmetrized; P <= 2,000."""
    n = int(np.asarray(theta).size)
    if n > MAX_FULL_HESSIAN:
        raise ValueError(
            f"the full Hessian is limited to {MAX_FULL_HESSIAN} parameters and this model has "
            f"{n}: use top_eigenvectors, hutchinson_trace or density instead"
        )
    op = HessianOperator(evaluator, theta)
    h = apply_in_blocks(op, np.eye(n))
    return 0.5 * (h + h.T)


def spectrum(hessian: Array) -> Array:
    """Every eigenvalue of a symmetric matrix, ascending."""
    return np.linalg.eigvalsh(hessian)
