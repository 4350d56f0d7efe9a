"""What an epoch's record is made from, gathered while the epoch trains.

The record's training loss is the mean of the epoch's step losses, and its training metrics come
from each row's network output at the step that trained on it (the weights before that step's
update), as Keras and Lightning report training metrics: the epoch end then needs no second pass
over the training data. Validation is evaluated at the epoch's end weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EpochProgress:
    """The running part of the current epoch; a checkpoint keeps a copy (``saved``), so a
    rewind into the middle of an epoch gives the same record."""

    n_rows: int
    losses: np.ndarray | None = None  # the epoch's step losses (at most one a row) ...
    loss_count: int = 0  # ... so far
    outputs: np.ndarray | None = None  # by position in the epoch's order: (n_rows, *output)
    filled: int = 0  # positions of ``outputs`` written so far

    def add_losses(self, losses: np.ndarray) -> None:
        if self.losses is None:
            self.losses = np.empty(self.n_rows)
        self.losses[self.loss_count : self.loss_count + len(losses)] = losses
        self.loss_count += len(losses)

    def add_outputs(self, start: int, outputs: np.ndarray) -> None:
        """One minibatch's outputs, for the rows at ``start`` onward in the epoch's order."""
        if self.outputs is None or self.outputs.shape[1:] != outputs.shape[1:]:
            self.outputs = np.empty((self.n_rows, *outputs.shape[1:]), dtype=outputs.dtype)
        self.outputs[start : start + len(outputs)] = outputs
        self.filled = start + len(outputs)

    def train_loss(self) -> float:
        """The mean step loss: one sum over the epoch, the same bits however it was run."""
        if self.losses is None or not self.loss_count:
            return float("nan")
        return float(self.losses[: self.loss_count].mean())

    def rows(self, perm: np.ndarray) -> np.ndarray | None:
        """The outputs in the data's row order (``perm`` is the epoch's order), or None when
        the epoch did not record them all."""
        if self.outputs is None or self.filled < self.n_rows:
            return None
        rows = np.empty_like(self.outputs)
        rows[perm] = self.outputs
        return rows

    def reset(self) -> None:
        self.loss_count, self.filled = 0, 0

    def saved(self) -> EpochProgress:
        losses = None if self.losses is None else self.losses[: self.loss_count].copy()
        kept = None if self.outputs is None else self.outputs[: self.filled].copy()
        return EpochProgress(self.n_rows, losses, self.loss_count, kept, self.filled)

    def restore(self, saved: EpochProgress) -> None:
        self.reset()
        if saved.losses is not None:
            self.add_losses(saved.losses)
        if saved.outputs is not None:
            self.add_outputs(0, saved.outputs)
