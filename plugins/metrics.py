"""Built-in metrics: what a person reads next to the loss.

Classification metrics get int labels and class scores (binary: one column, the positive score);
regression metrics get float arrays (n, outputs). Undefined values (an empty split, a ROC curve
with a single class, R² of a constant target) are NaN rather than an error, so an epoch's record
is always complete.
"""

from __future__ import annotations

import math

import numpy as np

from gradient_lab.engine.plugin_api import Metric, Param, PluginError

AVERAGE = Param(
    "average",
    "str",
    "binary",
    "binary: class 1 is the positive class; macro: the mean over classes. With more than two "
    "classes binary falls back to macro.",
    choices=("binary", "macro"),
)


def _labels(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).astype(np.int64, copy=False).ravel()


def _n_classes(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None) -> int:
    """Classes seen in the labels or in the score columns (at least 2)."""
    k = 2
    if len(y_true) or len(y_pred):
        k = max(k, int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1)
    if scores is not None and np.ndim(scores) == 2 and np.shape(scores)[1] > 1:
        k = max(k, int(np.shape(scores)[1]))
    return k


def _counts(t: np.ndarray, p: np.ndarray, c: int) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of class c against the rest."""
    tp = int(np.sum((t == c) & (p == c)))
    fp = int(np.sum((t != c) & (p == c)))
    fn = int(np.sum((t == c) & (p != c)))
    return tp, fp, fn


def _ratio(num: float, den: float) -> float:
    """num / den with 0 / 0 defined as 0.0 (no predicted or no actual positives)."""
    return num / den if den else 0.0


def _precision(tp: int, fp: int, fn: int) -> float:
    return _ratio(tp, tp + fp)


def _recall(tp: int, fp: int, fn: int) -> float:
    return _ratio(tp, tp + fn)


def _f1(tp: int, fp: int, fn: int) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


class _PerClass(Metric):
    """Precision, recall and F1 share the averaging; subclasses pick the per-class rule."""

    params = (AVERAGE,)

    @staticmethod
    def rule(tp: int, fp: int, fn: int) -> float:
        raise NotImplementedError

    def compute(self, y_true, y_pred, scores):
        t, p = _labels(y_true), _labels(y_pred)
        if len(t) == 0:
            return math.nan
        if self.hp["average"] == "binary" and _n_classes(t, p, scores) <= 2:
            return float(self.rule(*_counts(t, p, 1)))
        classes = np.union1d(t, p)
        return float(np.mean([self.rule(*_counts(t, p, int(c))) for c in classes]))


class Accuracy(Metric):
    name = "accuracy"
    formula = r"\mathrm{acc} = \frac{1}{N}\sum_i [\hat y_i = y_i]"
    teaching = (
        "The share of samples whose predicted class is right; misleading when classes are "
        "unbalanced."
    )

    def compute(self, y_true, y_pred, scores):
        t, p = _labels(y_true), _labels(y_pred)
        return np.count_nonzero(t == p) / len(t) if len(t) else math.nan


class Precision(_PerClass):
    name = "precision"
    formula = r"P = \frac{TP}{TP + FP}"
    teaching = (
        "Of the samples predicted positive, the share that really are (0 when none are predicted)."
    )
    rule = staticmethod(_precision)


class Recall(_PerClass):
    name = "recall"
    formula = r"R = \frac{TP}{TP + FN}"
    teaching = (
        "Of the samples that really are positive, the share the model finds (0 when there "
        "are none)."
    )
    rule = staticmethod(_recall)


class F1(_PerClass):
    name = "f1"
    formula = r"F_1 = \frac{2PR}{P + R} = \frac{2\,TP}{2\,TP + FP + FN}"
    teaching = "The harmonic mean of precision and recall: high only when both are."
    rule = staticmethod(_f1)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing the mean of their ranks."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties count 1/2."""
    positive = np.asarray(positive, dtype=bool).ravel()
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(score)):
        return math.nan
    rank_sum = float(average_ranks(score)[positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _positive_score(scores: np.ndarray) -> np.ndarray:
    """The binary positive-class score: one column as is; two columns as s1 - s0 (log-odds)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        return s
    if s.shape[1] == 2:
        return s[:, 1] - s[:, 0]
    return s[:, 0]


class RocAuc(Metric):
    name = "roc_auc"
    formula = (
        r"\mathrm{AUC} = \frac{1}{N_+ N_-}\sum_{i \in +}\sum_{j \in -}"
        r"\big([s_i > s_j] + \tfrac12[s_i = s_j]\big)"
    )
    teaching = (
        "The chance that a random positive scores above a random negative: 1 is a perfect "
        "ranking, 0.5 a coin. More than two classes: the mean of one-vs-rest AUCs."
    )

    def compute(self, y_true, y_pred, scores):
        if scores is None:
            raise PluginError("roc_auc needs class scores, not only predicted labels")
        t = _labels(y_true)
        s = np.asarray(scores, dtype=np.float64)
        if len(t) == 0:
            return math.nan
        if s.ndim == 1 or s.shape[1] <= 2:
            return binary_auc(t == 1, _positive_score(s))
        aucs = [binary_auc(t == c, s[:, c]) for c in range(s.shape[1])]
        defined = [a for a in aucs if not math.isnan(a)]
        return float(np.mean(defined)) if defined else math.nan


class ConfusionMatrix(Metric):
    name = "confusion_matrix"
    scalar = False
    formula = r"C_{ij} = \#\{n : y_n = i,\ \hat y_n = j\}"
    teaching = "Counts of every (true class, predicted class) pair: row i is true class i."

    def compute(self, y_true, y_pred, scores):
        t, p = _labels(y_true), _labels(y_pred)
        k = _n_classes(t, p, scores)
        return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _regression_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float (n, outputs); a 1D array is one output."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t = t[:, None] if t.ndim == 1 else t
    return t, p.reshape(t.shape)


class MSE(Metric):
    name = "mse"
    task = "regression"
    higher_is_better = False
    formula = r"\mathrm{MSE} = \frac{1}{N}\sum_i (\hat y_i - y_i)^2"
    teaching = "Mean squared error over every target value: large misses dominate."

    def compute(self, y_true, y_pred, scores):
        t, p = _regression_pair(y_true, y_pred)
        return float(np.mean((p - t) ** 2)) if t.size else math.nan


class MAE(Metric):
    name = "mae"
    task = "regression"
    higher_is_better = False
    formula = r"\mathrm{MAE} = \frac{1}{N}\sum_i |\hat y_i - y_i|"
    teaching = "Mean absolute error: the typical miss, in the target's own units."

    def compute(self, y_true, y_pred, scores):
        t, p = _regression_pair(y_true, y_pred)
        return float(np.mean(np.abs(p - t))) if t.size else math.nan


class R2(Metric):
    name = "r2"
    task = "regression"
    formula = r"R^2 = 1 - \frac{\sum_i (y_i - \hat y_i)^2}{\sum_i (y_i - \bar y)^2}"
    teaching = (
        "The share of the target's variance the model explains: 1 is perfect, 0 is no better "
        "than predicting the mean. Several outputs: the mean of their R²."
    )

    def compute(self, y_true, y_pred, scores):
        t, p = _regression_pair(y_true, y_pred)
        if len(t) == 0:
            return math.nan
        ss_res = np.sum((t - p) ** 2, axis=0)
        ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
        if np.any(ss_tot == 0):
            return math.nan
        return float(np.mean(1.0 - ss_res / ss_tot))


PLUGINS = [Accuracy, Precision, Recall, F1, RocAuc, ConfusionMatrix, MSE, MAE, R2]
