"""Datasets and metrics: a small instance generates finite data with valid labels, and a
metric computes a finite value on tiny examples."""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from gradient_lab.engine.loading.checks.common import Check, CheckFailed, seeded_rng
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.plugin_api import PluginError


def dataset_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("generates data", lambda: _check_dataset(cls))]


def _small_dataset(cls: Any, folder: Path) -> Any:
    """An instance with n = 50 where the set has ``n``; a small CSV where it reads a file."""
    declared = {p.name: p for p in cls.params}
    hp: dict[str, Any] = {}
    if "n" in declared:
        hp["n"] = 50
    path = declared.get("path")
    if path is not None and path.type == "str" and not path.default:
        hp["path"] = str(_sample_csv(folder / "sample.csv"))
    try:
        return cls(**hp)
    except PluginError:
        return cls()


def _sample_csv(path: Path) -> Path:
    rng = seeded_rng(8)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x1", "x2", "label"])
        for i in range(30):
            writer.writerow([f"{rng.normal():.6f}", f"{rng.normal():.6f}", i % 2])
    return path


def _check_dataset(cls: Any) -> str:
    with tempfile.TemporaryDirectory() as folder:
        data = _small_dataset(cls, Path(folder))
        x, y = data.generate(seeded_rng(9))
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise CheckFailed(f"X has {len(x)} samples and y {len(y)}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise CheckFailed(f"X must hold finite floats (dtype {x.dtype})")
    if data.task == "classification":
        k = data.n_classes()
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
            raise CheckFailed(f"labels must be whole numbers in [0, {k}), got {y.min()}..{y.max()}")
        return f"{len(x)} samples of shape {x.shape[1:]}, labels in [0, {k})"
    if not np.all(np.isfinite(y.astype(np.float64))):
        raise CheckFailed("regression targets must be finite")
    return f"{len(x)} samples of shape {x.shape[1:]}, targets of shape {y.shape[1:]}"


def metric_checks(cls: Any, registry: Registry) -> list[tuple[str, Check]]:
    return [("computes", lambda: _check_metric(cls))]


def _metric_examples(task: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Tiny (y_true, y_pred, scores) examples: binary and three classes, or regression."""
    if task == "regression":
        t = np.array([[0.5], [1.0], [-0.3], [2.0], [0.0]])
        return [(t, t + np.array([[0.1], [-0.2], [0.05], [0.3], [-0.1]]), None)]
    binary_true = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    binary_pred = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    binary_scores = np.array([0.2, 0.8, 0.4, 0.3, 0.9, 0.6, 0.7, 0.45])[:, None]
    three_true = np.array([0, 1, 2, 2, 1, 0])
    three_pred = np.array([0, 2, 2, 1, 1, 0])
    three_scores = np.eye(3)[three_pred] * 0.6 + 0.1 * seeded_rng(10).random((6, 3))
    return [(binary_true, binary_pred, binary_scores), (three_true, three_pred, three_scores)]


def _check_metric(cls: Any) -> str:
    metric = cls()
    for y_true, y_pred, scores in _metric_examples(metric.task):
        value = metric.compute(y_true, y_pred, scores)
        if metric.scalar:
            if not isinstance(value, (float, int, np.floating, np.integer)) or not math.isfinite(
                float(value)
            ):
                raise CheckFailed(f"compute returned {value!r}, expected a finite number")
        elif not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise CheckFailed("compute returned an array that is not finite")
    return f"compute gives a finite {'number' if metric.scalar else 'array'} on tiny examples"
