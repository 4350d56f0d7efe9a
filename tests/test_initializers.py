"""Built-in initializers: the declared spreads, orthogonality, and determinism by seed."""

import math

import numpy as np
import pytest

from gradient_lab.engine.plugin_api import Param, PluginError
from gradient_lab.plugins.initializers import PLUGINS

FAN_IN, FAN_OUT = 50, 30
SHAPE = (400, 500)  # 200k draws: the sample std is within ~0.5% of the true one


def by_name(name: str) -> type:
    return next(cls for cls in PLUGINS if cls.name == name)


def draw(name: str, shape=SHAPE, seed: int = 0, **hp) -> np.ndarray:
    return by_name(name)(**hp).sample(shape, FAN_IN, FAN_OUT, np.random.default_rng(seed))


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_declares_metadata_and_returns_float64(cls):
    assert cls.kind == "initializer"
    assert cls.name and cls.version and cls.formula and cls.teaching
    assert all(isinstance(p, Param) and p.help for p in cls.params)
    out = cls().sample((4, 3), 4, 3, np.random.default_rng(0))
    assert out.shape == (4, 3) and out.dtype == np.float64


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_same_seed_same_weights(cls):
    a = cls().sample((6, 5), 6, 5, np.random.default_rng(42))
    b = cls().sample((6, 5), 6, 5, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


def test_constant_values():
    np.testing.assert_array_equal(draw("zeros", (3, 2)), 0.0)
    np.testing.assert_array_equal(draw("constant", (3, 2)), 0.0)  # default value is 0
    np.testing.assert_array_equal(draw("constant", (3, 2), value=0.1), 0.1)


# (name, hp, expected bound or None, expected std)
SPREADS = [
    ("uniform", {}, 0.05, 0.1 / math.sqrt(12)),
    ("normal", {}, None, 0.05),
    ("normal", {"std": 0.3}, None, 0.3),
    ("xavier_uniform", {}, math.sqrt(6 / 80), math.sqrt(2 / 80)),
    ("xavier_uniform", {"gain": 2.0}, 2 * math.sqrt(6 / 80), 2 * math.sqrt(2 / 80)),
    ("xavier_normal", {}, None, math.sqrt(2 / 80)),
    ("he_uniform", {}, math.sqrt(6 / FAN_IN), math.sqrt(2 / FAN_IN)),
    ("he_uniform", {"gain": 1.0}, math.sqrt(3 / FAN_IN), math.sqrt(1 / FAN_IN)),
    ("he_normal", {}, None, math.sqrt(2 / FAN_IN)),
    ("lecun_normal", {}, None, 1 / math.sqrt(FAN_IN)),
]


@pytest.mark.parametrize("name, hp, bound, std", SPREADS, ids=[s[0] for s in SPREADS])
def test_empirical_mean_std_and_bounds(name, hp, bound, std):
    w = draw(name, **hp)
    assert abs(w.mean()) < 5 * std / math.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=0.01)
    if bound is not None:
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.999 * bound  # the whole interval is used
    else:
        assert np.abs(w).max() > 3.5 * std  # untruncated bell curve: tails beyond 2 std exist


def test_uniform_and_normal_take_their_parameters():
    w = draw("uniform", low=1.0, high=3.0)
    assert w.min() >= 1.0 and w.max() <= 3.0 and w.mean() == pytest.approx(2.0, abs=0.01)
    assert draw("normal", mean=5.0).mean() == pytest.approx(5.0, abs=0.001)
    with pytest.raises(PluginError):
        by_name("uniform")(low=1.0, high=0.0)


@pytest.mark.parametrize("shape", [(8, 8), (12, 5), (5, 12), (4, 3, 2)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal(shape, gain):
    w = draw("orthogonal", shape, gain=gain)
    assert w.shape == shape
    m = w.reshape(shape[0], -1) / gain
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_is_not_always_the_same_matrix():
    a, b = draw("orthogonal", (6, 6), seed=1), draw("orthogonal", (6, 6), seed=2)
    assert not np.allclose(a, b)


def test_orthogonal_sign_fix_makes_entries_symmetric():
    """Without the diag(R) sign fix the first column of Q would lean to one sign."""
    firsts = [draw("orthogonal", (5, 5), seed=s)[0, 0] for s in range(400)]
    assert abs(np.mean(firsts)) < 0.1


def test_fan_scaled_need_inputs():
    with pytest.raises(PluginError):
        by_name("he_normal")().sample((0, 3), 0, 3, np.random.default_rng(0))
