"""Directions in parameter space: filter-normalized random ones (Li et al.), principal
components of a trajectory, single weights, Hessian eigenvectors and the negative
gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradient_lab.engine.instruments.landscape.grid import Array, LandscapeError
from gradient_lab.engine.model import Model, Slot
from gradient_lab.engine.training.evaluation import Evaluator


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
