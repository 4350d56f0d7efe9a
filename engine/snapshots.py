"""State recorders: a function of (step, theta, gradient, update), called every k steps.

A recorder that needs the whole session (a Hessian, an NTK) makes a fast run stop at its steps;
one that needs only these three vectors does not. The compiled loop copies them into a buffer at
the steps wanted, and the calls come after the run, in step order, with views into that buffer
(copy what you keep). Stopping costs about 30 µs of Python a time; a copy costs nanoseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

StateRecorder = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]

BUFFER_VALUES = 4_000_000  # at most this many numbers buffered (32 MB in float64)
MAX_SNAPSHOTS = 64  # per compiled run


class Snapshots:
    """The state recorders of a session and the buffer the compiled loop fills for them."""

    def __init__(self, n_params: int, dtype: np.dtype) -> None:
        self.recorders: list[tuple[int, StateRecorder]] = []
        self.every = 0  # take a snapshot at multiples of this step (0: none wanted)
        self.capacity = max(1, min(MAX_SNAPSHOTS, BUFFER_VALUES // (3 * max(n_params, 1))))
        self._buffer = np.zeros((0, 3, n_params), dtype=dtype)
        self._n_params, self._dtype = n_params, dtype

    def add(self, every: int, record: StateRecorder) -> None:
        self.recorders.append((every, record))
        self.every = math.gcd(self.every, every)
        if not len(self._buffer):
            self._buffer = np.zeros((self.capacity, 3, self._n_params), dtype=self._dtype)

    def first(self, step: int) -> int:
        """Index, within a run starting after ``step``, of its first step to snapshot."""
        return (-(step + 1)) % self.every if self.every else 0

    def max_run(self, step: int) -> int | None:
        """The most steps one run after ``step`` can take without overflowing the buffer."""
        return self.first(step) + self.capacity * self.every if self.every else None

    def plan(self, step: int) -> tuple[int, int, np.ndarray]:
        """(first, every, buffer) for the compiled loop (every = 0: no snapshots)."""
        return self.first(step), self.every, self._buffer

    def deliver(self, step: int, done: int) -> None:
        """Call the recorders for the snapshots of a run of ``done`` steps after ``step``."""
        if not self.every:
            return
        for j, s in enumerate(range(self.first(step), done, self.every)):
            theta, grad, update = self._buffer[j]
            self._call(step + s + 1, theta, grad, update)

    def deliver_current(
        self, step: int, theta: np.ndarray, grad: np.ndarray, update: np.ndarray
    ) -> None:
        """After a step taken outside the compiled loop: the session's own arrays."""
        if self.every and step % self.every == 0:
            self._call(step, theta, grad, update)

    def _call(self, step: int, theta: np.ndarray, grad: np.ndarray, update: np.ndarray) -> None:
        for every, record in self.recorders:
            if step % every == 0:
                record(step, theta, grad, update)
