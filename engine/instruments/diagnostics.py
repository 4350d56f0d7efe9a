"""Training-health diagnostics: is each layer learning, stuck, dead or saturated?

Per parameter array (``layers.{k}.{name}``), after a step: the mean and largest |gradient|, the
gradient and weight norms, the update-to-weight ratio log10(std(update) / std(W)) (about -3 is
the usual rule of thumb: much lower and the layer barely learns, much higher and it thrashes), and
histograms of the weights and gradients. Per layer (``layers.{k}``), from a forward pass in
evaluation mode over fixed data: the fraction of dead units, the fraction of saturated values,
and histograms of pre-activations and activations.

Histograms use fixed bin edges (given once, in ``Bins``) plus an underflow and an overflow bin, so
records at different steps are comparable and the counts always add up to the number of values.

``HealthRecorder`` records all of this along training, cheaply enough to run every few steps: the
parameter statistics are one compiled call over the flat vectors; the data pass (which costs far
more: a forward pass over the whole data set) runs every ``data_every`` steps.
``signal_propagation`` shows at initialization how the initializer's gain makes signals vanish,
explode or keep their size through depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.files import atomic_save_npz as save_npz
from gradient_lab.engine.model.calls import walk_calls
from gradient_lab.engine.training.evaluation import EvalData, eval_data

__all__ = [
    "PARAMETER_STATS",
    "RELU_FAMILY",
    "SATURATION_BOUNDS",
    "UNIT_STATS",
    "Bins",
    "HealthRecorder",
    "histogram",
    "layer_health",
    "save_npz",
    "signal_propagation",
]

# Activations whose units can be "dead": a unit whose pre-activation is <= 0 on every sample. For
# relu such a unit outputs 0 and gets no gradient at all; for leaky_relu and elu it only gets the
# small negative-side slope, so it is reported too (nearly dead).
RELU_FAMILY = ("relu", "leaky_relu", "elu")
# A value is saturated outside these bounds (where the activation's slope is nearly 0).
SATURATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (-0.97, 0.97),
    "sigmoid": (0.03, 0.97),
}
PARAMETER_STATS = ("grad_mean_abs", "grad_max_abs", "grad_norm", "weight_norm", "update_ratio")
UNIT_STATS = ("dead_fraction", "saturated_fraction")
KIND_NONE, KIND_DEAD, KIND_SATURATION = 0, 1, 2
DEFAULT_CAPACITY = 1000  # records kept before thinning (every other one dropped)

jit = nb.njit(cache=True, nogil=True, error_model="numpy")
jit_inline = nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")


# ------------------------------------------------------------------------------------ histograms


def _symmetric_log_edges(low: float, high: float, per_decade: int) -> np.ndarray:
    """Edges ±10^k from ``low`` to ``high`` and 0: gradients span many orders of magnitude."""
    count = round(math.log10(high / low) * per_decade) + 1
    positive = np.logspace(math.log10(low), math.log10(high), count)
    return np.concatenate([-positive[::-1], [0.0], positive])


@dataclass(frozen=True)
class Bins:
    """Fixed histogram edges per quantity. Counts have len(edges) + 1 entries: values below the
    first edge, one per interval [e_i, e_{i+1}), and values at or above the last edge (where
    +inf and NaN go too)."""

    weight: np.ndarray = field(default_factory=lambda: np.linspace(-3.0, 3.0, 61))
    gradient: np.ndarray = field(default_factory=lambda: _symmetric_log_edges(1e-8, 10.0, 4))
    pre_activation: np.ndarray = field(default_factory=lambda: np.linspace(-6.0, 6.0, 61))
    activation: np.ndarray = field(default_factory=lambda: np.linspace(-3.0, 3.0, 61))

    def __post_init__(self) -> None:
        for name in ("weight", "gradient", "pre_activation", "activation"):
            edges = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0.0):
                raise ValueError(f"bins.{name}: expected at least 2 strictly increasing edges")
            object.__setattr__(self, name, edges)


Lookup = tuple[float, float]


def _lookup(edges: np.ndarray) -> Lookup:
    """(e0, 1 / width) for evenly spaced edges, whose bin follows from (v - e0) / width; (0, 0)
    for others, which are searched. (A tuple, not an array: compiled code gets it by value;
    reading it from an array made each lookup ten times slower.)"""
    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0.0):
        return (float(edges[0]), float(1.0 / widths[0]))
    return (0.0, 0.0)


@jit_inline
def _bin(v, edges, lookup):
    """The number of edges <= v (0: underflow, len(edges): overflow; NaN counts as overflow).

    For evenly spaced edges the index computed from ``lookup`` is corrected by comparing with
    the edges, so rounding cannot misplace a value; other edges are searched (faster than a
    logarithm for the gradients' geometric edges)."""
    n = edges.shape[0]
    if not v >= edges[0]:
        return n if v != v else 0
    if v >= edges[n - 1]:
        return n
    if lookup[1] > 0.0:
        i = min(int((v - lookup[0]) * lookup[1]) + 1, n - 1)
        while edges[i - 1] > v:  # stops at i = 1 at the latest: edges[0] <= v
            i -= 1
        while edges[i] <= v:  # stops at i = n - 1 at the latest: v < edges[n - 1]
            i += 1
        return i
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _count(values, edges, lookup, counts):
    counts[:] = 0
    for i in range(values.shape[0]):
        counts[_bin(values[i], edges, lookup)] += 1


def histogram(values: Any, edges: Any) -> np.ndarray:
    """Counts of ``values`` in fixed bins: underflow, one per [e_i, e_{i+1}), overflow.

    The counts (int64, len(edges) + 1) always add up to the number of values."""
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    flat = np.ascontiguousarray(np.asarray(values, dtype=np.float64).ravel())
    counts = np.zeros(len(edges) + 1, dtype=np.int64)
    _count(flat, edges, _lookup(edges), counts)
    return counts


# ------------------------------------------------------------------------------- compiled stats


@jit
def _parameter_stats(
    theta, grad, update, offsets, sizes, w_edges, w_lookup, g_edges, g_lookup, stats, w_hist, g_hist
):
    """Every parameter array's statistics and histograms in one pass over the flat vectors."""
    w_hist[:, :] = 0
    g_hist[:, :] = 0
    for s in range(offsets.shape[0]):
        start, n = offsets[s], sizes[s]
        sum_abs, max_abs, g2, w2, w_sum, u_sum = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        nan_seen = False
        for i in range(start, start + n):
            g, w = float(grad[i]), float(theta[i])
            a = abs(g)
            sum_abs += a
            if a > max_abs:
                max_abs = a
            elif a != a:
                nan_seen = True
            g2 += g * g
            w2 += w * w
            w_sum += w
            u_sum += float(update[i])
            w_hist[s, _bin(w, w_edges, w_lookup)] += 1
            g_hist[s, _bin(g, g_edges, g_lookup)] += 1
        w_mean, u_mean = w_sum / n, u_sum / n
        w_var, u_var = 0.0, 0.0
        for i in range(start, start + n):  # second pass: no cancellation in the variances
            dw = float(theta[i]) - w_mean
            du = float(update[i]) - u_mean
            w_var += dw * dw
            u_var += du * du
        stats[s, 0] = sum_abs / n
        stats[s, 1] = np.nan if nan_seen else max_abs
        stats[s, 2] = math.sqrt(g2)
        stats[s, 3] = math.sqrt(w2)
        if w_var > 0.0 and u_var > 0.0:
            stats[s, 4] = 0.5 * math.log10(u_var / w_var)
        else:
            stats[s, 4] = np.nan


@jit
def _layer_data_stats(
    z, y, kind, lo, hi, p_edges, p_lookup, a_edges, a_lookup, stats, p_hist, a_hist
):
    """Dead or saturated fraction and both histograms for one layer's (samples, units) values,
    in one pass over them."""
    n, units = z.shape
    p_hist[:] = 0
    a_hist[:] = 0
    alive = np.zeros(units, dtype=np.bool_)
    saturated = 0
    for i in range(n):
        for j in range(units):
            zv, yv = z[i, j], y[i, j]
            p_hist[_bin(zv, p_edges, p_lookup)] += 1
            a_hist[_bin(yv, a_edges, a_lookup)] += 1
            if zv > 0.0:
                alive[j] = True
            if yv < lo or yv > hi:
                saturated += 1
    stats[0] = np.nan
    stats[1] = np.nan
    if kind == KIND_DEAD and units > 0:
        stats[0] = (units - alive.sum()) / units
    elif kind == KIND_SATURATION and n * units > 0:
        stats[1] = saturated / (n * units)


# Numba's disk cache keys this kernel on this file alone, though it compiles in code from
# engine/compute/kernels.py: after changing that file, delete this file's cache (diagnostics.*).
@jit
def _fused_data_pass(
    net, theta, x, z_buf, y_buf, fn, kinds, los, his, p_edges, p_lookup, a_edges, a_lookup, out
):
    """Forward over all of ``x`` with the training kernels' own layer function, then each layer's
    statistics (``out`` = (stats, pre-activation histograms, activation histograms))."""
    stats, p_hist, a_hist = out
    n_out = net[3]
    n = x.shape[0]
    rows = z_buf.shape[1]
    zf = z_buf.reshape(z_buf.size)
    yf = y_buf.reshape(y_buf.size)
    for l in range(n_out.shape[0]):
        src, so = (x.reshape(x.size), 0) if l == 0 else (yf, (l - 1) * rows)
        kernels.forward_layer(
            kernels.layer_spec(net, l, kernels.SMALL_MATMUL),
            theta,
            src,
            so,
            zf,
            l * rows,
            yf,
            l * rows,
            n,
            fn,
        )
        z = z_buf[l, : n * n_out[l]].reshape(n, n_out[l])
        y = y_buf[l, : n * n_out[l]].reshape(n, n_out[l])
        _layer_data_stats(
            z, y, kinds[l], los[l], his[l], p_edges, p_lookup, a_edges, a_lookup,
            stats[l], p_hist[l], a_hist[l],
        )  # fmt: skip


def _unit_kind(activation: str) -> tuple[int, float, float]:
    """Which unit statistic applies to an activation, and the saturation bounds."""
    if activation in RELU_FAMILY:
        return KIND_DEAD, 0.0, 0.0
    if activation in SATURATION_BOUNDS:
        lo, hi = SATURATION_BOUNDS[activation]
        return KIND_SATURATION, lo, hi
    return KIND_NONE, 0.0, 0.0


# ------------------------------------------------------------------------------- bounded storage


class _Records:
    """Rows of arrays at recorded steps, at most ``capacity``: when full, every other row is
    dropped and from then on only steps that are multiples of the doubled stride are kept.

    Every record is computed into ``latest`` (what a live view shows) and copied into the rows
    when thinning keeps its step."""

    def __init__(
        self, capacity: int, stride: int, shapes: Mapping[str, tuple[tuple[int, ...], Any]]
    ):
        self.capacity = max(2, capacity)
        self.stride = stride
        self.steps = np.zeros(self.capacity, dtype=np.int64)
        # np.full writes every page now: lazily zeroed pages would fault on first use, inside
        # the recording (several microseconds per record)
        self.arrays = {
            name: np.full((self.capacity, *shape), 0, dtype=dtype)
            for name, (shape, dtype) in shapes.items()
        }
        self.count = 0
        self.latest = {
            name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in shapes.items()
        }
        self.latest_step = -1

    def forget_from(self, step: int) -> None:
        """Drop rows at ``step`` and later (the session was rewound)."""
        if self.count and step <= self.steps[self.count - 1]:
            self.count = int(np.searchsorted(self.steps[: self.count], step, side="left"))

    def row(self, step: int) -> int | None:
        """The row to fill for ``step`` (None when thinning skips it)."""
        self.forget_from(step)
        while True:
            if step % self.stride:
                return None
            if self.count < self.capacity:
                self.steps[self.count] = step
                self.count += 1
                return self.count - 1
            self._thin()

    def forget_after(self, step: int) -> None:
        """Drop rows after ``step`` (the session was rewound to it); the latest record becomes
        the last one kept if it came later."""
        self.count = int(np.searchsorted(self.steps[: self.count], step, side="right"))
        if self.latest_step > step:
            self.latest_step = int(self.steps[self.count - 1]) if self.count else -1
            if self.count:
                for name, arr in self.arrays.items():
                    self.latest[name][...] = arr[self.count - 1]

    def keep(self, step: int) -> None:
        """``latest`` now holds the record of ``step``: store it if thinning keeps that step."""
        self.latest_step = step
        row = self.row(step)
        if row is not None:
            for name, arr in self.arrays.items():
                arr[row] = self.latest[name]

    def _thin(self) -> None:
        keep = np.nonzero(self.steps[: self.count] % (2 * self.stride) == 0)[0]
        for arr in (self.steps, *self.arrays.values()):
            arr[: len(keep)] = arr[keep]
        self.count = len(keep)
        self.stride *= 2

    def view(self, name: str) -> np.ndarray:
        return self.arrays[name][: self.count]


# ------------------------------------------------------------------------------------ recording


class HealthRecorder:
    """Records training-health statistics along a session's training.

    ``HealthRecorder(session, every=10)`` attaches itself with ``session.add_state_recorder``
    (so fast runs are not split at its steps): after
    every ``every``-th step it records the parameter statistics, and every ``data_every`` steps
    (default ``10 * every``; a multiple of ``every``) the statistics of a forward pass in
    evaluation mode over ``data`` (default: the full training set). Memory is bounded: past
    ``capacity`` records, every other one is dropped and the stride doubles. A rewound session
    overwrites what was recorded after the step it returned to.
    """

    def __init__(
        self,
        session: Any,
        every: int = 10,
        data: EvalData | None = None,
        data_every: int | None = None,
        bins: Bins | None = None,
        capacity: int = DEFAULT_CAPACITY,
        attach: bool = True,
    ) -> None:
        if every < 1:
            raise ValueError(f"every = {every} is not allowed: expected a whole number >= 1")
        data_every = 10 * every if data_every is None else data_every
        if data_every < every or data_every % every:
            raise ValueError(
                f"data_every = {data_every} is not allowed: expected a multiple of every = {every}"
            )
        self.session = session
        self.model = session.model
        self.every, self.data_every = every, data_every
        self.bins = bins or Bins()
        self.data = data or eval_data(session)
        self._x = np.ascontiguousarray(self.data.x, dtype=self.model.dtype)
        self._setup_parameters(capacity)
        self._setup_layers(capacity)
        if attach:
            session.add_state_recorder(every, self.record)
            session.events.on("rewound", self._rewound)

    # -------------------------------------------------------------- set-up
    def _setup_parameters(self, capacity: int) -> None:
        slots = self.model.slots
        self.parameter_keys = [s.key for s in slots]
        self._offsets = np.array([s.offset for s in slots], dtype=np.int64)
        self._sizes = np.array([s.size for s in slots], dtype=np.int64)
        b = self.bins
        self._w_lookup, self._g_lookup = _lookup(b.weight), _lookup(b.gradient)
        p = len(slots)
        self.parameter_records = _Records(
            capacity,
            self.every,
            {
                "stats": ((p, len(PARAMETER_STATS)), np.float64),
                "weight_histogram": ((p, len(b.weight) + 1), np.int64),
                "gradient_histogram": ((p, len(b.gradient) + 1), np.int64),
            },
        )

    def _setup_layers(self, capacity: int) -> None:
        model, session = self.model, self.session
        fused = getattr(session, "fused", None)
        self._fused = fused
        if fused is not None:
            self.layer_keys = [f"layers.{k}" for k in range(len(model.layers))]
            activations = [layer.output_activation() for layer in model.layers]
            width = int(max(fused.n_out.max(), 1))
            rows = len(self._x) * width
            self._z_buf = np.zeros((len(model.layers), rows), dtype=model.dtype)
            self._y_buf = np.zeros((len(model.layers), rows), dtype=model.dtype)
        else:
            calls = self._observed_calls()
            self.layer_keys = [c.path for c in calls]
            activations = [c.node.layer.output_activation() for c in calls]
        self.layer_activations = activations
        kinds = [_unit_kind(a) for a in self.layer_activations]
        self._kinds = np.array([k[0] for k in kinds], dtype=np.int64)
        self._los = np.array([k[1] for k in kinds], dtype=np.float64)
        self._his = np.array([k[2] for k in kinds], dtype=np.float64)
        b = self.bins
        self._p_lookup, self._a_lookup = _lookup(b.pre_activation), _lookup(b.activation)
        n = len(self.layer_keys)
        self.data_records = _Records(
            capacity,
            self.data_every,
            {
                "stats": ((n, len(UNIT_STATS)), np.float64),
                "pre_activation_histogram": ((n, len(b.pre_activation) + 1), np.int64),
                "activation_histogram": ((n, len(b.activation) + 1), np.int64),
            },
        )

    def _observed_calls(self) -> list[Any]:
        """The layers, a composite's children included (by path, the first call of each),
        that report both a pre-activation and an activation."""
        _, calls = self.model.trace(self._x[:1], training=False)
        return list(
            _first_calls(
                calls, lambda c: {"pre_activation", "activation"} <= set(c.observed)
            ).values()
        )

    # -------------------------------------------------------------- recording
    def record(
        self,
        step: int,
        theta: np.ndarray | None = None,
        grad: np.ndarray | None = None,
        update: np.ndarray | None = None,
    ) -> None:
        """Record the state after ``step`` steps: the given parameters, gradient and update (a
        snapshot from a fast run), or by default the session's current ones. ``latest()``
        always shows it; the history keeps it unless thinning skips that step. A step at or
        before the last one recorded means the session was rewound, so the records from there
        on are dropped first."""
        theta = self.model.theta if theta is None else theta
        grad = self.model.grad if grad is None else grad
        update = self.session.last_update if update is None else update
        self.data_records.forget_from(step)
        latest = self.parameter_records.latest
        _parameter_stats(
            theta,
            grad,
            update,
            self._offsets,
            self._sizes,
            self.bins.weight,
            self._w_lookup,
            self.bins.gradient,
            self._g_lookup,
            latest["stats"],
            latest["weight_histogram"],
            latest["gradient_histogram"],
        )
        self.parameter_records.keep(step)
        if step % self.data_every == 0:
            self._data_pass(theta)
            self.data_records.keep(step)

    def _rewound(self, step: int) -> None:
        self.parameter_records.forget_after(step)
        self.data_records.forget_after(step)

    def _data_pass(self, theta: np.ndarray) -> None:
        """A forward pass over the data with ``theta`` (compiled), or with the model's own
        parameters (layer by layer; sessions without the compiled loop record after each
        step, when those are the same)."""
        latest = self.data_records.latest
        out = (
            latest["stats"],
            latest["pre_activation_histogram"],
            latest["activation_histogram"],
        )
        b = self.bins
        if self._fused is not None:
            _fused_data_pass(
                self._fused.net,
                theta,
                self._x,
                self._z_buf,
                self._y_buf,
                self._fused.fn,
                self._kinds,
                self._los,
                self._his,
                b.pre_activation,
                self._p_lookup,
                b.activation,
                self._a_lookup,
                out,
            )
            return
        _, calls = self.model.trace(self._x, training=False)
        by_path = _first_calls(calls)
        for i, path in enumerate(self.layer_keys):
            observed = by_path[path].observed
            z = _rows(observed["pre_activation"])
            y = _rows(observed["activation"])
            _layer_data_stats(
                z, y, self._kinds[i], self._los[i], self._his[i],
                b.pre_activation, self._p_lookup, b.activation, self._a_lookup,
                out[0][i], out[1][i], out[2][i],
            )  # fmt: skip

    # -------------------------------------------------------------- reading
    @property
    def steps(self) -> np.ndarray:
        return self.parameter_records.steps[: self.parameter_records.count].copy()

    @property
    def data_steps(self) -> np.ndarray:
        return self.data_records.steps[: self.data_records.count].copy()

    def series(self, key: str, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one statistic: a parameter's (``layers.0.W``, "update_ratio") or a
        layer's (``layers.0``, "dead_fraction")."""
        if key in self.parameter_keys and stat in PARAMETER_STATS:
            values = self.parameter_records.view("stats")[:, self.parameter_keys.index(key)]
            return self.steps, values[:, PARAMETER_STATS.index(stat)].copy()
        if key in self.layer_keys and stat in UNIT_STATS:
            values = self.data_records.view("stats")[:, self.layer_keys.index(key)]
            return self.data_steps, values[:, UNIT_STATS.index(stat)].copy()
        raise KeyError(
            f"no statistic {stat!r} for {key!r}: parameters {self.parameter_keys} have "
            f"{PARAMETER_STATS}, layers {self.layer_keys} have {UNIT_STATS}"
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything recorded, under the keys ``save_npz`` writes:

        - ``steps`` (R,): steps after which parameter statistics were recorded;
        - ``parameter_keys`` (P,): ``layers.{k}.{name}``;
        - ``grad_mean_abs``, ``grad_max_abs``, ``grad_norm``, ``weight_norm``, ``update_ratio``
          (R, P): mean and largest |gradient|, L2 norms, log10(std(update) / std(W)) (NaN when
          either is 0);
        - ``weight_histogram``, ``gradient_histogram`` (R, P, len(edges) + 1): int64 counts;
        - ``data_steps`` (D,): steps of the data-pass records; ``data_description``: what data;
        - ``layer_keys``, ``layer_activations`` (L,): ``layers.{k}`` and its activation name;
        - ``dead_fraction`` (D, L): units with pre-activation <= 0 on every sample (ReLU family,
          else NaN); ``saturated_fraction`` (D, L): values of tanh beyond ±0.97 or of sigmoid
          outside [0.03, 0.97] (else NaN);
        - ``pre_activation_histogram``, ``activation_histogram`` (D, L, len(edges) + 1);
        - ``weight_edges``, ``gradient_edges``, ``pre_activation_edges``, ``activation_edges``.
        """
        params, data = self.parameter_records, self.data_records
        return self._named(
            self.steps,
            {name: params.view(name) for name in params.arrays},
            self.data_steps,
            {name: data.view(name) for name in data.arrays},
        )

    def latest(self) -> dict[str, np.ndarray]:
        """The most recent record, kept even when thinning leaves it out of the history (what
        a live view shows): the keys of ``arrays()``, each without the leading record axis;
        ``steps`` and ``data_steps`` hold its two steps (-1: nothing recorded yet)."""
        params, data = self.parameter_records, self.data_records
        return self._named(
            np.array(params.latest_step),
            params.latest,
            np.array(data.latest_step),
            data.latest,
        )

    def _named(
        self,
        steps: np.ndarray,
        params: Mapping[str, np.ndarray],
        data_steps: np.ndarray,
        data: Mapping[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """The recorded arrays under their documented names (copies)."""
        out: dict[str, np.ndarray] = {
            "steps": steps,
            "parameter_keys": np.array(self.parameter_keys, dtype=str),
        }
        for i, name in enumerate(PARAMETER_STATS):
            out[name] = params["stats"][..., i].copy()
        out["weight_histogram"] = params["weight_histogram"].copy()
        out["gradient_histogram"] = params["gradient_histogram"].copy()
        out["data_steps"] = data_steps
        out["data_description"] = np.array(self.data.description)
        out["layer_keys"] = np.array(self.layer_keys, dtype=str)
        out["layer_activations"] = np.array(self.layer_activations, dtype=str)
        for i, name in enumerate(UNIT_STATS):
            out[name] = data["stats"][..., i].copy()
        out["pre_activation_histogram"] = data["pre_activation_histogram"].copy()
        out["activation_histogram"] = data["activation_histogram"].copy()
        for name in ("weight", "gradient", "pre_activation", "activation"):
            out[f"{name}_edges"] = getattr(self.bins, name).copy()
        return out

    def save(self, path: str | Path) -> None:
        """Write ``arrays()`` to an .npz file (keys documented there)."""
        save_npz(path, self.arrays())


def _first_calls(
    calls: list[Any], wanted: Callable[[Any], bool] = lambda c: True
) -> dict[str, Any]:
    """The first call of each layer path (children included) that is ``wanted``."""
    first: dict[str, Any] = {}
    for call in walk_calls(calls):
        if call.path not in first and wanted(call):
            first[call.path] = call
    return first


def _rows(values: np.ndarray) -> np.ndarray:
    """(samples, units) float64 view of a layer's values of any sample shape."""
    arr = np.asarray(values)
    return np.ascontiguousarray(arr.reshape(len(arr), -1), dtype=np.float64)


def layer_health(
    session: Any, data: EvalData | None = None, bins: Bins | None = None
) -> dict[str, dict[str, Any]]:
    """The statistics of the session's current state, once: per parameter array
    (``layers.{k}.{name}``: PARAMETER_STATS and ``weight_histogram``, ``gradient_histogram``) and
    per layer (``layers.{k}``: UNIT_STATS, ``activation``, ``pre_activation_histogram``,
    ``activation_histogram``). The gradient and update are those of the last step."""
    recorder = HealthRecorder(
        session, every=1, data=data, data_every=1, bins=bins, capacity=2, attach=False
    )
    recorder.record(0)
    arrays = recorder.arrays()
    result: dict[str, dict[str, Any]] = {}
    for p, key in enumerate(recorder.parameter_keys):
        entry: dict[str, Any] = {name: float(arrays[name][0, p]) for name in PARAMETER_STATS}
        entry["weight_histogram"] = arrays["weight_histogram"][0, p]
        entry["gradient_histogram"] = arrays["gradient_histogram"][0, p]
        result[key] = entry
    for i, key in enumerate(recorder.layer_keys):
        entry = {name: float(arrays[name][0, i]) for name in UNIT_STATS}
        entry["activation"] = recorder.layer_activations[i]
        entry["pre_activation_histogram"] = arrays["pre_activation_histogram"][0, i]
        entry["activation_histogram"] = arrays["activation_histogram"][0, i]
        result[key] = entry
    return result


# ---------------------------------------------------------------------- signal propagation


def signal_propagation(
    activation: str = "relu",
    init_gain: float = math.sqrt(2.0),
    depth: int = 20,
    width: int = 256,
    seeds: int = 10,
    n: int = 512,
    initializer: str = "he_normal",
    registry: Any = None,
) -> dict[str, np.ndarray]:
    """Pre-activation variance and gradient size through a deep, bias-free MLP at initialization.

    Inputs are n standard-normal samples of ``width`` features; each of ``depth`` layers computes
    z = h W (W from ``initializer`` with ``gain``, default σ = gain/√fan_in), h = f(z). A random
    unit-variance gradient at the last layer's output is propagated back. With ReLU, gain √2 (He)
    keeps the variance constant; below it signals vanish geometrically, above it they explode.

    Keys (arrays over layers 1..depth; ``*_runs`` have one row per seed, the rest are the mean
    and standard deviation over seeds): ``layer``, ``pre_activation_variance[_runs|_std]``
    (variance of z over samples and units), ``gradient_norm[_runs|_std]`` (‖dL/dz‖ over the batch,
    divided by √(n·width): the RMS back-propagated gradient), ``weight_gradient_norm[_runs|_std]``
    (‖dL/dW‖_F), and the settings ``activation``, ``init_gain``, ``initializer``.
    """
    if registry is None:
        from gradient_lab.engine.loading.discovery import default_registry

        registry = default_registry()
    act = registry.create("activation", activation)
    init = registry.create("initializer", initializer, gain=float(init_gain))
    runs = [_propagate(act, init, depth, width, n, seed) for seed in range(seeds)]
    out: dict[str, np.ndarray] = {"layer": np.arange(1, depth + 1)}
    for i, name in enumerate(("pre_activation_variance", "gradient_norm", "weight_gradient_norm")):
        values = np.array([run[i] for run in runs])
        out[f"{name}_runs"] = values
        out[name] = values.mean(axis=0)
        out[f"{name}_std"] = values.std(axis=0)
    out["activation"] = np.array(activation)
    out["init_gain"] = np.array(float(init_gain))
    out["initializer"] = np.array(initializer)
    return out


def _propagate(
    act: Any, init: Any, depth: int, width: int, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, width))
    weights, inputs, zs, ys = [], [], [], []
    for _ in range(depth):
        w = np.asarray(init.sample((width, width), width, width, rng), dtype=np.float64)
        z = h @ w
        inputs.append(h)
        h = act.apply(z)
        weights.append(w)
        zs.append(z)
        ys.append(h)
    variance = np.array([z.var() for z in zs])
    dy = rng.standard_normal(h.shape)
    grad_norm, weight_grad_norm = np.zeros(depth), np.zeros(depth)
    for k in range(depth - 1, -1, -1):
        dz = act.gradient(zs[k], ys[k], dy)
        grad_norm[k] = np.linalg.norm(dz) / math.sqrt(dz.size)
        weight_grad_norm[k] = np.linalg.norm(inputs[k].T @ dz)
        dy = dz @ weights[k].T
    return variance, grad_norm, weight_grad_norm
