"""2D landscapes: the scan job (coarse first, refined in place, cancellable, in a worker
thread) and its result."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.instruments.landscape.directions import (
    Directions,
    WeightChoice,
    hessian_directions,
    pca_directions,
    random_directions,
    weight_directions,
)
from gradient_lab.engine.instruments.landscape.grid import (
    Array,
    LandscapeError,
    Progress,
    axis,
    coarse_indices,
    origin_index,
)
from gradient_lab.engine.instruments.landscape.plane_loss import PlaneLoss, snapshot_evaluator
from gradient_lab.engine.instruments.landscape.trajectory import (
    TrajectoryRecorder,
    checkpoint_trajectory,
    parameters_at,
    project,
)

DEFAULT_SIZE = 41
DEFAULT_COARSE = 11


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
    the coarse grid (every 4th point of 41, 11 x 11; with the compiled row sweep every 4th row
    in full, 11 x 41, for about the same time), partial refinements at most every
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

        passes = self._passes(j0, i0, plane.sweeps_rows)
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

    def _passes(self, j0: int, i0: int, whole_rows: bool) -> list[tuple[Array, Array]]:
        """(rows, columns) of the coarse pass through the origin, then of the full grid. With
        ``whole_rows`` the coarse rows are taken in full: sweeping a row costs nearly the same
        for its coarse points as for all of them, and the full pass then skips those rows."""
        cx = coarse_indices(len(self.x), i0, self.coarse)
        cy = coarse_indices(len(self.y), j0, self.coarse)
        passes = [(cy, np.arange(len(self.x)) if whole_rows else cx)]
        if len(cx) < len(self.x) or len(cy) < len(self.y):
            passes.append((np.arange(len(self.y)), np.arange(len(self.x))))
        return passes
