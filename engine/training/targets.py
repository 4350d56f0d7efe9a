"""How class labels become training targets, and outputs become predicted labels again.

The encoding follows the loss (``Loss.target_encoding``) and the output activation's range, so a
tanh output trained with MSE learns -1/+1 while a sigmoid output learns 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gradient_lab.engine.training.data import DataSplit
from gradient_lab.engine.training.errors import ExperimentError

REGRESSION_LOSSES = "mse, mae or huber"
CLASSIFICATION_LOSSES = "cross_entropy, bce or hinge"


def choose_output_activation(data: DataSplit, loss: Any) -> str:
    """The natural output activation for a task and loss (used when an experiment says auto)."""
    if data.task == "regression" or loss.takes_logits:
        return "linear"
    return {"zero_one": "sigmoid", "range": "tanh"}.get(loss.target_encoding, "linear")


@dataclass
class TargetCoding:
    task: str
    n_classes: int
    outputs: int
    low: float = 0.0
    high: float = 1.0
    # where one output splits the classes; None: halfway between low and high
    threshold: float | None = None

    @staticmethod
    def outputs_needed(data: DataSplit, loss: Any) -> int:
        if data.task == "regression":
            return int(data.n_outputs)
        if data.n_classes == 2 and loss.target_encoding != "one_hot":
            return 1
        return int(data.n_classes)

    steps: int | None = None  # T for a target at every position of a sequence

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Targets shaped as the model's outputs: (n, outputs), or (n, T, outputs)."""
        lead = (len(y),) if self.steps is None else (len(y), self.steps)
        if self.task == "regression":
            return np.asarray(y, dtype=float).reshape(*lead, self.outputs)
        labels = np.asarray(y, dtype=np.int64).ravel()
        if self.outputs == 1:
            return np.where(labels == 1, self.high, self.low).reshape(*lead, 1)
        out = np.full((len(labels), self.outputs), self.low)
        out[np.arange(len(labels)), labels] = self.high
        return out.reshape(*lead, self.outputs)

    def decode(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels and per-class scores from model outputs; for sequences one row
        per position (n·T rows), as ``labels`` flattens the true labels."""
        outputs = rows(outputs)
        if self.outputs == 1:
            threshold = 0.5 * (self.low + self.high) if self.threshold is None else self.threshold
            return (outputs[:, 0] > threshold).astype(np.int64), outputs
        return outputs.argmax(axis=1).astype(np.int64), outputs

    def margin(self, outputs: np.ndarray) -> np.ndarray:
        """For one output: how sure the prediction is, from -1 (surely class 0) through 0 (the
        boundary) to 1 (surely class 1): 2·sigmoid(z) - 1 for a logit, else the output's place
        between the two target levels, clipped."""
        out = rows(outputs)[:, 0]
        if self.threshold is not None:
            return np.tanh(0.5 * (out - self.threshold))
        half = 0.5 * (self.high - self.low)
        return np.clip((out - (self.low + half)) / half, -1.0, 1.0)

    def labels(self, y: np.ndarray) -> np.ndarray:
        """True labels or targets one row per position, as ``decode`` gives predictions."""
        y = np.asarray(y)
        if self.steps is None:
            return y
        return y.reshape(-1) if self.task == "classification" else y.reshape(-1, self.outputs)


def rows(a: np.ndarray) -> np.ndarray:
    """(B, T, C) as B·T rows of C; (B, C) as it is."""
    return a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a


class PerPosition:
    """A loss scored at every position of a sequence: (B, T, C) counts as B·T rows, so its mean
    runs over positions, as PyTorch's CrossEntropyLoss on (B, C, T) and MSELoss do."""

    def __init__(self, loss: Any) -> None:
        self.inner = loss

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def value(self, pred: np.ndarray, target: np.ndarray) -> float:
        return float(self.inner.value(rows(pred), rows(target)))

    def grad(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.grad(rows(pred), rows(target))).reshape(pred.shape)

    def residuals(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        r = self.inner.residuals(rows(pred), rows(target))
        return None if r is None else np.asarray(r)

    def residual_scale(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray | None:
        scale = self.inner.residual_scale(rows(pred), rows(target))
        return None if scale is None else np.asarray(scale).reshape(pred.shape)


def target_coding(data: DataSplit, loss: Any, model: Any) -> TargetCoding:
    """Check the loss against the targets and the model's output shape against the task, and
    pick the target levels. Mistakes are ExperimentErrors naming the field to change."""
    check_loss(data, loss)
    needed = TargetCoding.outputs_needed(data, loss)
    if data.steps is not None:
        _check_per_position(data, model, needed)
        coding = target_coding_levels(data, loss, model, needed)
        coding.steps = data.steps
        return coding
    width = int(np.prod(model.output_shape))
    if width != needed:
        what = (
            f"dataset {data.dataset_name!r} with {data.n_outputs} regression target(s)"
            if data.task == "regression"
            else f"{loss.name} on {data.n_classes} classes"
        )
        k = _last_with_units(model)
        if k is None:
            raise ExperimentError(
                f"model.layers: the last layer has {width} output unit(s), but {what} needs "
                f"{needed}; expected a last layer with {needed} output unit(s)",
                "model.layers",
            )
        where = f"model.layers[{k}].units"
        raise ExperimentError(
            f"{where} = {width} is not allowed: {what} needs {needed} output unit(s); "
            f"expected units = {needed} on the last layer",
            where,
        )
    return target_coding_levels(data, loss, model, needed)


def _check_per_position(data: DataSplit, model: Any, needed: int) -> None:
    expected = (data.steps, needed)
    if tuple(model.output_shape) != expected:
        raise ExperimentError(
            f"model.layers: the model outputs samples of shape {tuple(model.output_shape)}, "
            f"but {data.dataset_name!r} has a target at each of {data.steps} positions, which "
            f"needs {expected}: end with a layer of {needed} units applied at every position",
            "model.layers",
        )


def target_coding_levels(data: DataSplit, loss: Any, model: Any, needed: int) -> TargetCoding:
    """The coding for a checked output width: target levels from the loss and activation."""
    if data.task == "regression":
        return TargetCoding("regression", 0, needed)
    if loss.target_encoding in ("zero_one", "one_hot"):
        low, high = 0.0, 1.0
    elif loss.target_encoding == "plus_minus_one":
        low, high = -1.0, 1.0
    else:
        low, high = _range_of(model)
    threshold = 0.0 if loss.takes_logits else None
    return TargetCoding("classification", data.n_classes, needed, low, high, threshold)


def _range_of(model: Any) -> tuple[float, float]:
    """Target levels inside the output activation's range, clipped to [-1, 1]."""
    for layer in reversed(model.layers):
        act = getattr(layer, "act", None)
        if act is not None:
            lo, hi = act.output_range
            return max(lo, -1.0), min(hi, 1.0)
    return -1.0, 1.0


def check_loss(data: DataSplit, loss: Any) -> None:
    """The loss's task is the data's, and a 0/1 loss (bce) on regression targets sees only
    values in [0, 1]: otherwise its value is meaningless (negative, or 0 at every step)."""
    where = "training.loss"
    name = loss.name
    task = getattr(loss, "task", "any")
    dataset = f"dataset {data.dataset_name!r}"
    if task not in ("any", data.task):
        if data.task == "regression":
            has, expected = f"regression targets ({data.n_outputs} column(s))", "regression"
            examples = REGRESSION_LOSSES
        else:
            has, expected = f"class labels ({data.n_classes} classes)", "class labels"
            examples = CLASSIFICATION_LOSSES
        needs = "class labels" if task == "classification" else f"{task} targets"
        raise ExperimentError(
            f"{where} = {name!r} is not allowed: {name} needs {needs}, but {dataset} has "
            f"{has}; expected a loss for {expected}, e.g. {examples}",
            where,
        )
    if data.task == "regression" and loss.target_encoding == "zero_one":
        values = [y for y in (data.y_train, data.y_val) if np.size(y)]
        low = min(float(np.min(y)) for y in values)
        high = max(float(np.max(y)) for y in values)
        if low < 0.0 or high > 1.0:
            raise ExperimentError(
                f"{where} = {name!r} is not allowed: {name} needs targets in [0, 1] (class "
                f"labels or probabilities), but {dataset} has regression targets from "
                f"{low:.4g} to {high:.4g}; expected a loss for regression, e.g. "
                f"{REGRESSION_LOSSES}",
                where,
            )


def _last_with_units(model: Any) -> int | None:
    """The index of the last layer with a ``units`` parameter (the one that sets the width)."""
    for k in range(len(model.layers) - 1, -1, -1):
        if "units" in getattr(model.layers[k], "hp", {}):
            return k
    return None
