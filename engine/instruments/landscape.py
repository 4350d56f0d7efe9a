"""Loss landscapes (after Li et al. 2018): the loss along lines and over planes in parameter space.

- 1D: along the segment between two parameter states (``line_between``: init to current,
  checkpoint to checkpoint) or along one direction from a point (``line_along``: a random
  filter-normalized direction, the negative gradient, the top Hessian eigenvector).
- 2D: ``LandscapeJob`` scans a grid around a point spanned by two directions: random Gaussian
  filter-normalized ones, the first two principal components of the recorded trajectory, two
  individual weights, or the top two Hessian eigenvectors. The recorded trajectory is projected
  onto the plane so the optimizer's path can be drawn on the surface.

Conventions. ``loss[j, i]`` is the loss at ``center + x[i] * d1 + y[j] * d2``: rows follow y,
columns follow x. Both axes contain 0.0 exactly, and the value there is the loss at the center as
computed by ``Evaluator.loss`` (the "current loss", bit for bit). The loss is the data loss (no
regularization penalty) in evaluation mode (dropout off, batch normalization on its running
statistics) on the full training set or on a seeded subsample whose size the result states.
Only trainable parameters move; running statistics stay those of the session.

A job snapshots the session when it is created (parameters, layer state, trajectory) and then
works on a private copy of the model: it can run in a worker thread while the session keeps
training, and it never writes to the session. The line functions take an ``Evaluator``: one from
``snapshot_evaluator(session)`` gives them the same freedom (a plain ``Evaluator(session)``
borrows the session's model and restores it bit for bit). Dense stacks run on compiled kernels
on every core (see ``PlaneLoss``); ``warm_up()`` compiles them ahead, as the session's kernels
are.

File format of ``save_npz`` (NumPy .npz, no pickles):

- ``kind``: "plane" or "line" (0-d string).
- plane: ``x`` (nx,), ``y`` (ny,), ``loss`` (ny, nx) with ``loss[j, i]`` at (x[i], y[j]) and NaN
  where a cancelled scan left no value, ``done`` (ny, nx) bool, ``origin_loss`` (0-d),
  ``center``, ``d1``, ``d2`` (P,), ``directions`` (0-d string: random, pca, weights, hessian or
  custom), ``labels`` (2,) axis names, ``explained_variance`` (2,) for PCA directions,
  ``eigenvalues`` (2,) for Hessian directions, ``trajectory`` (k, 2) and ``trajectory_steps`` (k,)
  when a trajectory was projected, ``complete`` (0-d bool).
- line: ``alpha`` (n,), ``loss`` (n,), ``label`` (0-d string), ``complete``.
- both: ``description`` (0-d string: the data the loss was evaluated on).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.fused import FusedNet, loss_hp
from gradient_lab.engine.files import atomic_save_npz
from gradient_lab.engine.model import Model, Slot
from gradient_lab.engine.training.evaluation import Evaluator, eval_data

Array = np.ndarray
Progress = Callable[[int, int], None]
Stop = Callable[[], bool]

DEFAULT_SIZE = 41
DEFAULT_COARSE = 11
INTERPOLATION = (-0.5, 1.5, 201)  # alpha range and count of line_between
ALONG = (-1.0, 1.0, 201)  # alpha range and count of line_along
# OpenBLAS runs a matrix product on one thread when m * n * k <= 65536 * 4; the compiled scan
# feeds it row blocks below that size so its two threads never compete for BLAS threads.
SINGLE_THREAD_GEMM = 262_144
ROW_BLOCK = 128  # samples per block of the row sweep (fastest of 32 to 256 on W5)


class LandscapeError(ValueError):
    """A request the landscape engine cannot honour (bad range, unknown weight, too few states)."""


# ------------------------------------------------------------------------------ coordinates


def axis(size: int, lo: float, hi: float) -> Array:
    """``size`` values on a uniform step from about ``lo`` to about ``hi`` with 0.0 exactly among
    them: (i - i0) * h, so the origin is a grid point and a symmetric range is exactly symmetric."""
    if size < 2:
        raise LandscapeError(f"size = {size} is not allowed: expected at least 2 points")
    if not lo <= 0.0 <= hi or lo == hi:
        raise LandscapeError(f"range ({lo}, {hi}) must contain 0 and have positive length")
    h = (hi - lo) / (size - 1)
    i0 = round(-lo / h)
    return (np.arange(size) - i0) * h


def origin_index(values: Array) -> int:
    return int(np.flatnonzero(values == 0.0)[0])


def coarse_indices(size: int, origin: int, coarse: int) -> Array:
    """Every stride-th index through the origin, about ``coarse`` of them (all if too few)."""
    stride = max(1, (size - 1) // max(1, coarse - 1))
    return np.flatnonzero((np.arange(size) - origin) % stride == 0)


def alphas(lo: float, hi: float, count: int, exact: Sequence[float] = (0.0, 1.0)) -> Array:
    """``count`` values from lo to hi; the grid value nearest each of ``exact`` is set to it, so
    the end points of a segment are evaluated exactly at their states."""
    values = np.linspace(lo, hi, count)
    step = (hi - lo) / max(count - 1, 1)
    for e in exact:
        k = int(np.argmin(np.abs(values - e)))
        if abs(values[k] - e) <= 0.5 * step:
            values[k] = e
    return values


# ------------------------------------------------------------------------------- directions


@dataclass
class Directions:
    """Two flat directions over theta and what they are."""

    d1: Array
    d2: Array
    kind: str  # "random", "pca", "weights", "hessian" or "custom"
    labels: tuple[str, str] = ("d1", "d2")
    explained_variance: Array | None = None  # PCA: share of each direction
    eigenvalues: Array | None = None  # Hessian: the two eigenvalues


def is_bias_like(slot: Slot) -> bool:
    """Biases and batch-norm gamma/beta: every parameter with at most one axis."""
    return len(slot.shape) <= 1


def filter_normalize(
    slots: Sequence[Slot], theta: Array, d: Array, include_biases: bool = False
) -> Array:
    """Scale ``d`` per output unit so that ||d_i|| = ||theta_i|| (Li et al.'s filter norm).

    A unit's filter is the set of weights feeding it: the engine stores a dense W as (inputs,
    units), so it is one column of W (the last axis of any weight with two or more axes; PyTorch's
    (out, in) layout makes it a row). One-dimensional parameters (biases, batch-norm gamma and
    beta) get a zero direction, or with ``include_biases`` the parameters themselves, as Li et al.'s
    code does; either way the plot is about the weights' scale, not their raw size."""
    out = np.array(d, dtype=theta.dtype, copy=True)
    for s in slots:
        seg = Model.view(out, s)
        w = Model.view(theta, s)
        if is_bias_like(s):
            seg[...] = w if include_biases else 0.0
            continue
        columns = seg.reshape(-1, s.shape[-1])
        d_norm = np.linalg.norm(columns, axis=0)
        w_norm = np.linalg.norm(w.reshape(-1, s.shape[-1]), axis=0)
        columns *= w_norm / np.where(d_norm > 0.0, d_norm, 1.0)
    return out


def random_direction(
    slots: Sequence[Slot], theta: Array, rng: np.random.Generator, include_biases: bool = False
) -> Array:
    """A Gaussian direction, filter-normalized (see ``filter_normalize``)."""
    return filter_normalize(slots, theta, rng.standard_normal(theta.size), include_biases)


def random_directions(
    slots: Sequence[Slot], theta: Array, seed: int = 0, include_biases: bool = False
) -> Directions:
    """Two filter-normalized Gaussian directions from one seeded generator (d1 drawn first)."""
    rng = np.random.default_rng(seed)
    d1 = random_direction(slots, theta, rng, include_biases)
    d2 = random_direction(slots, theta, rng, include_biases)
    return Directions(d1, d2, "random", ("random direction 1", "random direction 2"))


def pca_directions(states: Array, reference: Array | None = None) -> Directions:
    """The first two principal directions of the states' offsets from ``reference`` (default the
    final state, as Li et al.; a job uses its center), with the share of the summed squared
    offsets each explains.

    Each direction has unit length and is oriented so the first state lies on its negative side
    (the path arrives at the origin from the lower left). High shares alone prove little: a
    random walk puts about 60% on its first component."""
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or len(states) < 3:
        raise LandscapeError(
            "PCA directions need at least 3 recorded states: train further, or record the "
            "trajectory more often with a TrajectoryRecorder"
        )
    ref = states[-1] if reference is None else np.asarray(reference, dtype=np.float64)
    offsets = states - ref
    _, singular, vt = np.linalg.svd(offsets, full_matrices=False)
    power = singular**2
    if len(power) < 2 or power[1] <= power[0] * 1e-24:
        raise LandscapeError("the recorded states lie on a line: PCA finds only one direction")
    dirs = vt[:2].copy()
    for k in range(2):
        if offsets[0] @ dirs[k] > 0.0:
            dirs[k] = -dirs[k]
    ratios = power[:2] / power.sum()
    return Directions(dirs[0], dirs[1], "pca", ("PC1", "PC2"), explained_variance=ratios)


WeightChoice = tuple[str, int | Sequence[int]]


def weight_offset(slots: Sequence[Slot], choice: WeightChoice) -> int:
    """The position in theta of one weight, given as (key, index) like ("layers.0.W", (0, 1))."""
    key, index = choice
    by_key = {s.key: s for s in slots}
    if key not in by_key:
        raise LandscapeError(f"no weight {key!r}: choose one of {', '.join(by_key)}")
    s = by_key[key]
    idx = (index,) if isinstance(index, int) else tuple(index)
    if len(idx) != len(s.shape) or not all(0 <= i < n for i, n in zip(idx, s.shape, strict=True)):
        raise LandscapeError(f"index {idx} is outside {key} of shape {s.shape}")
    return s.offset + int(np.ravel_multi_index(idx, s.shape))


def weight_directions(
    slots: Sequence[Slot], n_params: int, first: WeightChoice, second: WeightChoice
) -> Directions:
    """Unit vectors on two individual weights: the plane is an exact slice in raw weight units."""
    a, b = weight_offset(slots, first), weight_offset(slots, second)
    if a == b:
        raise LandscapeError("choose two different weights")
    d1, d2 = np.zeros(n_params), np.zeros(n_params)
    d1[a], d2[b] = 1.0, 1.0
    labels = (_weight_label(first), _weight_label(second))
    return Directions(d1, d2, "weights", labels)


def _weight_label(choice: WeightChoice) -> str:
    key, index = choice
    idx = (index,) if isinstance(index, int) else tuple(index)
    return f"{key}[{', '.join(str(i) for i in idx)}]"


def _top_eigenvectors() -> Callable[..., tuple[Array, Array]]:
    """``curvature.top_eigenvectors``, imported on first use (it is optional here)."""
    try:
        from gradient_lab.engine.instruments.curvature import top_eigenvectors
    except ImportError as exc:
        raise LandscapeError(
            "Hessian directions need curvature.top_eigenvectors, which is not available"
        ) from exc
    return top_eigenvectors


def hessian_directions(evaluator: Evaluator, theta: Array) -> Directions:
    """The unit eigenvectors of the two algebraically largest Hessian eigenvalues."""
    values, vectors = _top_eigenvectors()(evaluator, theta, 2)
    return Directions(
        np.array(vectors[0]),
        np.array(vectors[1]),
        "hessian",
        (f"eigenvector 1 (λ = {values[0]:.4g})", f"eigenvector 2 (λ = {values[1]:.4g})"),
        eigenvalues=np.asarray(values, dtype=np.float64)[:2],
    )


def hessian_direction(evaluator: Evaluator, theta: Array) -> Array:
    """The unit eigenvector of the largest Hessian eigenvalue (sign as the solver returns it)."""
    _, vectors = _top_eigenvectors()(evaluator, theta, 1)
    return np.array(vectors[0])


def gradient_direction(evaluator: Evaluator, theta: Array, normalize: str = "parameters") -> Array:
    """The negative gradient, scaled to the parameter norm ("parameters": alpha = 1 moves as far
    as ||theta||, like a filter-normalized direction) or to unit length ("unit": alpha is the
    Euclidean distance moved)."""
    g = evaluator.gradient(theta)
    norm = float(np.linalg.norm(g))
    if norm == 0.0:
        raise LandscapeError("the gradient is zero here: there is no descent direction")
    if normalize == "unit":
        return -g / norm
    if normalize == "parameters":
        return -g * (float(np.linalg.norm(theta)) / norm)
    raise LandscapeError(f"normalize = {normalize!r} is not allowed: 'parameters' or 'unit'")


# ------------------------------------------------------------------------------- trajectory


class TrajectoryRecorder:
    """Keeps theta every ``every`` steps, for PCA directions and for drawing the path.

    ``attach(session)`` records the current state and registers with
    ``session.add_state_recorder`` (so fast runs are not split at its steps).
    After a rewind the states past the session's step are dropped at the next record. Past
    ``capacity`` states it keeps every other one and doubles its stride, so memory stays bounded.
    Reading (``steps``, ``states``) is safe from another thread while training records."""

    def __init__(self, every: int = 1, capacity: int = 2000) -> None:
        if every < 1 or capacity < 4:
            raise LandscapeError("every must be >= 1 and capacity >= 4")
        self.every = every
        self.capacity = capacity
        self.stride = every
        self._steps: list[int] = []
        self._states: list[Array] = []
        self._lock = threading.Lock()

    def attach(self, session: Any) -> TrajectoryRecorder:
        self._record(session.step, session.model.theta)
        session.add_state_recorder(self.every, self.record)
        session.events.on("rewound", self._rewound)
        return self

    def record(self, step: int, theta: Array, grad: Array, update: Array) -> None:
        """A state recorder (``Session.add_state_recorder``): keep theta at thinned steps."""
        if step % self.stride == 0 or not self._steps:
            self._record(step, theta)

    def _rewound(self, step: int) -> None:
        with self._lock:
            while self._steps and self._steps[-1] > step:
                self._steps.pop()
                self._states.pop()

    def _record(self, step: int, theta: Array) -> None:
        with self._lock:
            while self._steps and self._steps[-1] >= step:
                self._steps.pop()
                self._states.pop()
            self._steps.append(step)
            self._states.append(theta.copy())
            if len(self._steps) > self.capacity:
                self.stride *= 2
                keep = [
                    k
                    for k, s in enumerate(self._steps)
                    if k == 0 or s % self.stride == 0 or k == len(self._steps) - 1
                ]
                self._steps = [self._steps[k] for k in keep]
                self._states = [self._states[k] for k in keep]

    def steps(self) -> Array:
        with self._lock:
            return np.array(self._steps, dtype=np.int64)

    def states(self) -> Array:
        """(k, P) copy of the recorded parameter vectors, oldest first."""
        with self._lock:
            return np.array(self._states)


def checkpoint_trajectory(session: Any) -> tuple[Array, Array]:
    """(steps, states) of the session's checkpoints: the path it can always draw."""
    steps = np.array([c.step for c in session.checkpoints], dtype=np.int64)
    return steps, np.array([c.theta for c in session.checkpoints])


def project(states: Array, center: Array, d1: Array, d2: Array) -> Array:
    """Least-squares plane coordinates (k, 2) of each state around ``center``: solves the 2x2
    normal equations, so the directions need be neither orthogonal nor unit length."""
    basis = np.stack([d1, d2]).astype(np.float64)
    offsets = np.atleast_2d(np.asarray(states, dtype=np.float64)) - center
    gram = basis @ basis.T
    rhs = offsets @ basis.T
    try:
        return np.linalg.solve(gram, rhs.T).T
    except np.linalg.LinAlgError:
        return rhs @ np.linalg.pinv(gram).T


def parameters_at(session: Any, which: str | int) -> Array:
    """A copy of theta: "current", "init", or the step of a recorded checkpoint."""
    model = session.model
    if which == "current":
        return np.array(model.theta)
    if which == "init":
        init = session.initial_params
        return np.concatenate([np.ravel(init[s.key]) for s in model.slots]).astype(model.dtype)
    for c in session.checkpoints:
        if c.step == which:
            return np.array(c.theta)
    steps = ", ".join(str(c.step) for c in session.checkpoints)
    raise LandscapeError(f"no checkpoint at step {which!r}: recorded steps are {steps}")


# ------------------------------------------------------------------------ evaluating points


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
        _plane_losses(
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
        _piecewise_losses(
            self.tail_start, geometry, b_vals, take, self.slope, self.loss, self.fn, self.rows,
            work, partial,
        )  # fmt: skip
        return np.asarray((partial.sum(axis=0) / len(self.t))[bi, ai])


# Numba's disk cache keys these kernels on this file alone, though they compile in code from
# engine/compute/kernels.py: after changing that file, delete its cache (landscape.*; the test
# comparing the compiled and generic paths notices a stale copy).


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _finish(l0, net, theta, nr, zb, yb, fn, loss_code, t, hp0, dp):
    """Layers l0 .. last (layer l0's pre-activation already in zb[l0 % 2]) and the loss of the
    block; the engine's own activation, layer and loss code, so the definitions cannot drift."""
    _, _, n_in, n_out, act, act_a, act_b = net
    n_layers = n_in.shape[0]
    zf = zb.reshape(zb.size)
    yf = yb.reshape(yb.size)
    stride = zb.shape[1]
    o = (l0 % 2) * stride
    kernels.activate(act[l0], act_a[l0], act_b[l0], fn, zf, o, yf, o, nr, n_out[l0])
    for l in range(l0 + 1, n_layers):
        xo = ((l - 1) % 2) * stride
        o = (l % 2) * stride
        kernels.forward_layer(
            kernels.layer_spec(net, l, kernels.SMALL_MATMUL), theta, yf, xo, zf, o, yf, o, nr, fn
        )
    m = n_out[n_layers - 1]
    pred = yb[(n_layers - 1) % 2, : nr * m].reshape(nr, m)
    return kernels.loss_and_grad(loss_code, pred, t, hp0, dp[:nr])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _point_loss(net, theta, a, b, p0, p1, p2, t, loss_code, hp0, fn, rows, zb, yb, dp):
    """Mean loss at one point whose parameters are ``theta``: the first layer from the three
    products, the rest through ``_finish``, block by block."""
    b_off, n_out = net[1], net[3]
    n = p0.shape[0]
    m0 = n_out[0]
    total = 0.0
    for r0 in range(0, n, rows):
        nr = min(rows, n - r0)
        z = zb[0, : nr * m0].reshape(nr, m0)
        for i in range(nr):
            for j in range(m0):
                z[i, j] = p0[r0 + i, j] + a * p1[r0 + i, j] + b * p2[r0 + i, j]
        if b_off[0] >= 0:
            for i in range(nr):
                for j in range(m0):
                    z[i, j] += theta[b_off[0] + j]
        first = np.int64(0)  # a typed value, not a literal: one compiled _finish serves both
        total += (
            _finish(first, net, theta, nr, zb, yb, fn, loss_code, t[r0 : r0 + nr], hp0, dp) * nr
        )
    return total / n


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _points_share(c, chunks, net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work, out):
    """Thread c's contiguous share of the points."""
    th, zbuf, ybuf, dpbuf = work
    theta = th[c]
    n_points = a_vals.shape[0]
    for q in range(c * n_points // chunks, (c + 1) * n_points // chunks):
        a = a_vals[q]
        b = b_vals[q]
        for k in range(theta.shape[0]):
            theta[k] = center[k] + a * d1[k] + b * d2[k]
        out[q] = _point_loss(
            net, theta, a, b, p[0], p[1], p[2], t, loss[0], loss[1], fn, rows, zbuf[c], ybuf[c],
            dpbuf[c],
        )  # fmt: skip


@nb.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _plane_losses(net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work, out):
    """out[q] = loss at center + a_vals[q] d1 + b_vals[q] d2, where p = X times the first layer's
    W of center, d1 and d2. Each thread takes a share of the points with its own buffers (work:
    one leading row per thread; allocating inside the parallel loop would be hoisted out of it
    and shared)."""
    chunks = work[0].shape[0]
    for c in nb.prange(chunks):
        _points_share(c, chunks, net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work,
                      out)  # fmt: skip


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_weights(center, d1, d2, w_off, b_off, b, wb, db, cb, fb):
    """The second layer along grid row b: W + b E (wb) moving by D (db) per unit of a; the same
    for its bias (cb, fb)."""
    m0, m1 = wb.shape
    for i in range(m0):
        for j in range(m1):
            k = w_off + i * m1 + j
            wb[i, j] = center[k] + b * d2[k]
            db[i, j] = d1[k]
    for j in range(m1):
        cb[j] = center[b_off + j] + b * d2[b_off + j] if b_off >= 0 else 0.0
        fb[j] = d1[b_off + j] if b_off >= 0 else 0.0


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_inputs(p0, p1, p2, center, d1, d2, b_off, r0, nr, b, q, r):
    """Samples r0 .. r0 + nr: the first pre-activation along grid row b is q + a r."""
    m0 = q.shape[1]
    for i in range(nr):
        for j in range(m0):
            q[i, j] = p0[r0 + i, j] + b * p2[r0 + i, j]
            r[i, j] = p1[r0 + i, j]
    if b_off >= 0:
        for i in range(nr):
            for j in range(m0):
                q[i, j] += center[b_off + j] + b * d2[b_off + j]
                r[i, j] += d1[b_off + j]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _plan_flips(q, r, nr, a_vals, taken, n_t, slope, side, qm, rm, flips, counts):
    """Each unit's side at the row's first point (side, and q, r scaled by its slope there) and
    the units that change side later, bucketed by the point where they do: afterwards
    flips[2, counts[k - 1] : counts[k]] are the flat indices changing at taken point k.

    q + a r > 0 is monotone in a even in floating point, so a binary search over the points finds
    exactly the point where the direct test would first differ."""
    when, what, order = flips[0], flips[1], flips[2]
    a0 = a_vals[taken[0]]
    a_end = a_vals[taken[n_t - 1]]
    for k in range(n_t + 1):
        counts[k] = 0
    n_flip = 0
    m0 = q.shape[1]
    for i in range(nr):
        for j in range(m0):
            qi = q[i, j]
            ri = r[i, j]
            on = qi + a0 * ri > 0.0
            side[i, j] = 1.0 if on else 0.0
            coef = 1.0 if on else slope
            qm[i, j] = qi * coef
            rm[i, j] = ri * coef
            if slope != 1.0 and (qi + a_end * ri > 0.0) != on:
                lo = 1
                hi = n_t - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if (qi + a_vals[taken[mid]] * ri > 0.0) != on:
                        hi = mid
                    else:
                        lo = mid + 1
                when[n_flip] = lo
                what[n_flip] = i * m0 + j
                counts[lo] += 1
                n_flip += 1
    total = 0
    for k in range(n_t + 1):
        count = counts[k]
        counts[k] = total
        total += count
    for f in range(n_flip):
        order[counts[when[f]]] = what[f]
        counts[when[f]] += 1


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_sums(qm, rm, wb, db, nr, u, v, x2, tmp):
    """U = qm wb, V = rm wb + qm db, X = rm db over the active units at the row's first point
    (in slices small enough for BLAS to stay on the calling thread)."""
    step = max(1, SINGLE_THREAD_GEMM // (wb.shape[0] * wb.shape[1]))
    for i0 in range(0, nr, step):
        i1 = min(nr, i0 + step)
        kernels.mm_nn(qm[i0:i1], wb, u[i0:i1])
        kernels.mm_nn(rm[i0:i1], wb, v[i0:i1])
        kernels.mm_nn(qm[i0:i1], db, tmp[i0:i1])
        kernels.mm_nn(rm[i0:i1], db, x2[i0:i1])
    for i in range(nr):
        for h in range(v.shape[1]):
            v[i, h] += tmp[i, h]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _flip(i, j, s, q, r, wb, db, u, v, x2):
    """Unit j of sample i changes side: its share of U, V, X changes by s times its terms."""
    sq = s * q[i, j]
    sr = s * r[i, j]
    m1 = u.shape[1]
    for h in range(m1):
        u[i, h] += sq * wb[j, h]
    for h in range(m1):
        v[i, h] += sr * wb[j, h] + sq * db[j, h]
    for h in range(m1):
        x2[i, h] += sr * db[j, h]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _taken(take, row, taken):
    """The indices of the points wanted in this row, ascending; their count."""
    n_t = 0
    for k in range(take.shape[1]):
        if take[row, k]:
            taken[n_t] = k
            n_t += 1
    return n_t


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_block(r0, nr, b, taken, n_t, slope, geometry, loss, fn, work, c, partial_row):
    """One block of samples along one grid row: plan the side changes, build U, V, X, then at
    each point apply its changes, assemble the second pre-activation and finish the network."""
    (net, tail_net, center, d1, d2, p, t, a_vals) = geometry
    mats, vecs, tails, blk0, blk1, flips, points, zbuf, ybuf, dpbuf = work
    m0 = net[3][0]
    m1 = net[3][1]
    q, r, qm, rm, side = blk0[c, 0], blk0[c, 1], blk0[c, 2], blk0[c, 3], blk0[c, 4]
    u, v, x2, tmp = blk1[c, 0], blk1[c, 1], blk1[c, 2], blk1[c, 3]
    wb, db, cb, fb = mats[c, 0], mats[c, 1], vecs[c, 0], vecs[c, 1]
    counts, order = points[c, 1], flips[c, 2]
    _row_inputs(p[0], p[1], p[2], center, d1, d2, net[1][0], r0, nr, b, q, r)
    _plan_flips(q, r, nr, a_vals, taken, n_t, slope, side, qm, rm, flips[c], counts)
    _row_sums(qm, rm, wb, db, nr, u, v, x2, tmp)
    pos = 0
    for k in range(n_t):
        a = a_vals[taken[k]]
        while pos < counts[k]:
            i = order[pos] // m0
            j = order[pos] - i * m0
            pos += 1
            s = (1.0 - slope) if side[i, j] == 0.0 else (slope - 1.0)
            side[i, j] = 1.0 - side[i, j]
            _flip(i, j, s, q, r, wb, db, u, v, x2)
        z = zbuf[c, 1, : nr * m1].reshape(nr, m1)
        for i in range(nr):
            for h in range(m1):
                z[i, h] = u[i, h] + a * (v[i, h] + a * x2[i, h]) + cb[h] + a * fb[h]
        value = _finish(
            np.int64(1), tail_net, tails[c, k], nr, zbuf[c], ybuf[c], fn, loss[0],
            t[r0 : r0 + nr], loss[1], dpbuf[c],
        )  # fmt: skip
        partial_row[taken[k]] += value * nr


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_share(c, chunks, tail_start, geometry, b_vals, take, slope, loss, fn, rows, work,
                 partial):  # fmt: skip
    """Thread c's contiguous share of the samples, along every row."""
    net, _, center, d1, d2, _, t, a_vals = geometry
    mats, vecs, tails, points = work[0], work[1], work[2], work[6]
    n = t.shape[0]
    taken = points[c, 0]
    lo, hi = c * n // chunks, (c + 1) * n // chunks
    for row in range(b_vals.shape[0]):
        n_t = _taken(take, row, taken)
        if n_t == 0:
            continue
        b = b_vals[row]
        _row_weights(center, d1, d2, net[0][1], net[1][1], b, mats[c, 0], mats[c, 1], vecs[c, 0],
                     vecs[c, 1])  # fmt: skip
        for k in range(n_t):
            a = a_vals[taken[k]]
            for i in range(tails.shape[2]):
                j = tail_start + i
                tails[c, k, i] = center[j] + a * d1[j] + b * d2[j]
        for r0 in range(lo, hi, rows):
            _sweep_block(r0, min(rows, hi - r0), b, taken, n_t, slope, geometry, loss, fn, work,
                         c, partial[c, row])  # fmt: skip


@nb.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _piecewise_losses(tail_start, geometry, b_vals, take, slope, loss, fn, rows, work, partial):
    """partial[c, j, i] = thread c's share (its samples' summed loss) at a_vals[i], b_vals[j] for
    every take[j, i]; a_vals ascending. See PlaneLoss for the row sweep. Each thread takes a
    contiguous share of the samples, so every row keeps every core busy."""
    chunks = partial.shape[0]
    net, tail_net, center, d1, d2, p, t, a_vals = geometry  # a parallel loop takes no nesting
    for c in nb.prange(chunks):
        plane = (net, tail_net, center, d1, d2, p, t, a_vals)
        _sweep_share(c, chunks, tail_start, plane, b_vals, take, slope, loss, fn, rows, work,
                     partial)  # fmt: skip


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


# ------------------------------------------------------------------------------------ lines


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


# ------------------------------------------------------------------------------------ planes


@dataclass
class LandscapeResult:
    """A (possibly partial) 2D scan: ``loss[j, i]`` is the loss at (x[i], y[j])."""

    x: Array
    y: Array
    loss: Array  # (len(y), len(x)), NaN where not computed yet
    done: Array  # (len(y), len(x)) bool: which values are final
    origin_loss: float
    center: Array
    directions: Directions
    description: str  # the data the loss was evaluated on
    complete: bool
    cancelled: bool = False
    trajectory: Array | None = None  # (k, 2) projected recorded states
    trajectory_steps: Array | None = None  # (k,)
    seconds: float = 0.0  # since the scan started

    @property
    def explained_variance(self) -> Array | None:
        return self.directions.explained_variance

    @property
    def origin(self) -> tuple[int, int]:
        """(j, i) of the center in ``loss``."""
        return origin_index(self.y), origin_index(self.x)

    def project(self, states: Array) -> Array:
        """Plane coordinates of further states (e.g. new recorder entries as training goes on)."""
        return project(states, self.center, self.directions.d1, self.directions.d2)


DIRECTION_KINDS = ("random", "pca", "weights", "hessian")


def _blocks(point_rows: Array, size: int, whole_rows: bool) -> list[slice]:
    """Slices of a row-ordered point list of about ``size`` points each; with ``whole_rows``
    cut only between rows, so the row sweep starts each row once."""
    n = len(point_rows)
    if not whole_rows:
        return [slice(s, min(n, s + size)) for s in range(0, n, size)]
    cuts = [0]
    for boundary in np.flatnonzero(np.diff(point_rows)) + 1:
        if boundary - cuts[-1] >= size:
            cuts.append(int(boundary))
    cuts.append(n)
    return [slice(a, b) for a, b in itertools.pairwise(cuts) if b > a]


class LandscapeJob:
    """A 2D loss scan for interactive use: a coarse picture first, refined in place, cancellable,
    reporting progress, runnable in a worker thread.

    Creating the job snapshots the session (call it where the session is idle, e.g. between
    training calls); ``results()`` may then run anywhere while the session trains on. It yields
    the coarse grid (every 4th point of 41, 11 x 11), partial refinements at most every
    ``refresh`` seconds, and the final grid; after ``cancel()`` it yields the partial grid with
    ``cancelled`` set and stops. Every yield carries its own copies of the arrays.

    ``directions``: "random" (seeded Gaussian, filter-normalized, biases zeroed unless
    ``include_biases``), "pca" (of the trajectory), "weights" (``weights=((key, index), (key,
    index))``), "hessian", or a ``Directions`` object. ``center``: "current", "init", a checkpoint
    step, or a parameter vector. ``trajectory``: "checkpoints" (the session's), a
    ``TrajectoryRecorder``, a (k, P) array of states, or None."""

    def __init__(
        self,
        session: Any,
        directions: str | Directions = "random",
        *,
        size: int | tuple[int, int] = DEFAULT_SIZE,
        x_range: tuple[float, float] = (-1.0, 1.0),
        y_range: tuple[float, float] | None = None,
        center: str | int | Array = "current",
        seed: int = 0,
        include_biases: bool = False,
        weights: tuple[WeightChoice, WeightChoice] | None = None,
        trajectory: str | TrajectoryRecorder | Array | None = "checkpoints",
        subsample: int | None = None,
        data_seed: int = 0,
        coarse: int = DEFAULT_COARSE,
        refresh: float = 0.5,
        fast: bool | None = None,
        progress: Progress | None = None,
    ) -> None:
        if isinstance(directions, str) and directions not in DIRECTION_KINDS:
            raise LandscapeError(
                f"directions = {directions!r} is not allowed: one of {', '.join(DIRECTION_KINDS)}"
            )
        if directions == "weights" and weights is None:
            raise LandscapeError("weights directions need weights=((key, index), (key, index))")
        nx, ny = (size, size) if isinstance(size, int) else size
        self.x = axis(nx, *x_range)
        self.y = axis(ny, *(x_range if y_range is None else y_range))
        self.evaluator = snapshot_evaluator(session, subsample, data_seed)
        self.center = (
            np.array(center, dtype=session.model.dtype)
            if isinstance(center, np.ndarray)
            else parameters_at(session, center)
        )
        self.steps, self.states = self._trajectory(session, trajectory)
        if directions == "pca" and self.states is None:
            raise LandscapeError("PCA directions need a trajectory")
        self.kind = directions
        self.seed, self.include_biases, self.weights = seed, include_biases, weights
        self.coarse, self.refresh, self.fast = coarse, refresh, fast
        # points per call between cancel checks: enough to keep both compiled threads busy
        self.block = max(64, len(self.x))
        self.progress = progress
        self._stop = threading.Event()
        # cheap directions now, so a bad choice is an error where the job is made; the Hessian's
        # eigenvectors take a while and are computed where the job runs
        self._dirs: Directions | None = None
        if directions != "hessian":
            self._dirs = self.directions()

    @staticmethod
    def _trajectory(session: Any, source: Any) -> tuple[Array | None, Array | None]:
        if source is None:
            return None, None
        if isinstance(source, str):
            if source != "checkpoints":
                raise LandscapeError(f"trajectory = {source!r}: use 'checkpoints' or a recorder")
            return checkpoint_trajectory(session)
        if isinstance(source, TrajectoryRecorder):
            return source.steps(), source.states()
        states = np.atleast_2d(np.array(source, dtype=np.float64))
        return np.arange(len(states), dtype=np.int64), states

    def cancel(self) -> None:
        """Stop at the next block of points (thread-safe)."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def directions(self) -> Directions:
        """The two directions this job scans along (computed on the job's private model)."""
        if self._dirs is not None:
            return self._dirs
        if isinstance(self.kind, Directions):
            return self.kind
        model = self.evaluator.model
        if self.kind == "random":
            return random_directions(model.slots, self.center, self.seed, self.include_biases)
        if self.kind == "pca":
            assert self.states is not None
            return pca_directions(self.states, reference=self.center)
        if self.kind == "weights":
            assert self.weights is not None
            return weight_directions(model.slots, model.n_params, *self.weights)
        return hessian_directions(self.evaluator, self.center)

    def run(self) -> LandscapeResult:
        """Scan to the end (or to a cancel) and return the last result."""
        last: LandscapeResult | None = None
        for result in self.results():
            last = result
        assert last is not None
        return last

    def start(
        self,
        on_result: Callable[[LandscapeResult], None],
        on_error: Callable[[Exception], None] | None = None,
    ) -> threading.Thread:
        """Run in a daemon thread, calling ``on_result`` with every yielded result (and
        ``on_error`` with an exception that ends the scan, if given)."""

        def work() -> None:
            try:
                for result in self.results():
                    on_result(result)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(exc)

        thread = threading.Thread(target=work, name="landscape", daemon=True)
        thread.start()
        return thread

    def results(self) -> Iterator[LandscapeResult]:
        started = time.perf_counter()
        dirs = self.directions()
        plane = PlaneLoss(self.evaluator, self.center, dirs.d1, dirs.d2, self.fast)
        loss = np.full((len(self.y), len(self.x)), np.nan)
        done = np.zeros(loss.shape, dtype=bool)
        j0, i0 = origin_index(self.y), origin_index(self.x)
        origin_loss = self.evaluator.loss(self.center)
        loss[j0, i0], done[j0, i0] = origin_loss, True
        trajectory = None
        if self.states is not None and len(self.states):
            trajectory = project(self.states, self.center, dirs.d1, dirs.d2)

        def result(complete: bool) -> LandscapeResult:
            return LandscapeResult(
                self.x.copy(),
                self.y.copy(),
                loss.copy(),
                done.copy(),
                origin_loss,
                self.center,
                dirs,
                self.evaluator.data.description,
                complete,
                self.cancelled and not complete,
                trajectory,
                self.steps,
                time.perf_counter() - started,
            )

        passes = self._passes(j0, i0)
        last_yield = time.perf_counter()
        for stage, (rows, cols) in enumerate(passes):
            jj, ii = np.meshgrid(rows, cols, indexing="ij")
            todo = ~done[jj, ii]
            jj, ii = jj[todo], ii[todo]  # row by row, x fastest
            # compiled: whole rows per call; Evaluator.loss point by point: check often
            for part in _blocks(jj, self.block, True) if plane.fast else _blocks(jj, 8, False):
                if self.cancelled:
                    yield result(False)
                    return
                j, i = jj[part], ii[part]
                loss[j, i] = plane(self.x[i], self.y[j])
                done[j, i] = True
                if self.progress is not None:
                    self.progress(int(done.sum()), done.size)
                if stage > 0 and time.perf_counter() - last_yield >= self.refresh:
                    yield result(False)
                    last_yield = time.perf_counter()
            if stage < len(passes) - 1:
                yield result(False)
                last_yield = time.perf_counter()
        yield result(True)

    def _passes(self, j0: int, i0: int) -> list[tuple[Array, Array]]:
        """(rows, columns) of the coarse pass through the origin, then of the full grid."""
        cx = coarse_indices(len(self.x), i0, self.coarse)
        cy = coarse_indices(len(self.y), j0, self.coarse)
        passes = [(cy, cx)]
        if len(cx) < len(self.x) or len(cy) < len(self.y):
            passes.append((np.arange(len(self.y)), np.arange(len(self.x))))
        return passes


# ------------------------------------------------------------------------------------ files


def save_npz(result: LandscapeResult | LineResult, path: str | Path) -> None:
    """Write a result atomically in the format of this module's docstring."""
    arrays: dict[str, Array] = {
        "description": np.array(result.description),
        "complete": np.array(result.complete),
    }
    if isinstance(result, LineResult):
        arrays.update(kind=np.array("line"), alpha=result.alpha, loss=result.loss)
        arrays["label"] = np.array(result.label)
        atomic_save_npz(path, arrays)
        return
    dirs = result.directions
    arrays.update(
        kind=np.array("plane"),
        x=result.x,
        y=result.y,
        loss=result.loss,
        done=result.done,
        origin_loss=np.array(result.origin_loss),
        center=np.asarray(result.center),
        d1=np.asarray(dirs.d1),
        d2=np.asarray(dirs.d2),
        directions=np.array(dirs.kind),
        labels=np.array(dirs.labels),
    )
    if dirs.explained_variance is not None:
        arrays["explained_variance"] = dirs.explained_variance
    if dirs.eigenvalues is not None:
        arrays["eigenvalues"] = dirs.eigenvalues
    if result.trajectory is not None:
        arrays["trajectory"] = result.trajectory
        if result.trajectory_steps is not None:
            arrays["trajectory_steps"] = result.trajectory_steps
    atomic_save_npz(path, arrays)
