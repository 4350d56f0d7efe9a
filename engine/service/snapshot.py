"""Immutable snapshots of a training session, and the queries views ask of them.

A snapshot holds copies of everything a view shows (parameters, gradients, layer state, the
newest history rows), all read-only, so a view never reads an array the worker is writing. The
queries (per-layer values for any inputs, the network's output over a grid in data
coordinates, per-layer statistics) run the pure layers at the snapshot's own parameters and
state, on whatever thread asks: the step in progress is never disturbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.model import Model
from gradient_lab.engine.model.calls import walk_calls
from gradient_lab.engine.training.data import make_features
from gradient_lab.engine.training.targets import TargetCoding, rows


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
    dataset_name: str = ""
    n_classes: int = 0
    class_names: tuple[str, ...] = ()
    # a planar set's raw 2D points and their targets (class labels, or regression values), for
    # scatter plots over the output whatever the features; None for other sets
    points_train: np.ndarray | None = None
    points_val: np.ndarray | None = None
    targets_train: np.ndarray | None = None
    targets_val: np.ndarray | None = None


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
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    def parameters(self) -> dict[str, np.ndarray]:
        """Every trainable weight by key, as read-only views of the snapshot's copy."""
        return {s.key: Model.view(self.theta, s) for s in self.facts.model.slots}

    def gradients(self) -> dict[str, np.ndarray]:
        """The last gradient of every trainable weight by key (read-only views)."""
        return {s.key: Model.view(self.grad, s) for s in self.facts.model.slots}

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

    def layer_stats(self) -> dict[str, dict[str, float]]:
        """Per top-level layer: weight and gradient norms, means and spreads, and the size of
        the last update relative to the weights (the training-health views' numbers)."""
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
            stats[node.path] = {
                "weight_norm": norm,
                "weight_mean": float(w.mean()),
                "weight_std": float(w.std()),
                "grad_norm": float(np.linalg.norm(g)),
                "grad_mean": float(g.mean()),
                "grad_std": float(g.std()),
                "update_ratio": float(np.linalg.norm(u) / norm) if norm else 0.0,
            }
        return stats


def _grid(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return a.reshape(*shape, a.shape[-1])
