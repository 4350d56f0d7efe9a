"""Evaluating points: a private copy of the session to probe, and the loss over a plane,
point by point or on the compiled scan kernels."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.fused import FusedNet, loss_hp
from gradient_lab.engine.instruments.landscape.grid import Array, LandscapeError
from gradient_lab.engine.instruments.landscape.scan_kernels import (
    SINGLE_THREAD_GEMM,
    piecewise_losses,
    plane_losses,
)
from gradient_lab.engine.model import Model
from gradient_lab.engine.training.evaluation import Evaluator, eval_data

ROW_BLOCK = 128  # samples per block of the row sweep (fastest of 32 to 256 on W5)


def snapshot_evaluator(session: Any, subsample: int | None = None, seed: int = 0) -> Evaluator:
    """An Evaluator on a private copy of the session's model (same layers, parameters and state):
    probing it never touches the session, so it may run while the session trains elsewhere."""
    model = session.model
    init = session.registry.create("initializer", "zeros")
    twin = Model(
        model.configs,
        model.shapes[0],
        session.registry.create,
        init,
        np.random.default_rng(0),
        model.dtype,
    )
    twin.set_params(model.get_params(), "snapshot")
    data = eval_data(session, subsample, seed)
    frozen = SimpleNamespace(
        model=twin, loss=session.loss, x_train=session.x_train, targets_train=session.targets_train
    )
    return Evaluator(frozen, data)


def fast_path_supported(evaluator: Evaluator) -> bool:
    """Dense/activation stacks with an inline loss and a dense first layer run compiled."""
    model = evaluator.model
    if kernels.LOSS_CODES.get(evaluator.loss_fn.inline_name()) is None:
        return False
    if not FusedNet.supports(model):
        return False
    return bool(FusedNet(model).w_off[0] >= 0)


def piecewise_slope(fused: FusedNet) -> float | None:
    """The negative-side slope of a piecewise-linear first activation (ReLU 0, leaky ReLU its
    slope, linear 1) when a dense layer follows it, else None."""
    if len(fused.act) < 2 or fused.w_off[1] < 0:
        return None
    slopes = {
        kernels.ACT_RELU: 0.0,
        kernels.ACT_LEAKY: float(fused.act_a[0]),
        kernels.ACT_LINEAR: 1.0,
    }
    return slopes.get(int(fused.act[0]))


_KERNEL_LOCK = threading.Lock()  # Numba's fallback thread pool allows one parallel call at once


class PlaneLoss:
    """The loss at ``center + a * d1 + b * d2`` for many (a, b) on the evaluator's data.

    Generic path: ``Evaluator.loss`` point by point. Compiled paths (dense stacks, see
    ``fast_path_supported``) use two facts, on both cores:

    - The first layer's pre-activation is linear in (a, b): X (W + a D1 + b D2) = X W + a X D1 +
      b X D2, so three matrix products serve every point.
    - When the first activation is piecewise linear (ReLU, leaky ReLU) and a dense layer follows,
      along a grid row (b fixed) the first layer's output is (q + a r) on its active side, so the
      second layer's pre-activation is U + a V + a^2 X for sums U, V, X over the active units.
      A unit's pre-activation is linear in a, so it changes side at most once along the row:
      the sums are built once per row and then updated only where a unit changes side. Each
      point then runs only from the second activation on.

    The compiled sums run in another order than NumPy's, so values agree with the generic path to
    about 1e-15 relative, not bit for bit; callers take the origin's value from
    ``Evaluator.loss``."""

    def __init__(
        self, evaluator: Evaluator, center: Array, d1: Array, d2: Array, fast: bool | None = None
    ) -> None:
        self.evaluator = evaluator
        dtype = evaluator.model.dtype
        self.center = np.ascontiguousarray(center, dtype=dtype)
        self.d1 = np.ascontiguousarray(d1, dtype=dtype)
        self.d2 = np.ascontiguousarray(d2, dtype=dtype)
        supported = fast_path_supported(evaluator)
        if fast and not supported:
            raise LandscapeError("the compiled path needs a dense stack with a built-in loss")
        self.compiled = (
            _Compiled.build(evaluator, self.center, self.d1, self.d2)
            if (supported if fast is None else fast)
            else None
        )

    @property
    def fast(self) -> bool:
        return self.compiled is not None

    @property
    def sweeps_rows(self) -> bool:
        """Whether points cost by grid row: a row's sweep costs nearly as much for a few of
        its points as for all of them (every side change along it is applied either way)."""
        return self.compiled is not None and self.compiled.slope is not None

    def __call__(self, a: Array, b: Array) -> Array:
        a = np.ascontiguousarray(a, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        if self.compiled is not None:
            return self.compiled(a, b)
        return np.array(
            [
                self.evaluator.loss(self.center + ai * self.d1 + bi * self.d2)
                for ai, bi in zip(a, b, strict=True)
            ]
        )


@dataclass
class _Compiled:
    """Everything the scan kernels read: the net, the plane, X times the first layer's weights
    of center, d1 and d2, and per-thread work buffers (one leading row per thread)."""

    net: tuple[Array, ...]
    fn: Any
    center: Array
    d1: Array
    d2: Array
    p: tuple[Array, Array, Array]
    t: Array
    loss: tuple[int, float]  # kernel code, hyperparameter
    rows: int  # samples per block: small matrix products stay single-threaded in BLAS
    slope: float | None  # piecewise-linear first activation: the row sweep
    buffers: tuple[Array, ...]
    tail_start: int = 0  # row sweep: the layers after the second, addressed from here in theta
    tail_net: tuple[Array, ...] = ()

    @staticmethod
    def build(evaluator: Evaluator, center: Array, d1: Array, d2: Array) -> _Compiled:
        model = evaluator.model
        fused = FusedNet(model)
        x = np.ascontiguousarray(evaluator.data.x, dtype=model.dtype)
        w0 = int(fused.w_off[0])
        shape = (int(fused.n_in[0]), int(fused.n_out[0]))

        def first(v: Array) -> Array:
            return np.ascontiguousarray(x @ v[w0 : w0 + shape[0] * shape[1]].reshape(shape))

        slope = piecewise_slope(fused)
        dims = fused.n_in * fused.n_out
        after = 1 if slope is None else 2  # the row sweep multiplies layer 1 in slices
        widest = max([int(dims[k]) for k in range(after, len(dims)) if fused.w_off[k] >= 0] or [1])
        cap = ROW_BLOCK if slope is not None else 512
        rows = int(min(len(x), max(8, min(cap, SINGLE_THREAD_GEMM // widest))))
        loss = (kernels.LOSS_CODES[evaluator.loss_fn.inline_name()], loss_hp(evaluator.loss_fn))
        compiled = _Compiled(
            net=fused.net,
            fn=fused.fn,
            center=center,
            d1=d1,
            d2=d2,
            p=(first(center), first(d1), first(d2)),
            t=np.ascontiguousarray(evaluator.data.t, dtype=model.dtype),
            loss=loss,
            rows=rows,
            slope=slope,
            buffers=(),
        )
        tail = [s.offset for s in model.slots if s.layer >= 2]
        compiled.allocate(min(tail, default=center.size), max(1, nb.get_num_threads()))
        return compiled

    def allocate(self, tail_start: int, chunks: int) -> None:
        dtype = self.center.dtype
        n_out = self.net[3]
        rows, width = self.rows, int(n_out.max())
        common = (
            np.empty((chunks, 2, rows * width), dtype=dtype),
            np.empty((chunks, 2, rows * width), dtype=dtype),
            np.empty((chunks, rows, int(n_out[-1])), dtype=dtype),
        )
        if self.slope is None:
            self.buffers = (np.empty((chunks, self.center.size), dtype=dtype), *common)
            return
        self.tail_start = tail_start
        self.tail_net = (
            *(np.where(off >= 0, off - tail_start, -1) for off in self.net[:2]),
            *self.net[2:],
        )
        m0, m1 = int(n_out[0]), int(n_out[1])
        self.buffers = (
            np.empty((chunks, 2, m0, m1), dtype=dtype),
            np.empty((chunks, 2, m1), dtype=dtype),
            np.empty((chunks, 5, rows, m0), dtype=dtype),
            np.empty((chunks, 4, rows, m1), dtype=dtype),
            np.empty((chunks, 3, rows * m0), dtype=np.int64),
            *common,
        )

    def __call__(self, a: Array, b: Array) -> Array:
        with _KERNEL_LOCK:
            return self._points(a, b) if self.slope is None else self._rows(a, b)

    def _points(self, a: Array, b: Array) -> Array:
        out = np.empty(len(a))
        plane_losses(
            self.net, self.center, self.d1, self.d2, self.p, self.t, a, b, self.loss, self.fn,
            self.rows, self.buffers, out,
        )  # fmt: skip
        return out

    def _rows(self, a: Array, b: Array) -> Array:
        """Group the points into grid rows (one b) with ascending a, and sweep each row."""
        assert self.slope is not None
        a_vals, ai = np.unique(a, return_inverse=True)
        b_vals, bi = np.unique(b, return_inverse=True)
        take = np.zeros((len(b_vals), len(a_vals)), dtype=np.bool_)
        take[bi, ai] = True
        mats, vecs, blk0, blk1, flips, zbuf, ybuf, dpbuf = self.buffers
        chunks = mats.shape[0]
        partial = np.zeros((chunks, len(b_vals), len(a_vals)))
        size = self.center.size - self.tail_start
        tails = np.empty((chunks, len(a_vals), size), dtype=self.center.dtype)
        points = np.empty((chunks, 2, len(a_vals) + 1), dtype=np.int64)
        work = (mats, vecs, tails, blk0, blk1, flips, points, zbuf, ybuf, dpbuf)
        geometry = (
            self.net, self.tail_net, self.center, self.d1, self.d2, self.p, self.t, a_vals,
        )  # fmt: skip
        piecewise_losses(
            self.tail_start, geometry, b_vals, take, self.slope, self.loss, self.fn, self.rows,
            work, partial,
        )  # fmt: skip
        return np.asarray((partial.sum(axis=0) / len(self.t))[bi, ai])


def warm_up(dtype: Any = np.float64) -> float:
    """Compile the scan kernels for ``dtype`` (or load them from the disk cache) on a 1-2-1 ReLU
    network; returns the seconds taken. A window calls this in a worker at start-up."""
    started = time.perf_counter()
    dt = np.dtype(dtype)
    i64 = np.int64
    net = (
        np.array([0, 4], dtype=i64),
        np.array([2, 6], dtype=i64),
        np.array([1, 2], dtype=i64),
        np.array([2, 1], dtype=i64),
        np.array([kernels.ACT_RELU, kernels.ACT_LINEAR], dtype=i64),
        np.zeros(2),
        np.zeros(2),
    )
    theta = np.linspace(-1.0, 1.0, 7).astype(dt)
    x = np.linspace(-1.0, 1.0, 3).astype(dt)[:, None]
    p = (x @ theta[None, :2], x @ theta[None, 2:4], x @ theta[None, :2])
    points = np.array([-0.5, 0.5])
    for slope in (None, 0.0):
        compiled = _Compiled(
            net, kernels.NO_FUNCTION, theta, theta[::-1].copy(), theta * 0.5, p,
            np.zeros((3, 1), dtype=dt), (kernels.LOSS_MSE, 0.0), 2, slope, (),
        )  # fmt: skip
        compiled.allocate(7, 1)
        compiled(points, points)
    return time.perf_counter() - started
