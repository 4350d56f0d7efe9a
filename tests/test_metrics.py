"""Metric plugins against hand-worked examples, brute force and identities."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradient_lab.plugins.metrics as metrics
from gradient_lab.engine.loading.registry import contract_problems
from gradient_lab.engine.plugin_api import Metric, PluginError
from gradient_lab.plugins.metrics import (
    F1,
    MAE,
    MSE,
    R2,
    Accuracy,
    ConfusionMatrix,
    Precision,
    Recall,
    RocAuc,
    average_ranks,
)

# a hand-worked binary example: TP = 2, FP = 1, FN = 2, TN = 3
T = np.array([1, 1, 1, 0, 0, 0, 1, 0])
P = np.array([1, 0, 1, 1, 0, 0, 0, 0])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_the_expected_metrics_are_registered():
    assert {c.name for c in metrics.PLUGINS} == {
        "accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix", "mse", "mae",
        "r2",
    }  # fmt: skip
    assert {c.name for c in metrics.PLUGINS if c.task == "regression"} == {"mse", "mae", "r2"}
    assert {c.name for c in metrics.PLUGINS if not c.higher_is_better} == {"mse", "mae"}
    assert [c.name for c in metrics.PLUGINS if not c.scalar] == ["confusion_matrix"]


@pytest.mark.parametrize("cls", metrics.PLUGINS, ids=lambda c: c.name)
def test_contract_and_defaults(cls):
    assert issubclass(cls, Metric)
    assert contract_problems(cls) == []
    assert cls.teaching and cls.formula
    for p in cls.params:
        p.validate(p.default)
    cls()


@pytest.mark.parametrize("cls", [Precision, Recall, F1], ids=lambda c: c.name)
def test_average_is_checked(cls):
    assert cls().hp["average"] == "binary"
    with pytest.raises(PluginError, match=rf"{cls.name}\.average"):
        cls(average="micro")
    with pytest.raises(PluginError, match=rf"{cls.name}\.average"):
        cls(average=1)


# -------------------------------------------------------------------------- classification


def test_accuracy_by_hand():
    assert Accuracy().compute(T, P, None) == pytest.approx(5 / 8)
    assert Accuracy().compute(T, T, None) == 1.0
    assert math.isnan(Accuracy().compute(np.array([], int), np.array([], int), None))


def test_binary_precision_recall_f1_by_hand():
    assert Precision().compute(T, P, None) == pytest.approx(2 / 3)
    assert Recall().compute(T, P, None) == pytest.approx(2 / 4)
    assert F1().compute(T, P, None) == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert F1().compute(T, P, None) == pytest.approx(4 / 7)


def test_binary_uses_class_one_as_positive():
    # swapping the class names swaps the roles: positive is now what was class 0
    assert Precision().compute(1 - T, 1 - P, None) == pytest.approx(3 / 5)
    assert Recall().compute(1 - T, 1 - P, None) == pytest.approx(3 / 4)


def test_zero_division_is_zero():
    t = np.array([1, 0, 1, 0])
    nothing_predicted = np.zeros(4, dtype=int)
    assert Precision().compute(t, nothing_predicted, None) == 0.0
    assert F1().compute(t, nothing_predicted, None) == 0.0
    no_positives = np.zeros(4, dtype=int)
    assert Recall().compute(no_positives, np.array([1, 0, 0, 0]), None) == 0.0


def brute_counts(t, p, c):
    tp = sum(1 for a, b in zip(t, p, strict=True) if a == c and b == c)
    fp = sum(1 for a, b in zip(t, p, strict=True) if a != c and b == c)
    fn = sum(1 for a, b in zip(t, p, strict=True) if a == c and b != c)
    return tp, fp, fn


def brute_per_class(t, p):
    """Per-class (precision, recall, f1) over the classes that occur, by counting."""
    out = []
    for c in sorted(set(t) | set(p)):
        tp, fp, fn = brute_counts(t, p, c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out.append((prec, rec, f1))
    return np.array(out)


@pytest.mark.parametrize("seed", range(5))
def test_macro_is_the_mean_of_per_class_values(seed):
    r = rng(seed)
    t = r.integers(0, 4, 60)
    p = np.where(r.random(60) < 0.6, t, r.integers(0, 4, 60))
    expected = brute_per_class(list(t), list(p)).mean(axis=0)
    scores = r.normal(size=(60, 4))
    for i, cls in enumerate((Precision, Recall, F1)):
        assert cls(average="macro").compute(t, p, scores) == pytest.approx(expected[i])
        # with more than two classes, "binary" falls back to macro
        assert cls().compute(t, p, scores) == pytest.approx(expected[i])


def test_macro_on_two_classes_differs_from_binary():
    macro = F1(average="macro").compute(T, P, None)
    assert macro == pytest.approx((4 / 7 + 2 * 3 / (2 * 3 + 2 + 1)) / 2)
    assert macro != pytest.approx(F1().compute(T, P, None))


def test_three_score_columns_mean_multiclass_even_if_labels_are_binary():
    scores = rng().normal(size=(len(T), 3))
    expected = brute_per_class(list(T), list(P))[:, 2].mean()
    assert F1().compute(T, P, scores) == pytest.approx(expected)


def brute_auc(positive, score):
    """Mann-Whitney U / (n_pos n_neg) by comparing every pair."""
    pos = [s for s, y in zip(score, positive, strict=True) if y]
    neg = [s for s, y in zip(score, positive, strict=True) if not y]
    u = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return u / (len(pos) * len(neg))


def test_average_ranks_by_hand():
    np.testing.assert_array_equal(average_ranks(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(average_ranks(np.array([1.0, 1.0, 1.0])), [2, 2, 2])
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1.0, 2.0])), [3, 1, 2])


def test_roc_auc_separated_reversed_and_tied():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9])[:, None]
    auc = RocAuc()
    assert auc.compute(y, y, s) == 1.0
    assert auc.compute(y, y, -s) == 0.0
    assert auc.compute(y, y, np.full((5, 1), 0.7)) == 0.5
    # one positive below one negative out of 2 x 3 pairs
    s2 = np.array([0.1, 0.2, 0.85, 0.8, 0.9])[:, None]
    assert auc.compute(y, y, s2) == pytest.approx(5 / 6)


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_equals_mann_whitney_on_random_data_with_ties(seed):
    r = rng(seed)
    y = r.integers(0, 2, 80)
    s = np.round(r.normal(size=80) + 0.7 * y, 1)  # rounding makes many ties
    assert len(np.unique(s)) < 80
    expected = brute_auc(y == 1, s)
    assert RocAuc().compute(y, y, s[:, None]) == pytest.approx(expected, abs=1e-12)
    assert RocAuc().compute(y, y, s) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_two_columns_uses_their_difference():
    r = rng(3)
    y = r.integers(0, 2, 50)
    s = r.normal(size=(50, 2))
    assert RocAuc().compute(y, y, s) == pytest.approx(brute_auc(y == 1, s[:, 1] - s[:, 0]))


def test_roc_auc_multiclass_is_macro_one_vs_rest():
    r = rng(4)
    y = r.integers(0, 3, 90)
    s = r.normal(size=(90, 3)) + np.eye(3)[y]
    expected = np.mean([brute_auc(y == c, s[:, c]) for c in range(3)])
    assert RocAuc().compute(y, y, s) == pytest.approx(expected)


def test_roc_auc_undefined_cases():
    y = np.ones(4, dtype=int)
    assert math.isnan(RocAuc().compute(y, y, np.arange(4.0)[:, None]))
    y = np.array([0, 1, 0, 1])
    assert math.isnan(RocAuc().compute(y, y, np.array([[0.1], [np.nan], [0.2], [0.3]])))
    with pytest.raises(PluginError, match="scores"):
        RocAuc().compute(y, y, None)


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix().compute(T, P, None)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[3, 1], [2, 2]])  # rows: true 0, true 1


def test_confusion_matrix_identities():
    r = rng(7)
    t = r.integers(0, 4, 100)
    p = np.where(r.random(100) < 0.5, t, r.integers(0, 4, 100))
    cm = ConfusionMatrix().compute(t, p, r.normal(size=(100, 5)))
    assert cm.shape == (5, 5) and cm.sum() == 100
    assert np.trace(cm) / 100 == pytest.approx(Accuracy().compute(t, p, None))
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(t, minlength=5))
    np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(p, minlength=5))
    for i in range(5):
        for j in range(5):
            assert cm[i, j] == np.sum((t == i) & (p == j))


# ------------------------------------------------------------------------------ regression


def test_mse_and_mae_by_hand():
    t = np.array([[1.0], [2.0], [3.0]])
    p = np.array([[2.0], [2.0], [1.0]])
    assert MSE().compute(t, p, None) == pytest.approx((1 + 0 + 4) / 3)
    assert MAE().compute(t, p, None) == pytest.approx((1 + 0 + 2) / 3)


def test_r2_identities():
    r = rng(2)
    t = r.normal(size=(40, 1))
    assert R2().compute(t, t, None) == 1.0
    assert R2().compute(t, np.full_like(t, t.mean()), None) == pytest.approx(0.0, abs=1e-12)
    p = t + 0.3 * r.normal(size=t.shape)
    expected = 1 - np.sum((t - p) ** 2) / np.sum((t - t.mean()) ** 2)
    assert R2().compute(t, p, None) == pytest.approx(expected)
    assert R2().compute(t, -t, None) < 0


def test_r2_by_hand():
    t = np.array([1.0, 2.0, 3.0])
    p = np.array([1.0, 2.0, 2.0])
    assert R2().compute(t, p, None) == pytest.approx(1 - 1 / 2)


def test_several_outputs():
    t = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    p = np.array([[1.0, 1.0], [2.0, 3.0], [3.0, 2.0]])
    assert MSE().compute(t, p, None) == pytest.approx((1 + 0 + 0 + 0 + 1 + 36) / 6)
    assert MAE().compute(t, p, None) == pytest.approx((1 + 0 + 0 + 0 + 1 + 6) / 6)
    r2_first = 1 - 2 / 8
    r2_second = 1 - 36 / np.sum((t[:, 1] - 4.0) ** 2)
    assert R2().compute(t, p, None) == pytest.approx((r2_first + r2_second) / 2)


def test_r2_of_a_constant_target_is_undefined():
    t = np.full((5, 1), 2.0)
    assert math.isnan(R2().compute(t, t + 1, None))


def test_empty_splits_give_nan():
    empty = np.zeros((0, 1))
    for cls in (MSE, MAE, R2):
        assert math.isnan(cls().compute(empty, empty, None))
    none = np.array([], dtype=np.int64)
    for cls in (Precision, Recall, F1, RocAuc):
        assert math.isnan(cls().compute(none, none, np.zeros((0, 1))))
