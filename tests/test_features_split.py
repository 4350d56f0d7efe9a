"""Derived input features and the train/validation split."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gradient_lab.plugins.datasets as datasets
from gradient_lab.engine.plugin_api import Dataset, PluginError
from gradient_lab.engine.training.data import (
    FEATURE_ALIASES,
    FEATURES,
    DataSplit,
    canonical_feature,
    make_features,
    n_outputs,
    split_data,
)

POINTS = np.array([[1.0, 2.0], [-0.5, 3.0], [0.0, -1.5]])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------- features


def test_every_feature_by_hand():
    expected = {
        "x1": [1.0, -0.5, 0.0],
        "x2": [2.0, 3.0, -1.5],
        "x1^2": [1.0, 0.25, 0.0],
        "x2^2": [4.0, 9.0, 2.25],
        "x1*x2": [2.0, -1.5, -0.0],
        "sin(x1)": [math.sin(1.0), math.sin(-0.5), 0.0],
        "sin(x2)": [math.sin(2.0), math.sin(3.0), math.sin(-1.5)],
    }
    assert list(FEATURES) == list(expected)
    for name, column in expected.items():
        out = make_features(POINTS, [name])
        assert out.shape == (3, 1) and out.dtype == np.float64
        np.testing.assert_allclose(out[:, 0], column, rtol=0, atol=1e-15)


def test_columns_follow_the_requested_order():
    out = make_features(POINTS, ["sin(x2)", "x1", "x1*x2"])
    np.testing.assert_array_equal(out[:, 1], POINTS[:, 0])
    np.testing.assert_array_equal(out[:, 2], POINTS[:, 0] * POINTS[:, 1])
    np.testing.assert_array_equal(out[:, 0], np.sin(POINTS[:, 1]))
    assert out.flags.c_contiguous


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("x1²", "x1^2"), ("x2²", "x2^2"), ("x1·x2", "x1*x2"), ("sin x1", "sin(x1)"),
     ("sin x2", "sin(x2)"), (" x1 ", "x1")],
)  # fmt: skip
def test_aliases_normalise(alias, canonical):
    assert canonical_feature(alias) == canonical
    np.testing.assert_array_equal(
        make_features(POINTS, [alias]), make_features(POINTS, [canonical])
    )
    assert alias.strip() in FEATURE_ALIASES or alias.strip() in FEATURES


def test_unknown_feature_lists_the_allowed_ones():
    with pytest.raises(PluginError, match="cos x1") as info:
        make_features(POINTS, ["x1", "cos x1"])
    for name in FEATURES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("names", "message"), [([], "at least one"), (["x1^2", "x1²"], "listed twice")]
)
def test_empty_or_repeated_features_are_refused(names, message):
    with pytest.raises(PluginError, match=message):
        make_features(POINTS, names)


def test_features_need_2d_points():
    with pytest.raises(PluginError, match=r"\(n, 2\)"):
        make_features(np.zeros((4, 3)), ["x1"])


# ---------------------------------------------------------------------------------- split


@pytest.mark.parametrize("n", [2, 11, 200, 201])
def test_split_sizes(n):
    for fraction in (0.0, 0.1, 0.2, 0.25, 0.5, 0.9):
        n_val = round(n * fraction)
        if n_val == n:
            continue  # refused: see test_split_must_leave_training_data
        split = split_data(datasets.Circle(n=n), rng(), fraction, None)
        assert len(split.X_val) == len(split.y_val) == n_val
        assert len(split.X_train) == len(split.y_train) == n - n_val
        assert split.n_train == n - n_val and split.n_val == n_val


def test_split_must_leave_training_data():
    with pytest.raises(PluginError, match="none for training"):
        split_data(datasets.Circle(n=2), rng(), 0.9, None)


def test_split_is_a_shuffle_of_the_generated_data():
    """Reproduce the documented order: generate, then one permutation from the same generator."""
    ds = datasets.Moons(n=50)
    split = split_data(ds, rng(5), 0.2, None)
    r = rng(5)
    X, y = ds.generate(r)
    order = r.permutation(50)
    np.testing.assert_array_equal(split.X_train, X[order[:40]])
    np.testing.assert_array_equal(split.X_val, X[order[40:]])
    np.testing.assert_array_equal(split.y_train, y[order[:40]])
    np.testing.assert_array_equal(split.y_val, y[order[40:]])
    joined = np.concatenate([split.X_train, split.X_val])
    assert sorted(map(tuple, joined)) == sorted(map(tuple, X))
    assert not np.array_equal(joined, X)


@pytest.mark.parametrize(
    ("ds", "x_shape", "y_shape"),
    [
        (datasets.Spiral(n=20), (0, 2), (0,)),
        (datasets.Plane(n=20), (0, 2), (0, 1)),
        (datasets.Sine(n=20), (0, 1), (0, 1)),
        (datasets.Digits(shape="image"), (0, 1, 8, 8), (0,)),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_zero_fraction_gives_empty_validation_with_shapes(ds, x_shape, y_shape):
    split = split_data(ds, rng(), 0.0, None)
    assert split.X_val.shape == x_shape and split.y_val.shape == y_shape
    assert split.X_val.dtype == np.float64
    assert split.y_val.dtype == (np.int64 if ds.task == "classification" else np.float64)


@pytest.mark.parametrize("fraction", [-0.1, 0.95, 1.0, True, "0.2", float("nan")])
def test_bad_validation_fraction(fraction):
    with pytest.raises(PluginError, match="validation_fraction"):
        split_data(datasets.Circle(), rng(), fraction, None)


@pytest.mark.parametrize("cls", [datasets.Spiral, datasets.Plane, datasets.Digits],
                         ids=lambda c: c.name)  # fmt: skip
def test_split_same_seed_same_bits_other_seed_differs(cls):
    a = split_data(cls(), rng(11), 0.3, None)
    b = split_data(cls(), rng(11), 0.3, None)
    c = split_data(cls(), rng(12), 0.3, None)
    for field in ("X_train", "y_train", "X_val", "y_val"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert a.X_train.tobytes() != c.X_train.tobytes()


def test_split_applies_features_and_keeps_the_points():
    names = ["x1", "sin x2", "x1·x2", "x2^2"]
    split = split_data(datasets.Xor(n=60), rng(), 0.25, names)
    assert split.feature_names == ["x1", "sin(x2)", "x1*x2", "x2^2"]
    assert split.input_shape == (4,) and split.planar
    assert split.points_train is not None and split.points_val is not None
    np.testing.assert_array_equal(split.X_train, make_features(split.points_train, names))
    np.testing.assert_array_equal(split.X_val, make_features(split.points_val, names))


def test_planar_default_features_are_the_coordinates():
    split = split_data(datasets.Circle(n=30), rng(), 0.0, None)
    assert split.feature_names == ["x1", "x2"] and split.input_shape == (2,)
    np.testing.assert_array_equal(split.X_train, split.points_train)


def test_planar_sets_need_at_least_one_feature():
    with pytest.raises(PluginError, match="at least one"):
        split_data(datasets.Circle(n=30), rng(), 0.0, [])


def test_unknown_feature_in_split():
    with pytest.raises(PluginError, match="x3"):
        split_data(datasets.Circle(n=30), rng(), 0.0, ["x1", "x3"])


@pytest.mark.parametrize("ds", [datasets.Sine(), datasets.Digits()], ids=lambda d: d.name)
def test_features_only_on_planar_sets(ds):
    with pytest.raises(PluginError, match="2D"):
        split_data(ds, rng(), 0.0, ["x1"])
    for features in (None, []):
        split = split_data(ds, rng(), 0.0, features)
        assert not split.planar and split.points_train is None


def test_split_metadata():
    split = split_data(datasets.Spirals(classes=4, n=80), rng(), 0.25, None)
    assert isinstance(split, DataSplit)
    assert split.task == "classification" and split.n_classes == 4
    assert split.dataset_name == "spirals"
    assert split.n_outputs == n_outputs(split) == 4
    assert split.class_names == ["0", "1", "2", "3"]

    reg = split_data(datasets.Polynomial(n=40), rng(), 0.25, None)
    assert reg.task == "regression" and reg.n_classes == 0
    assert reg.n_outputs == n_outputs(reg) == 1
    assert reg.input_shape == (1,) and reg.feature_names == ["x1"]

    digits = split_data(datasets.Digits(shape="image"), rng(), 0.1, None)
    assert digits.input_shape == (1, 8, 8) and digits.n_classes == 10
    assert len(digits.feature_names) == 64


# --------------------------------------------------------------- plugins that break the rules


class _Broken(Dataset):
    name = "broken"
    planar = True

    def __init__(self, X, y, task="classification", classes=2):
        super().__init__()
        self._X, self._y, self.task, self._k = X, y, task, classes

    def n_classes(self):
        return self._k

    def generate(self, rng):
        return self._X, self._y


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": np.zeros((4, 2)), "y": np.array([0, 1, 2, 0])}, "outside 0..1"),
        ({"X": np.zeros((4, 2)), "y": np.array([0, 1, 0])}, "4 inputs but 3 targets"),
        ({"X": np.zeros((4, 3)), "y": np.array([0, 1, 0, 1])}, "planar"),
        ({"X": np.full((4, 2), np.nan), "y": np.array([0, 1, 0, 1])}, "finite"),
        ({"X": np.zeros((4, 2)), "y": np.array([0.5, 1, 0, 1])}, "whole-number"),
        ({"X": np.zeros((4, 2)), "y": np.array([0, 1, 0, 1]), "classes": 1}, "at least 2"),
        ({"X": np.zeros((4, 2)), "y": np.zeros(4), "task": "ranking"}, "ranking"),
    ],
)
def test_a_broken_plugin_is_named(kwargs, message):
    with pytest.raises(PluginError, match=message) as info:
        split_data(_Broken(**kwargs), rng(), 0.0, None)
    assert "broken" in str(info.value)


def test_regression_targets_of_one_dimension_become_a_column():
    ds = _Broken(np.arange(8.0).reshape(4, 2), np.arange(4.0), task="regression")
    split = split_data(ds, rng(), 0.0, None)
    assert split.y_train.shape == (4, 1) and split.n_outputs == 1
