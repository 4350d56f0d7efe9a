"""Built-in regularizers: gradients by finite differences, clipping against torch and NumPy."""

import numpy as np
import pytest

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.plugin_api import Param
from gradient_lab.plugins.regularizers import PLUGINS


def by_name(name: str) -> type:
    return next(cls for cls in PLUGINS if cls.name == name)


def point(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A theta away from 0 (L1's kink) and a weight/bias mask."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.1, 2.0, n) * rng.choice([-1.0, 1.0], n)
    mask = (rng.uniform(size=n) < 0.7).astype(np.float64)
    return theta, mask


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_declares_metadata(cls):
    assert cls.kind == "regularizer"
    assert cls.name and cls.version and cls.formula and cls.teaching
    assert cls.inline == cls.name
    assert cls.stage in ("loss", "gradient", "update")
    assert all(isinstance(p, Param) and p.help for p in cls.params)


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_inline_rule_reads_a_declared_hyperparameter(cls):
    assert kernels.REGULARIZER_RULES[cls.inline][1] in cls().hp


def test_stages():
    assert {cls.name: cls.stage for cls in PLUGINS} == {
        "l1": "loss",
        "l2": "loss",
        "weight_decay": "update",
        "clip_norm": "gradient",
        "clip_value": "gradient",
    }


@pytest.mark.parametrize("name", ["l1", "l2"])
@pytest.mark.parametrize("strength", [1e-4, 0.3])
def test_penalty_grad_matches_central_differences(name, strength):
    reg = by_name(name)(strength=strength)
    theta, mask = point()
    h = 1e-6
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        numeric[i] = (reg.penalty(theta + e, mask) - reg.penalty(theta - e, mask)) / (2 * h)
    np.testing.assert_allclose(reg.penalty_grad(theta, mask), numeric, rtol=1e-6, atol=1e-10)


def test_penalty_values_and_mask():
    theta = np.array([1.0, -2.0, 3.0])
    mask = np.array([1.0, 1.0, 0.0])
    assert by_name("l1")(strength=0.5).penalty(theta, mask) == pytest.approx(1.5)
    assert by_name("l2")(strength=0.5).penalty(theta, mask) == pytest.approx(2.5)
    np.testing.assert_allclose(
        by_name("l1")(strength=0.5).penalty_grad(theta, mask), [0.5, -0.5, 0.0]
    )
    np.testing.assert_allclose(
        by_name("l2")(strength=0.5).penalty_grad(theta, mask), [1.0, -2.0, 0.0]
    )


def test_weight_decay_is_decoupled_and_masked():
    theta, mask = point()
    update = np.linspace(-1.0, 1.0, theta.size)
    out = by_name("weight_decay")(decay=0.01).transform(update, theta, mask, 0.5)
    np.testing.assert_allclose(out, update - 0.5 * 0.01 * theta * mask)
    np.testing.assert_array_equal(out[mask == 0.0], update[mask == 0.0])


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_clip_norm_matches_torch(max_norm, norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grad = rng.normal(size=50)
    theta, mask = point(50)
    reg = by_name("clip_norm")(max_norm=max_norm, norm_type=norm_type)
    out = reg.transform(grad.copy(), theta, mask, 0.1)

    p = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor(grad, dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_([p], max_norm, norm_type=norm_type)
    np.testing.assert_allclose(out, p.grad.numpy(), rtol=1e-12)
    assert (reg.inline == "clip_norm") == (norm_type == 2.0)


def test_clip_norm_leaves_short_gradients_and_input_alone():
    grad = np.array([0.3, -0.4])
    reg = by_name("clip_norm")()
    out = reg.transform(grad, grad, np.ones(2), 0.1)
    np.testing.assert_array_equal(out, grad)
    assert out is not grad
    long = np.array([3.0, -4.0])
    np.testing.assert_allclose(
        np.linalg.norm(reg.transform(long, long, np.ones(2), 0.1)), 1.0, rtol=1e-6
    )
    np.testing.assert_array_equal(long, [3.0, -4.0])


@pytest.mark.parametrize("v", [0.0, 0.25, 1.0])
def test_clip_value_matches_numpy(v):
    grad = np.random.default_rng(2).normal(size=30) * 2
    out = by_name("clip_value")(clip_value=v).transform(grad, grad, np.ones(30), 0.1)
    np.testing.assert_array_equal(out, np.clip(grad, -v, v))


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_float32_stays_float32(cls):
    theta, mask = point()
    theta = theta.astype(np.float32)
    reg = cls()
    if cls.stage == "loss":
        assert reg.penalty_grad(theta, mask).dtype == np.float32
    else:
        assert reg.transform(theta * 10, theta, mask, 0.1).dtype == np.float32
