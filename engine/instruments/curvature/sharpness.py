"""Sharpness along training: the top Hessian eigenvalue every few epochs, beside SGD's
stability edge 2/lr."""

from __future__ import annotations

import math
from typing import Any

from gradient_lab.engine.instruments.curvature.eigen import top_eigenvectors
from gradient_lab.engine.training.evaluation import Evaluator, eval_data


class SharpnessRecorder:
    """The top Hessian eigenvalue every few epochs, beside SGD's stability edge 2/lr.

    Gradient descent on a quadratic with curvature λ diverges once λ > 2/lr, so sharpness rising
    to 2/lr ("the edge of stability") is worth watching. Each measurement goes into ``records``
    and into that epoch's history record (keys ``top_eigenvalue`` and ``stability_edge``). It
    uses the full training set, or a seeded subsample, in evaluation mode; a session rewound
    and replayed records each epoch once."""

    def __init__(
        self,
        session: Any,
        every_epochs: int = 1,
        iterations: int = 20,
        subsample: int | None = None,
        seed: int = 0,
    ) -> None:
        if every_epochs < 1:
            raise ValueError(f"every_epochs = {every_epochs} is not allowed: expected 1 or more")
        self.session = session
        self.iterations = iterations
        self.seed = seed
        self.evaluator = Evaluator(session, eval_data(session, subsample, seed))
        self._records: list[dict[str, Any]] = []
        session.add_recorder(session.steps_per_epoch * every_epochs, self)

    @property
    def records(self) -> list[dict[str, Any]]:
        """Measurements up to the session's current step, in order."""
        return [r for r in self._records if r["step"] <= self.session.step]

    def measure(self) -> dict[str, Any]:
        """Sharpness at the session's current parameters (the model is left untouched)."""
        session = self.session
        theta = session.model.theta.copy()
        values, _ = top_eigenvectors(self.evaluator, theta, 1, self.iterations, self.seed)
        lr = float(session.lr_at(max(session.step - 1, 0)))
        return {
            "epoch": int(session.epoch),
            "step": int(session.step),
            "top_eigenvalue": float(values[0]),
            "stability_edge": 2.0 / lr if lr > 0 else math.inf,
        }

    def __call__(self, session: Any) -> None:
        record = self.measure()
        self._records = [r for r in self._records if r["step"] < record["step"]]
        self._records.append(record)
        for epoch_record in reversed(session.history.epochs):
            if epoch_record["step"] == record["step"]:
                epoch_record["top_eigenvalue"] = record["top_eigenvalue"]
                epoch_record["stability_edge"] = record["stability_edge"]
                break


def record_sharpness(
    session: Any,
    every_epochs: int = 1,
    iterations: int = 20,
    subsample: int | None = None,
    seed: int = 0,
) -> SharpnessRecorder:
    """Attach a SharpnessRecorder to the session; its ``records`` fill as training runs."""
    return SharpnessRecorder(session, every_epochs, iterations, subsample, seed)
