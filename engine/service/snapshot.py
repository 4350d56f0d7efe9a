"""Immutable snapshots of a training session, and the queries views ask of them.

A snapshot holds copies of everything a view shows (parameters, gradients, layer state, the
newest history rows), all read-only, so a view never reads an array the worker is writing. The
queries (per-layer values for any inputs, the network's output over a grid in data
coordinates, per-layer statistics) run the pure layers at the snapshot's own parameters and
state, on whatever thread asks: the step in progress is never disturbed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.model import Model
from gradient_lab.engine.model.calls import walk_calls
from gradient_lab.engine.training.data import make_features
from gradient_lab.engine.training.targets import TargetCoding, rows

SATURATION = 0.99  # an output beyond 99% of its activation's half-range from the middle
DECADES = 16  # how far below the largest |gradient| the magnitude histogram reaches
PROBE_LIMIT = 1000  # probe samples taken from a planar set's validation points at most


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy."""
    out = np.array(a, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class SessionFacts:
    """What stays fixed for a session's life: its model (structure and pure layers), how to turn
    data coordinates into inputs and outputs into predictions, and where the data lies."""

    model: Model
    coding: TargetCoding | None
    task: str
    planar: bool
    feature_names: tuple[str, ...]
    bounds: tuple[tuple[float, float], tuple[float, float]] | None
    phase_names: tuple[str, ...]
    parameter_keys: tuple[str, ...]
    loss: Any = None  # the session's loss, as it scores the model's outputs
    optimizer_name: str = ""
    dataset_name: str = ""
    n_classes: int = 0
    class_names: tuple[str, ...] = ()
    # a planar set's raw 2D points and their targets (class labels, or regression values), for
    # scatter plots over the output whatever the features; None for other sets
    points_train: np.ndarray | None = None
    points_val: np.ndarray | None = None
    targets_train: np.ndarray | None = None
    targets_val: np.ndarray | None = None
    # a regression on one input: its training and validation samples as (x, y) rows, for the
    # fitted curve; None for other sets
    curve_train: np.ndarray | None = None
    curve_val: np.ndarray | None = None
    # inputs to probe the units with (validation samples, as network inputs) for the health
    # views' dead and saturated units; None: a planar set's validation points stand in
    probe_inputs: np.ndarray | None = None


@dataclass(frozen=True)
class GridOutput:
    """The network over a grid: ``xs`` (nx,), ``ys`` (ny,), and for classification the predicted
    ``labels`` (ny, nx), class ``scores`` (ny, nx, k) and, for one output, the ``margin``
    (ny, nx) from -1 (surely class 0) to 1 (surely class 1); for regression ``values``
    (ny, nx, outputs). Element [j, i] is the point (xs[i], ys[j])."""

    xs: np.ndarray
    ys: np.ndarray
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    values: np.ndarray | None = None
    margin: np.ndarray | None = None


@dataclass(frozen=True)
class Snapshot:
    """The session after ``step`` steps (and ``phase_index`` phases of the next one)."""

    version: int
    facts: SessionFacts
    step: int
    epoch: int
    phase_index: int
    next_phase: str
    theta: np.ndarray
    grad: np.ndarray
    last_update: np.ndarray
    state: dict[str, np.ndarray]
    last_loss: float
    loss_terms: dict[str, float]
    history_reset: bool  # views drop what they kept: the rows below are the whole history
    new_steps: np.ndarray  # (k, 3) rows of (step, epoch, loss) since the last snapshot
    new_epochs: tuple[dict[str, Any], ...]
    playing: bool
    diverged: str | None
    lr: float = 0.0  # the learning rate of the last update (of the next, at step 0)
    optimizer_hp: dict[str, Any] = field(default_factory=dict)
    # the minibatch of the step in progress, its inputs and the loss's targets (None between
    # steps): the step inspector's numbers
    batch_inputs: np.ndarray | None = None
    batch_targets: np.ndarray | None = None
    # the step of the epoch record the first of ``new_epochs`` replaces (the thinned history
    # keeps a record off its stride only while it is the latest), None when it adds to them
    replaced_epoch_step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # answers to the queries that take no inputs, kept: several views ask them of one snapshot
    # (not an argument, so `dataclasses.replace` starts a copy without them)
    _answers: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    # ------------------------------------------------------------------ queries
    def merge_epochs(
        self, records: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        """Bring a view's copy of the epoch records up to this snapshot, in place: emptied
        after a history reset, its latest dropped when the history replaced it, then the new
        records (those ``keep`` accepts) appended."""
        if self.history_reset:
            records.clear()
        elif records and records[-1]["step"] == self.replaced_epoch_step:
            records.pop()
        records.extend(r for r in self.new_epochs if keep is None or keep(r))

    def parameters(self) -> dict[str, np.ndarray]:
        """Every trainable weight by key, as read-only views of the snapshot's copy."""
        return {s.key: Model.view(self.theta, s) for s in self.facts.model.slots}

    def gradients(self) -> dict[str, np.ndarray]:
        """The last gradient of every trainable weight by key (read-only views)."""
        return {s.key: Model.view(self.grad, s) for s in self.facts.model.slots}

    def updates(self) -> dict[str, np.ndarray]:
        """The last update of every trainable weight by key (new value minus old)."""
        return {s.key: Model.view(self.last_update, s) for s in self.facts.model.slots}

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for inputs x in evaluation mode."""
        model = self.facts.model
        x = np.ascontiguousarray(x, dtype=model.dtype)
        return model.forward(x, training=False, theta=self.theta, state=self.state)

    def layer_values(self, x: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Every layer's (and child layer's) input and observed values (pre-activation,
        activation, attention...) for inputs x, by path: thumbnails of every neuron."""
        model = self.facts.model
        x = np.ascontiguousarray(x, dtype=model.dtype)
        _, calls = model.trace(x, training=False, theta=self.theta, state=self.state)
        out: dict[str, dict[str, np.ndarray]] = {}
        for call in walk_calls(calls):
            values = dict(call.observed)
            if call.inputs and isinstance(call.inputs[0], np.ndarray):
                values["input"] = call.inputs[0]
            out.setdefault(call.path, values)
        return out

    def grid_inputs(
        self, resolution: int = 50, bounds: tuple[tuple[float, float], ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid coordinates in data space and the network inputs they give (derived features
        included), for planar data sets."""
        if not self.facts.planar:
            raise ValueError("a grid in data coordinates needs a planar (2D) data set")
        (x0, x1), (y0, y1) = bounds or self.facts.bounds or ((-1.0, 1.0), (-1.0, 1.0))
        xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
        gx, gy = np.meshgrid(xs, ys)
        points = np.column_stack([gx.ravel(), gy.ravel()])
        return xs, ys, make_features(points, self.facts.feature_names)

    def output_grid(
        self, resolution: int = 50, bounds: tuple[tuple[float, float], ...] | None = None
    ) -> GridOutput:
        """The network's output over a grid in data coordinates, decoded as the session decodes
        it (labels and scores, or regression values): a decision boundary needs no numerics."""
        xs, ys, inputs = self.grid_inputs(resolution, bounds)
        out = self.outputs(inputs)
        shape = (len(ys), len(xs))
        coding = self.facts.coding
        if self.facts.task == "classification" and coding is not None:
            labels, scores = coding.decode(out)
            margin = coding.margin(out).reshape(shape) if coding.outputs == 1 else None
            return GridOutput(
                xs, ys, labels=labels.reshape(shape), scores=_grid(scores, shape), margin=margin
            )
        return GridOutput(xs, ys, values=_grid(rows(out), shape))

    def output_curve(self, resolution: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """A one-input regression's fitted curve: x over the data's range (a tenth beyond each
        end) and the network's first output there."""
        points = self.facts.curve_train
        if points is None:
            raise ValueError("a fitted curve needs a regression on one input")
        low, high = float(points[:, 0].min()), float(points[:, 0].max())
        pad = 0.1 * max(high - low, 1e-9)
        xs = np.linspace(low - pad, high + pad, resolution)
        return xs, rows(self.outputs(xs[:, None]))[:, 0]

    def layer_stats(self) -> dict[str, dict[str, float]]:
        """Per top-level layer: weight and gradient norms, means and spreads, and the size of
        the last update relative to the weights (the training-health views' numbers)."""
        if "layer_stats" not in self._answers:
            self._answers["layer_stats"] = self._layer_stats()
        return self._answers["layer_stats"]

    def _layer_stats(self) -> dict[str, dict[str, float]]:
        model = self.facts.model
        stats: dict[str, dict[str, float]] = {}
        for k, node in enumerate(model.nodes):
            slots = model.layer_slots(k)
            if not slots:
                continue
            w = np.concatenate([Model.view(self.theta, s).ravel() for s in slots])
            g = np.concatenate([Model.view(self.grad, s).ravel() for s in slots])
            u = np.concatenate([Model.view(self.last_update, s).ravel() for s in slots])
            norm = float(np.linalg.norm(w))
            g_abs = np.abs(g)
            stats[node.path] = {
                "weight_norm": norm,
                "weight_mean": float(w.mean()),
                "weight_std": float(w.std()),
                "weight_abs_max": float(np.abs(w).max()),
                "grad_norm": float(np.linalg.norm(g)),
                "grad_mean": float(g.mean()),
                "grad_std": float(g.std()),
                "grad_abs_mean": float(g_abs.mean()),
                "grad_abs_max": float(g_abs.max()),
                "update_ratio": float(np.linalg.norm(u) / norm) if norm else 0.0,
            }
        return stats

    def histograms(self, bins: int | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Per top-level layer with weights: how its weights and its gradient are spread, each
        in ``bins`` equal bins over ±(its largest magnitude), so nothing falls outside and the
        counts add up to the layer's number of weights (an odd ``bins`` centres a bin on 0;
        None: an odd number near 2√n, 7 to 41, so 12 weights are not spread over 41 bins).
        Keys ``weight_edges``, ``weight_counts``, ``grad_edges``, ``grad_counts``; the edges
        span ±1 when every value is 0, and non-finite values (a diverged run) are left out."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for path, (w, g) in self._layer_vectors().items():
            n = bins or int(np.clip(2 * round(np.sqrt(w.size)) + 1, 7, 41))
            w_edges, w_counts = _symmetric_histogram(w, n)
            g_edges, g_counts = _symmetric_histogram(g, n)
            out[path] = {
                "weight_edges": w_edges,
                "weight_counts": w_counts,
                "grad_edges": g_edges,
                "grad_counts": g_counts,
            }
        return out

    def gradient_magnitudes(self, per_decade: int = 4) -> dict[str, Any]:
        """Every layer's |gradient| on one log10 axis, so layers whose gradients vanish or
        explode sit decades apart: ``edges`` (log10 |g|, ``per_decade`` bins a decade, whole
        decades from the smallest to the largest nonzero |g| of any layer, at most ``DECADES``
        below the largest; smaller values count in the first bin), ``counts`` {path: counts}
        and ``zeros`` {path: how many gradients are exactly 0, such as a dead unit's}."""
        vectors = {p: np.abs(g[np.isfinite(g)]) for p, (_, g) in self._layer_vectors().items()}
        nonzero = [a[a > 0] for a in vectors.values()]
        found = [a for a in nonzero if a.size]
        if found:
            top = int(np.ceil(np.log10(max(float(a.max()) for a in found))))
            bottom = int(np.floor(np.log10(min(float(a.min()) for a in found))))
            bottom = min(max(bottom, top - DECADES), top - 1)
        else:
            bottom, top = -1, 0
        edges = np.linspace(bottom, top, (top - bottom) * per_decade + 1)
        counts, zeros = {}, {}
        for (path, a), nz in zip(vectors.items(), nonzero, strict=True):
            logs = np.clip(np.log10(nz), edges[0], edges[-1])
            counts[path] = np.histogram(logs, bins=edges)[0]
            zeros[path] = int(a.size - nz.size)
        return {"edges": edges, "counts": counts, "zeros": zeros}

    def probe_inputs(self) -> np.ndarray | None:
        """Samples to probe the units with, as network inputs: the facts' ``probe_inputs``, or
        a planar set's validation points (its training points when none are held out) through
        the session's features; None when the session offers neither."""
        facts = self.facts
        if facts.probe_inputs is not None:
            return facts.probe_inputs
        points = facts.points_val
        if points is None or len(points) == 0:
            points = facts.points_train
        if not facts.planar or points is None or len(points) == 0:
            return None
        return make_features(points[:PROBE_LIMIT], facts.feature_names)

    def unit_activity(self, x: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
        """Dead and saturated units over the samples ``x`` (default: ``probe_inputs()``), per
        layer with an activation (children included), by path. A unit is one element of a
        sample's output. ``dead``: the share of units whose pre-activation is <= 0 on every
        sample, for activations with a kink at 0 (a ReLU unit then outputs 0 everywhere and
        learns nothing; leaky ReLU and ELU keep only their small negative side); ``saturated``:
        the share of outputs beyond ``SATURATION`` of a bounded activation's half-range from
        its middle (tanh: |y| > 0.99; its slope there is nearly 0). Both are NaN where they do
        not apply; without samples the answer is empty. Also ``activation`` (its name), ``units``,
        ``dead_units`` (bool per unit) and ``saturated_units`` (per unit, the share of samples
        saturated)."""
        if x is None:
            x = self.probe_inputs()
        values = {} if x is None or len(x) == 0 else self.layer_values(x)
        out: dict[str, dict[str, Any]] = {}
        for node in self.facts.model.walk():
            act = getattr(node.layer, "act", None)
            seen = values.get(node.path, {})
            if act is None or "activation" not in seen:
                continue
            y = np.asarray(seen["activation"])
            y = y.reshape(len(y), -1)
            units = y.shape[1]
            dead_units = np.zeros(units, dtype=bool)
            saturated_units = np.full(units, np.nan)
            dead = saturated = float("nan")
            if 0.0 in act.kinks:
                z = np.asarray(seen.get("pre_activation", y)).reshape(len(y), -1)
                dead_units = np.all(z <= 0.0, axis=0)
                dead = float(dead_units.mean()) if units else dead
            low, high = act.output_range
            if act.elementwise and np.isfinite(low) and np.isfinite(high) and high > low:
                middle, half = 0.5 * (low + high), 0.5 * (high - low)
                beyond = np.abs(y - middle) > SATURATION * half
                saturated_units = beyond.mean(axis=0)
                saturated = float(beyond.mean()) if beyond.size else saturated
            out[node.path] = {
                "activation": act.name,
                "units": units,
                "dead": dead,
                "saturated": saturated,
                "dead_units": dead_units,
                "saturated_units": saturated_units,
            }
        return out

    def _layer_vectors(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each top-level layer's weights and gradient, flattened, by path (layers with
        weights only)."""
        if "layer_vectors" in self._answers:
            return self._answers["layer_vectors"]
        model = self.facts.model
        out = {}
        for k, node in enumerate(model.nodes):
            slots = model.layer_slots(k)
            if slots:
                w = np.concatenate([Model.view(self.theta, s).ravel() for s in slots])
                g = np.concatenate([Model.view(self.grad, s).ravel() for s in slots])
                out[node.path] = (w, g)
        self._answers["layer_vectors"] = out
        return out


def _grid(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return a.reshape(*shape, a.shape[-1])


def _symmetric_histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the finite ``values`` in ``bins`` equal bins over ±(their largest magnitude)."""
    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size else 0.0
    edges = np.linspace(-limit, limit, bins + 1) if limit > 0 else np.linspace(-1.0, 1.0, bins + 1)
    return edges, np.histogram(finite, bins=edges)[0]
