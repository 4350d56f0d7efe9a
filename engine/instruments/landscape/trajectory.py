"""The path training took: recorded states (or the checkpoints), their coordinates on a
plane, and the parameter vector at a named point of the run."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from gradient_lab.engine.instruments.landscape.grid import Array, LandscapeError


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
