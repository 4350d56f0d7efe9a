"""Checks that need the data as well as the experiment: whether the metrics suit the targets and
the optimizer suits the loss. (The loss and the output width are checked when the session picks
its target coding, in ``targets``.)

Run ``check_session`` on a new session before training; every mistake is one ExperimentError
naming the field to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradient_lab.engine.training.errors import ExperimentError

__all__ = ["check_metrics", "check_optimizer", "check_session"]


def check_session(session: Any) -> None:
    """Every check below on a session that has not trained yet."""
    check_metrics(session)
    check_optimizer(session)


def _task(cls_or_obj: Any) -> str:
    return str(getattr(cls_or_obj, "task", "classification"))


def check_metrics(session: Any) -> None:
    """Classification metrics need class labels and regression metrics regression targets."""
    data = session.data
    for i, metric in enumerate(session.metrics):
        task = _task(metric)
        if task in ("any", data.task):
            continue
        where = f"training.metrics[{i}]"
        has = (
            f"regression targets ({data.n_outputs} column(s))"
            if data.task == "regression"
            else f"class labels ({data.n_classes} classes)"
        )
        fitting = [
            name
            for name in session.registry.names("metric")
            if _task(session.registry.get("metric", name)) in ("any", data.task)
        ]
        raise ExperimentError(
            f"{where} = {metric.name!r} is not allowed: {metric.name} is a {task} metric, but "
            f"dataset {data.dataset_name!r} has {has}; expected one of: "
            f"{', '.join(fitting) or 'none installed'}",
            where,
        )


def check_optimizer(session: Any) -> None:
    """An optimizer that asks for residuals (Levenberg-Marquardt) needs a loss that has them."""
    if not getattr(session.optimizer, "needs_context", False):
        return
    width = int(np.prod(session.model.output_shape))
    probe = np.zeros((1, width))
    if session.loss.residuals(probe, probe) is not None:
        return
    optimizer, loss = session.optimizer.name, session.loss.name
    raise ExperimentError(
        f"training.optimizer = {optimizer!r} is not allowed with training.loss = {loss!r}: "
        f"{optimizer} needs a loss with a residual form, which {loss} has not; expected a "
        "squared-error loss (mse) or another optimizer",
        "training.optimizer",
    )
