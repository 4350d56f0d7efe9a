"""Training history with bounded memory: long runs keep an evenly thinned record."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ThinningLog:
    """Rows of (step, values...) capped at ``capacity``: when full, every other row is dropped
    and from then on only every ``stride``-th step is kept, so memory stays bounded."""

    def __init__(self, columns: tuple[str, ...], capacity: int = 100_000) -> None:
        self.columns = columns
        self.capacity = capacity
        self.stride = 1
        self._data = np.zeros((min(capacity, 1024), len(columns)))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, step: int, *values: float) -> None:
        self.extend(np.array([step]), *values)

    def extend(self, steps: np.ndarray, *columns: Any) -> None:
        """Append many rows (columns may be scalars); same thinning as ``append``."""
        steps = np.asarray(steps)
        n = len(steps)
        if self.stride == 1 and self._count + n <= self.capacity:  # the common case: append
            self._reserve(self._count + n)
            rows = self._data[self._count : self._count + n]
            rows[:, 0] = steps
            for i, column in enumerate(columns, start=1):
                rows[:, i] = column
            self._count += n
            return
        block = np.column_stack([steps, *(np.broadcast_to(c, steps.shape) for c in columns)])
        while len(block):
            block = block[block[:, 0] % self.stride == 0]
            room = self.capacity - self._count
            if room == 0:
                self._thin()
                continue
            take = block[:room]
            self._reserve(self._count + len(take))
            self._data[self._count : self._count + len(take)] = take
            self._count += len(take)
            block = block[room:]

    def _thin(self) -> None:
        """Drop every other kept row and double the stride."""
        rows = self._data[: self._count]
        kept = rows[rows[:, 0] % (2 * self.stride) == 0]
        self._count = len(kept)
        self._data[: self._count] = kept
        self.stride *= 2

    def _reserve(self, rows: int) -> None:
        if rows > len(self._data):
            grown = np.zeros(
                (min(self.capacity, max(rows, 2 * len(self._data))), len(self.columns))
            )
            grown[: self._count] = self._data[: self._count]
            self._data = grown

    def truncate_after(self, step: int) -> None:
        """Forget rows recorded after ``step`` (rewinding)."""
        self._count = int(np.searchsorted(self._data[: self._count, 0], step, side="right"))

    def array(self) -> np.ndarray:
        return self._data[: self._count].copy()

    def tail(self, start: int) -> np.ndarray:
        """A copy of the rows from row ``start`` on (what a view has not seen yet)."""
        return self._data[start : self._count].copy()

    def column(self, name: str) -> np.ndarray:
        return self._data[: self._count, self.columns.index(name)].copy()


EPOCH_CAPACITY = 1000  # epoch records (and per-layer norms) kept before thinning


def add_thinned(
    records: list[dict[str, Any]], record: dict[str, Any], stride: int, capacity: int
) -> int:
    """Append ``record`` to ``records`` (dicts with a "step", in order) and thin them: at most
    ``capacity`` are kept. When full, the stride doubles until they fit, and from then on only
    records at steps that are multiples of the stride stay; the first record and the latest one
    always stay. Returns the stride now in force."""
    if len(records) > 1 and records[-1]["step"] % stride:
        records.pop()  # it stayed only as the latest
    records.append(record)
    while len(records) > capacity:
        stride *= 2
        last = len(records) - 1
        records[:] = [r for i, r in enumerate(records) if i in (0, last) or r["step"] % stride == 0]
    return stride


class History:
    """Per-step losses, per-epoch summaries, and per-layer norms, each in bounded memory.

    Step losses keep at most ``capacity`` rows, epoch records and per-layer norms at most
    ``epoch_capacity`` (a record is about 1.6 KB): long runs keep an evenly thinned history
    with the first record and the latest."""

    def __init__(self, capacity: int = 100_000, epoch_capacity: int = EPOCH_CAPACITY) -> None:
        self.steps = ThinningLog(("step", "epoch", "train_loss"), capacity)
        self.epochs: list[dict[str, Any]] = []
        self.layer_norms: list[dict[str, Any]] = []
        self.epoch_capacity = max(3, epoch_capacity)
        self.epoch_stride = 1
        self.norms_stride = 1
        self.components: ThinningLog | None = None  # the loss components of owned steps

    def add_epoch(self, record: dict[str, Any]) -> None:
        self.epoch_stride = add_thinned(self.epochs, record, self.epoch_stride, self.epoch_capacity)

    def keeps(self, step: int) -> bool:
        """Whether an epoch record or its layer norms at ``step`` would outlive the next
        epoch end: the first, and those on either thinned list's stride (a record off it stays
        only while it is the latest; the strides differ after epochs ran unevaluated)."""
        return (
            not self.epochs
            or not self.layer_norms
            or step % self.epoch_stride == 0
            or step % self.norms_stride == 0
        )

    def add_norms(self, record: dict[str, Any]) -> None:
        self.norms_stride = add_thinned(
            self.layer_norms, record, self.norms_stride, self.epoch_capacity
        )

    def add_components(self, step: int, components: dict[str, float]) -> None:
        """The loss components one step recorded (a GAN's two losses, a VAE's KL)."""
        if self.components is None:
            self.components = ThinningLog(("step", *components), self.steps.capacity)
        names = self.components.columns[1:]
        self.components.append(step, *(components.get(name, math.nan) for name in names))

    def component_means(self, first_step: int) -> dict[str, float]:
        """The mean of each component over the steps from ``first_step`` on (an epoch)."""
        if self.components is None:
            return {}
        rows = self.components.array()
        rows = rows[rows[:, 0] >= first_step]
        names = self.components.columns[1:]
        return {f"train_{n}": float(rows[:, i + 1].mean()) for i, n in enumerate(names)}

    def rewind_to(self, completed: int) -> None:
        """Keep what was recorded while the first ``completed`` steps ran."""
        self.steps.truncate_after(completed - 1)
        if self.components is not None:
            self.components.truncate_after(completed - 1)
        self.epochs = [r for r in self.epochs if r["step"] <= completed]
        self.layer_norms = [r for r in self.layer_norms if r["step"] <= completed]
