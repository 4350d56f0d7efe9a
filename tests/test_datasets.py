"""Built-in dataset plugins: contract, shapes, balance, determinism, noise and geometry."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest

import gradient_lab.plugins.datasets as datasets
from gradient_lab.engine.loading.registry import contract_problems
from gradient_lab.engine.plugin_api import Dataset, Param, PluginError

ALL = datasets.PLUGINS
GENERATED = [c for c in ALL if c.name not in ("digits", "csv")]
CLASSIFIERS = [c for c in GENERATED if c.task == "classification"]
REGRESSORS = [c for c in GENERATED if c.task == "regression"]
PLANAR_NAMES = {"circle", "xor", "gaussians", "spiral", "moons", "blobs", "spirals", "plane",
                "gaussian_surface"}  # fmt: skip


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def bad_values(p: Param) -> list[object]:
    """Values a parameter must refuse, derived from its declaration."""
    bad: list[object] = []
    if p.choices:
        bad.append("no-such-choice")
    if p.type in ("int", "float"):
        bad.append("text")
        if p.low is not None:
            bad.append(p.low if not p.low_inclusive else p.low - 1)
        if p.high is not None:
            bad.append(p.high + 1)
    elif p.type in ("str", "strs"):
        bad.append(5)
    elif p.type == "floats":
        bad.append("text")
    return bad


def test_the_expected_sets_are_registered():
    names = {c.name for c in ALL}
    assert names == PLANAR_NAMES | {"sine", "polynomial", "digits", "csv"}
    assert {c.name for c in ALL if c.planar} == PLANAR_NAMES
    assert {c.name for c in ALL if c.task == "regression"} == {
        "plane", "gaussian_surface", "sine", "polynomial"
    }  # fmt: skip


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_contract_and_defaults(cls):
    assert issubclass(cls, Dataset)
    assert contract_problems(cls) == []
    assert cls.version and cls.teaching
    for p in cls.params:
        assert p.help, f"{cls.name}.{p.name} has no help"
        p.validate(p.default)
    assert cls().hp == {p.name: p.validate(p.default) for p in cls.params}


@pytest.mark.parametrize(
    ("cls", "param"),
    [(c, p) for c in ALL for p in c.params if bad_values(p)],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_bad_parameter_values_name_the_parameter(cls, param):
    for value in bad_values(param):
        with pytest.raises(PluginError, match=rf"{cls.name}\.{param.name}\b"):
            cls(**{param.name: value})


def test_unknown_parameter_is_refused():
    with pytest.raises(PluginError, match="noize"):
        datasets.Circle(noize=0.1)


@pytest.mark.parametrize("coefficients", [(), tuple(float(i) for i in range(9))])
def test_polynomial_needs_one_to_eight_coefficients(coefficients):
    with pytest.raises(PluginError, match=r"polynomial\.coefficients"):
        datasets.Polynomial(coefficients=coefficients)


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
def test_shapes_and_dtypes(cls):
    ds = cls(n=37)
    X, y = ds.generate(rng())
    assert X.dtype == np.float64 and len(X) == 37
    assert X.shape == ((37, 2) if cls.planar else (37, 1))
    if cls.task == "classification":
        assert y.dtype == np.int64 and y.shape == (37,)
        assert set(np.unique(y)) == set(range(ds.n_classes()))
    else:
        assert y.dtype == np.float64 and y.shape == (37, 1)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.name)
def test_classes_are_balanced(cls):
    for n in (300, 301):
        _, y = cls(n=n).generate(rng())
        counts = np.bincount(y)
        assert counts.sum() == n and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("cls", [datasets.Blobs, datasets.Spirals], ids=lambda c: c.name)
@pytest.mark.parametrize("k", [3, 4, 5])
def test_multiclass_sets_follow_classes(cls, k):
    ds = cls(classes=k, n=100)
    _, y = ds.generate(rng())
    assert ds.n_classes() == k
    assert np.array_equal(np.unique(y), np.arange(k))


def test_two_class_sets_have_two_classes():
    for cls in CLASSIFIERS:
        if cls not in (datasets.Blobs, datasets.Spirals):
            assert cls().n_classes() == 2
    for cls in REGRESSORS:
        assert cls().n_classes() == 0


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
def test_same_seed_same_bits_other_seed_differs(cls):
    X1, y1 = cls().generate(rng(3))
    X2, y2 = cls().generate(rng(3))
    X3, _ = cls().generate(rng(4))
    assert X1.tobytes() == X2.tobytes() and y1.tobytes() == y2.tobytes()
    assert X1.tobytes() != X3.tobytes()


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
def test_noise_sets_the_spread(cls):
    """Same seed: the clean data is the same, so the difference is the noise alone."""
    X0, y0 = cls(n=4000, noise=0.0).generate(rng(1))
    X1, y1 = cls(n=4000, noise=0.5).generate(rng(1))
    if cls.task == "classification":
        assert np.array_equal(y0, y1)
        moved = X1 - X0
    else:
        assert np.array_equal(X0, X1)
        moved = y1 - y0
    assert moved.std() == pytest.approx(0.5, rel=0.05)
    assert abs(moved.mean()) < 0.05


@pytest.mark.parametrize("cls", [c for c in GENERATED if c.planar], ids=lambda c: c.name)
def test_planar_sets_share_one_scale(cls):
    X, _ = cls(n=2000, noise=0.0).generate(rng())
    extent = np.abs(X).max()
    assert 4.0 < extent <= 6.5


def radius(X: np.ndarray) -> np.ndarray:
    return np.hypot(X[:, 0], X[:, 1])


def test_circle_geometry():
    X, y = datasets.Circle(n=1000, noise=0.0).generate(rng())
    r = radius(X)
    assert r[y == 1].max() <= 2.0
    assert r[y == 0].min() >= 3.5 and r[y == 0].max() <= 5.0


def test_xor_geometry():
    X, y = datasets.Xor(n=1000, noise=0.0).generate(rng())
    assert np.array_equal(y, (X[:, 0] * X[:, 1] > 0).astype(np.int64))
    assert np.abs(X).min() >= 0.3 and np.abs(X).max() <= 5.0
    quadrants = {(bool(a > 0), bool(b > 0)) for a, b in X}
    assert len(quadrants) == 4


def test_gaussians_centres():
    X, y = datasets.Gaussians(n=4000, noise=0.0).generate(rng())
    np.testing.assert_allclose(X[y == 1].mean(axis=0), [2.0, 2.0], atol=0.1)
    np.testing.assert_allclose(X[y == 0].mean(axis=0), [-2.0, -2.0], atol=0.1)
    assert X[y == 1].std(axis=0) == pytest.approx([1.0, 1.0], rel=0.1)


@pytest.mark.parametrize("cls", [datasets.Spiral, datasets.Spirals], ids=lambda c: c.name)
def test_spiral_arms_wind_out_to_radius_five(cls):
    ds = cls(n=2000, noise=0.0)
    X, y = ds.generate(rng())
    k, turns = ds.n_classes(), ds.hp["turns"]
    t = radius(X) / 5.0
    assert t.max() <= 1.0
    # each point's angle is the arm's start angle plus 2π·turns·t
    expected = 2 * np.pi * turns * t + 2 * np.pi * y / k
    np.testing.assert_allclose(np.cos(expected) * radius(X), X[:, 0], atol=1e-9)
    np.testing.assert_allclose(np.sin(expected) * radius(X), X[:, 1], atol=1e-9)


def test_moons_interlock():
    X, y = datasets.Moons(n=2000, noise=0.0).generate(rng())
    # the upper moon's centre of its circle is at 3·(0 - 0.5, 0 - 0.25): radius 3 around it
    np.testing.assert_allclose(radius(X[y == 0] - [-1.5, -0.75]), 3.0)
    np.testing.assert_allclose(radius(X[y == 1] - [1.5, 0.75]), 3.0)
    assert X[y == 0, 1].mean() > X[y == 1, 1].mean()


def test_regression_targets_follow_their_formulas():
    X, y = datasets.Plane(n=50, noise=0.0).generate(rng())
    np.testing.assert_allclose(y[:, 0], (X[:, 0] + X[:, 1]) / 10.0)
    X, y = datasets.Sine(n=50, noise=0.0, frequency=2.0).generate(rng())
    np.testing.assert_allclose(y, np.sin(2.0 * X))
    X, y = datasets.Polynomial(n=50, noise=0.0, coefficients=(1.0, 2.0, 3.0)).generate(rng())
    np.testing.assert_allclose(y, 1.0 + 2.0 * X + 3.0 * X**2)
    assert np.abs(X).max() <= 2.0


def test_gaussian_surface_has_hills_and_pits():
    ds = datasets.GaussianSurface(n=5000, noise=0.0)
    X, y = ds.generate(rng())
    assert y.max() > 0.8 and y.min() < -0.8
    near_hill = radius(X - [0.0, -2.5]) < 0.3
    near_pit = radius(X - [0.0, 2.5]) < 0.3
    assert np.all(y[near_hill] > 0.8) and np.all(y[near_pit] < -0.8)


# -------------------------------------------------------------------------------- digits


def test_digits_samples_classes_and_range():
    ds = datasets.Digits()
    X, y = ds.generate(rng())
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert ds.n_classes() == 10
    assert np.array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).min() >= 170
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X * 16, np.round(X * 16))


def test_digits_image_shape_holds_the_same_pixels():
    flat, y1 = datasets.Digits(shape="flat").generate(rng())
    image, y2 = datasets.Digits(shape="image").generate(rng(9))
    assert image.shape == (1797, 1, 8, 8)
    assert np.array_equal(image.reshape(1797, 64), flat) and np.array_equal(y1, y2)


def test_digits_look_like_digits():
    """A zero has an empty middle and ink around it; a one has ink in the central columns."""
    X, y = datasets.Digits(shape="image").generate(rng())
    zero = X[y == 0, 0].mean(axis=0)
    one = X[y == 1, 0].mean(axis=0)
    assert zero[3:5, 3:5].mean() < 0.3 < zero[3:5, 1:3].mean()
    assert one[2:6, 3:5].mean() > 0.5


def test_digits_generate_returns_fresh_arrays():
    X, y = datasets.Digits().generate(rng())
    X[:] = -1.0
    y[:] = -1
    X2, y2 = datasets.Digits().generate(rng())
    assert X2.min() == 0.0 and y2.min() == 0


def test_digits_attribution_ships_with_the_data():
    folder = importlib.resources.files("gradient_lab.assets")
    text = folder.joinpath("DIGITS_ATTRIBUTION.txt").read_text(encoding="utf-8")
    assert "Alpaydin" in text and "Kaynak" in text and "CC BY 4.0" in text
    assert folder.joinpath("digits.csv.gz").is_file()
