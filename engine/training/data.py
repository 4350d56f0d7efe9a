"""From a dataset plugin to training and validation arrays: derived features and the split.

Planar (2D) sets can feed the network derived inputs, as in TensorFlow Playground: x1², x1·x2,
sin x1 and so on. The split shuffles once with the session's data generator, so the same seed
gives bit-identical arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradient_lab.engine.plugin_api import Dataset, PluginError
from gradient_lab.engine.training.errors import ExperimentError

Feature = Callable[[np.ndarray, np.ndarray], np.ndarray]

FEATURES: dict[str, Feature] = {
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1^2": lambda a, b: a * a,
    "x2^2": lambda a, b: b * b,
    "x1*x2": lambda a, b: a * b,
    "sin(x1)": lambda a, b: np.sin(a),
    "sin(x2)": lambda a, b: np.sin(b),
}
"""The derived inputs of a planar set, by canonical name, each a function of (x1, x2)."""

FEATURE_LATEX: dict[str, str] = {
    "x1": r"x_1",
    "x2": r"x_2",
    "x1^2": r"x_1^2",
    "x2^2": r"x_2^2",
    "x1*x2": r"x_1 x_2",
    "sin(x1)": r"\sin x_1",
    "sin(x2)": r"\sin x_2",
}

FEATURE_ALIASES: dict[str, str] = {
    "x1²": "x1^2",
    "x2²": "x2^2",
    "x1·x2": "x1*x2",
    "sin x1": "sin(x1)",
    "sin x2": "sin(x2)",
}

DEFAULT_FEATURES: tuple[str, ...] = ("x1", "x2")

MAX_VALIDATION_FRACTION = 0.9


def canonical_feature(name: str) -> str:
    """The canonical spelling of a feature name; PluginError lists the allowed ones."""
    key = name.strip() if isinstance(name, str) else ""
    key = FEATURE_ALIASES.get(key, key)
    if key not in FEATURES:
        raise PluginError(f"unknown input feature {name!r}; allowed: {', '.join(FEATURES)}")
    return key


def canonical_features(names: Sequence[str]) -> list[str]:
    """Canonical names, at least one and none twice (a repeated column only slows learning)."""
    if isinstance(names, str):
        names = [names]
    result = [canonical_feature(n) for n in names]
    if not result:
        raise PluginError(f"choose at least one input feature from: {', '.join(FEATURES)}")
    for name in result:
        if result.count(name) > 1:
            raise PluginError(f"input feature {name!r} is listed twice")
    return result


def make_features(X2: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The (n, len(names)) inputs derived from 2D points (n, 2); also used for plot grids."""
    points = np.asarray(X2, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise PluginError(f"input features need 2D points of shape (n, 2), got {points.shape}")
    canonical = canonical_features(names)
    a, b = points[:, 0], points[:, 1]
    columns = [np.broadcast_to(FEATURES[name](a, b), a.shape) for name in canonical]
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)


@dataclass
class DataSplit:
    """Training and validation arrays plus what the model and the views need to know of them.

    ``points_train``/``points_val`` keep the raw 2D points of a planar set (for scatter plots
    whatever the features); they are None for other sets.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    n_classes: int
    input_shape: tuple[int, ...]
    feature_names: list[str]
    dataset_name: str
    planar: bool = False
    points_train: np.ndarray | None = None
    points_val: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        """Regression: target columns (per position for sequences); classification: the
        number of classes."""
        if self.task == "regression":
            return int(self.y_train.shape[-1]) if self.y_train.ndim >= 2 else 1
        return int(self.n_classes)

    @property
    def steps(self) -> int | None:
        """T when every position of a sequence has its own target (labels (n, T), regression
        targets (n, T, outputs)); None for one target per sample."""
        per_step = self.y_train.ndim == (2 if self.task == "classification" else 3)
        return int(self.y_train.shape[1]) if per_step else None

    @property
    def n_train(self) -> int:
        return len(self.X_train)

    @property
    def n_val(self) -> int:
        return len(self.X_val)


def n_outputs(split: DataSplit) -> int:
    """Function form of ``DataSplit.n_outputs``."""
    return split.n_outputs


def check_validation_fraction(fraction: float) -> float:
    """The fraction as a float in [0, 0.9], or a PluginError saying what is allowed."""
    ok = isinstance(fraction, (int, float, np.integer, np.floating)) and not isinstance(
        fraction, bool
    )
    if not ok or not 0.0 <= float(fraction) <= MAX_VALIDATION_FRACTION:
        raise ExperimentError(
            f"data.validation_fraction = {fraction!r} is not allowed: expected a number >= 0 "
            f"and <= {MAX_VALIDATION_FRACTION:g}",
            "data.validation_fraction",
        )
    return float(fraction)


def split_data(
    dataset: Dataset,
    rng: np.random.Generator,
    validation_fraction: float = 0.0,
    features: Sequence[str] | None = None,
    shuffle: bool = True,
) -> DataSplit:
    """Generate, derive features, shuffle once and hold out round(n * fraction) for validation.

    Without ``shuffle`` the rows keep the dataset's order: validation is its last rows, so a run
    can be reproduced in another framework from the same file.

    ``features`` applies to planar sets only (None means x1, x2); other sets take None or an
    empty list. The dataset's task and class count are read after ``generate``, so a CSV file
    can decide them from its contents.
    """
    fraction = check_validation_fraction(validation_fraction)
    X, y = dataset.generate(rng)
    X, y = _checked_arrays(dataset, X, y)
    task = dataset.task
    n_classes = _checked_classes(dataset, y) if task == "classification" else 0
    try:
        X, names, points = _apply_features(dataset, X, features)
    except ExperimentError:
        raise
    except PluginError as exc:
        raise ExperimentError(f"data.features: {exc}", "data.features") from None

    n = len(X)
    n_val = round(n * fraction)
    if n - n_val < 1:
        raise ExperimentError(
            f"data.validation_fraction = {fraction:g} is not allowed: dataset "
            f"{dataset.name!r} has {n} samples and this leaves none for training; expected "
            f"less than {(n - 0.5) / n:.3g}",
            "data.validation_fraction",
        )
    order = rng.permutation(n) if shuffle else np.arange(n)
    train, val = order[: n - n_val], order[n - n_val :]
    return DataSplit(
        X_train=X[train],
        y_train=y[train],
        X_val=X[val],
        y_val=y[val],
        task=task,
        n_classes=n_classes,
        input_shape=tuple(int(s) for s in X.shape[1:]),
        feature_names=names,
        dataset_name=dataset.name,
        planar=points is not None,
        points_train=None if points is None else points[train],
        points_val=None if points is None else points[val],
        class_names=_class_names(dataset, n_classes),
    )


def _checked_arrays(
    dataset: Dataset, X: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """X as float64 (n, ...), y as int64 (n,) or float64 (n, outputs): a plugin's slip is named."""
    where = f"dataset {dataset.name!r}"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim < 2 or len(X) == 0:
        raise PluginError(f"{where} returned X of shape {X.shape}; expected (n, *input_shape)")
    if len(y) != len(X):
        raise PluginError(f"{where} returned {len(X)} inputs but {len(y)} targets")
    if not np.all(np.isfinite(X)):
        raise PluginError(f"{where} returned inputs that are not finite numbers")
    per_step = "(n,) or, for sequences X (n, T, F), (n, T)"
    if dataset.task == "classification":
        whole = np.issubdtype(y.dtype, np.integer) or np.all(y == np.round(y))
        if y.ndim not in (1, 2) or not whole:
            raise PluginError(f"{where} must return whole-number class labels of shape {per_step}")
        if y.ndim == 2 and (X.ndim != 3 or y.shape[1] != X.shape[1]):
            raise PluginError(
                f"{where} returned labels of shape {y.shape} for inputs {X.shape}: labels per "
                "position need sequence inputs (n, T, F) with the same T"
            )
        return X, y.astype(np.int64)
    if dataset.task != "regression":
        raise PluginError(
            f"{where} has task {dataset.task!r}; expected classification or regression"
        )
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1) if y.ndim == 1 else y
    shapes = "(n, outputs) or, for sequences X (n, T, F), (n, T, outputs)"
    if y.ndim not in (2, 3) or not np.all(np.isfinite(y)):
        raise PluginError(f"{where} must return finite regression targets of shape {shapes}")
    if y.ndim == 3 and (X.ndim != 3 or y.shape[1] != X.shape[1]):
        raise PluginError(
            f"{where} returned targets of shape {y.shape} for inputs {X.shape}: targets per "
            "position need sequence inputs (n, T, F) with the same T"
        )
    return X, y


def _checked_classes(dataset: Dataset, y: np.ndarray) -> int:
    k = int(dataset.n_classes())
    if k < 2:
        raise PluginError(f"dataset {dataset.name!r} declares {k} classes; at least 2 are needed")
    if y.min() < 0 or y.max() >= k:
        raise PluginError(
            f"dataset {dataset.name!r} returned labels {int(y.min())}..{int(y.max())}, "
            f"outside 0..{k - 1}"
        )
    return k


def _apply_features(
    dataset: Dataset, X: np.ndarray, features: Sequence[str] | None
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Inputs, their names and (planar sets only) the raw 2D points."""
    if dataset.planar:
        if X.shape[1:] != (2,):
            raise PluginError(
                f"dataset {dataset.name!r} is planar but returned X of shape {X.shape}"
            )
        names = canonical_features(DEFAULT_FEATURES if features is None else features)
        return make_features(X, names), names, X
    if features is not None and len(features) > 0:
        raise PluginError(
            f"input features apply to 2D playground sets only; dataset {dataset.name!r} "
            "uses its own inputs, so leave features empty"
        )
    size = int(np.prod(X.shape[1:]))
    names = list(getattr(dataset, "feature_names", None) or [])
    if len(names) != size:
        names = [f"x{i + 1}" for i in range(size)]
    return X, names, None


def _class_names(dataset: Dataset, n_classes: int) -> list[str]:
    """Names to show for classes 0..k-1: the original CSV labels when known."""
    values = getattr(dataset, "class_values", None) or ()
    if len(values) == n_classes:
        return [f"{v:g}" for v in values]
    return [str(c) for c in range(n_classes)]
