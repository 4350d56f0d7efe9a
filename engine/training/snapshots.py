"""State recorders: a function of (step, theta, gradient, update), called every k steps.

A recorder that needs the whole session (a Hessian, an NTK) makes a fast run stop at its steps;
one that needs only these three vectors does not. The compiled loop copies them into a buffer at
the steps wanted, and the calls come after the run, in step order, with views into that buffer
(copy what you keep). Stopping costs about 30 µs of Python a time; a copy costs 3 x (number of
parameters) stores. A run stops early only when the buffer is full.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

StateRecorder = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]

BUFFER_VALUES = 4_000_000  # buffer at most this many numbers (32 MB in float64) ...
MAX_SNAPSHOTS = 64  # ... and at most this many snapshots per compiled run (at least one)


class Snapshots:
    """The state recorders of a session and the buffer the compiled loop fills for them."""

    def __init__(self, n_params: int, dtype: np.dtype) -> None:
        self.recorders: list[tuple[int, StateRecorder]] = []
        self.capacity = max(1, min(MAX_SNAPSHOTS, BUFFER_VALUES // (3 * max(n_params, 1))))
        self.buffer = np.zeros((0, 3, n_params), dtype=dtype)
        self._n_params, self._dtype = n_params, dtype
        self._at = np.zeros(0, dtype=np.int64)  # run indices of the planned snapshots

    def add(self, every: int, record: StateRecorder) -> None:
        self.recorders.append((every, record))
        self._allocate()

    def _allocate(self) -> None:
        if not len(self.buffer):
            self.buffer = np.zeros((self.capacity, 3, self._n_params), dtype=self._dtype)

    def plan(self, step: int, n: int, also: np.ndarray | None = None) -> tuple[int, np.ndarray]:
        """For a run of up to ``n`` steps after ``step``: how many steps it may take before the
        buffer is full, and the indices in the run (0 = the step after ``step``) to snapshot:
        the recorders' steps and the indices ``also`` asks for (the ends of epochs)."""
        firsts = [((-(step + 1)) % every, every) for every, _ in self.recorders]
        # each recorder's first `capacity` steps: the union's first `capacity` are then exact
        wanted = [np.arange(i, min(n, i + self.capacity * e), e) for i, e in firsts]
        if also is not None and len(also):
            self._allocate()
            wanted.append(also[: self.capacity])
        at = np.unique(np.concatenate(wanted)) if wanted else self._at[:0]
        if len(at) >= self.capacity:
            n = min(n, int(at[self.capacity - 1]) + 1)
        self._at = at[at < n]
        return n, self._at

    def taken_after(self, index: int) -> np.ndarray:
        """The (parameters, gradient, update) the last planned run copied after its step
        ``index``, which the plan included."""
        j = int(np.searchsorted(self._at, index))
        assert j < len(self._at) and self._at[j] == index, "no snapshot planned there"
        return self.buffer[j]

    def deliver(self, step: int, done: int) -> None:
        """Call the recorders with the snapshots of the last planned run, which took ``done``
        steps after ``step``."""
        for j, s in enumerate(self._at):
            if s >= done:
                break
            theta, grad, update = self.buffer[j]
            self._call(step + int(s) + 1, theta, grad, update)

    def deliver_current(
        self, step: int, theta: np.ndarray, grad: np.ndarray, update: np.ndarray
    ) -> None:
        """After a step taken outside the compiled loop: the session's own arrays."""
        self._call(step, theta, grad, update)

    def _call(self, step: int, theta: np.ndarray, grad: np.ndarray, update: np.ndarray) -> None:
        for every, record in self.recorders:
            if step % every == 0:
                record(step, theta, grad, update)
