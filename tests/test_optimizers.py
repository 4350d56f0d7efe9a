"""Built-in optimizers: the same numbers as torch.optim, descent on a quadratic, and LM's solves."""

import math

import numpy as np
import pytest

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.plugin_api import OptimizerContext, Param, PluginError
from gradient_lab.plugins.optimizers import PLUGINS, LevenbergMarquardt

FIRST_ORDER = [cls for cls in PLUGINS if not cls.needs_context]

# (plugin name, non-default hyperparameters): every branch of every rule at least once.
TORCH_CASES = [
    ("sgd", {}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("sgd", {"lr": 0.02, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.03, "weight_decay": 0.2}),
    ("momentum", {}),
    ("momentum", {"lr": 0.01, "dampening": 0.5, "weight_decay": 0.05}),
    ("nesterov", {}),
    ("nesterov", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"initial_accumulator_value": 0.5, "eps": 1e-3}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True, "momentum": 0.9, "weight_decay": 0.05}),
    ("rmsprop", {"lr": 0.001, "alpha": 0.9, "momentum": 0.5}),
    ("rmsprop", {"centered": True, "eps": 1e-4}),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.7, "eps": 1e-4, "weight_decay": 0.1}),
    ("adam", {}),
    ("adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6}),
    ("adamw", {}),
    ("adamw", {"amsgrad": True, "weight_decay": 0.3, "lr": 0.02}),
    ("adamw", {"beta1": 0.0, "beta2": 0.5}),
]

TORCH_CLASS = {
    "sgd": "SGD",
    "momentum": "SGD",
    "nesterov": "SGD",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adam": "Adam",
    "adamw": "AdamW",
}


def by_name(name: str) -> type:
    return next(cls for cls in PLUGINS if cls.name == name)


def torch_kwargs(hp: dict) -> dict:
    """Our hyperparameters as torch.optim spells them (betas is one tuple there)."""
    kw = {k: v for k, v in hp.items() if k not in ("beta1", "beta2")}
    if "beta1" in hp:
        kw["betas"] = (hp["beta1"], hp["beta2"])
    return kw


def run_plugin(opt, theta0: np.ndarray, grads: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    theta = theta0.copy()
    state = opt.init(theta)
    for g in grads:
        update, state = opt.update(g, state, theta)
        theta = theta + update
    return theta, state


# ---------------------------------------------------------------------------- contract and state


@pytest.mark.parametrize("cls", PLUGINS, ids=lambda c: c.name)
def test_declares_metadata(cls):
    assert cls.kind == "optimizer"
    assert cls.name and cls.version and cls.formula and cls.teaching
    assert isinstance(cls.params, tuple) and all(isinstance(p, Param) for p in cls.params)
    assert all(p.help for p in cls.params)
    opt = cls()
    assert type(opt)(**opt.get_config()).hp == opt.hp


@pytest.mark.parametrize("cls", FIRST_ORDER, ids=lambda c: c.name)
def test_inline_rule_reads_declared_hyperparameters(cls):
    names = kernels.OPTIMIZER_RULES[cls.inline][1]
    assert set(names) <= set(cls().hp)


def test_inline_names_and_state_order():
    expected = {
        "sgd": ("sgd", ("momentum_buffer",)),
        "momentum": ("sgd", ("momentum_buffer",)),
        "nesterov": ("sgd", ("momentum_buffer",)),
        "adagrad": ("adagrad", ("sum",)),
        "rmsprop": ("rmsprop", ("square_avg", "momentum_buffer", "grad_avg")),
        "adadelta": ("adadelta", ("square_avg", "acc_delta")),
        "adam": ("adam", ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
        "adamw": ("adamw", ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
        "levenberg_marquardt": ("", ()),
    }
    assert {cls.name: (cls.inline, cls.inline_state) for cls in PLUGINS} == expected
    assert [cls.name for cls in PLUGINS if cls.needs_context] == ["levenberg_marquardt"]
    assert "lr" not in LevenbergMarquardt().hp


def test_torch_defaults():
    hp = {cls.name: cls().hp for cls in PLUGINS}
    assert hp["sgd"] == dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
    assert hp["momentum"]["momentum"] == 0.9 and not hp["momentum"]["nesterov"]
    assert hp["nesterov"]["momentum"] == 0.9 and hp["nesterov"]["nesterov"]
    assert hp["adagrad"] == dict(
        lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10
    )
    assert hp["rmsprop"] == dict(
        lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False
    )
    assert hp["adadelta"] == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0)
    assert hp["adam"] == dict(
        lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False
    )
    assert hp["adamw"] == dict(hp["adam"], weight_decay=1e-2)


@pytest.mark.parametrize("cls", FIRST_ORDER, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_state_and_update_keep_dtype_and_theta(cls, dtype):
    rng = np.random.default_rng(1)
    theta = rng.normal(size=7).astype(dtype)
    before = theta.copy()
    opt = cls()
    state = opt.init(theta)
    assert tuple(k for k in state if k != "step") == cls.inline_state
    assert state["step"].shape == (1,) and state["step"][0] == 0.0
    arrays = {k: state[k] for k in cls.inline_state}
    for _ in range(3):
        update, state = opt.update(rng.normal(size=7).astype(dtype), state, theta)
        assert update.dtype == dtype and update.shape == theta.shape
    np.testing.assert_array_equal(theta, before)
    assert state["step"][0] == 3.0
    for key, arr in arrays.items():
        assert state[key] is arr and arr.dtype == dtype  # updated in place, never replaced


def test_state_views_see_updates():
    """The engine replaces state arrays with rows of one slot matrix; updates must land there."""
    opt = by_name("adam")()
    theta = np.linspace(-1.0, 1.0, 5)
    state = opt.init(theta)
    slots = np.zeros((3, theta.size))
    for i, key in enumerate(opt.inline_state):
        state[key] = slots[i]
    opt.update(np.ones(5), state, theta)
    np.testing.assert_allclose(slots[0], 0.1)
    np.testing.assert_allclose(slots[1], 0.001)


@pytest.mark.parametrize(
    "name, hp",
    [
        ("sgd", {"nesterov": True}),
        ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
        ("nesterov", {"momentum": 0.0}),
        ("adam", {"beta1": 1.0}),
        ("adamw", {"beta2": 1.0}),
        ("sgd", {"lr": -1.0}),
        ("adam", {"betas": (0.9, 0.99)}),
    ],
)
def test_rejects_invalid_hyperparameters(name, hp):
    with pytest.raises(PluginError):
        by_name(name)(**hp)


# --------------------------------------------------------------------------------- against torch


@pytest.mark.parametrize(
    "name, hp", TORCH_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)]
)
def test_matches_torch(name, hp):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12345)
    theta0 = rng.normal(size=11)
    grads = [rng.normal(size=11) * rng.uniform(0.1, 3.0) for _ in range(20)]

    opt = by_name(name)(**hp)
    theta, state = run_plugin(opt, theta0, grads)

    p = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    torch_opt = getattr(torch.optim, TORCH_CLASS[name])([p], **torch_kwargs(opt.hp))
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        torch_opt.step()
    expected = p.detach().numpy()

    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    torch_state = torch_opt.state[p]
    for key in opt.inline_state:
        if key in torch_state and torch_state[key] is not None:
            ref = torch_state[key].numpy()
            np.testing.assert_allclose(state[key], ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    assert state["step"][0] == 20.0


# ----------------------------------------------------------------------- descent on a quadratic


def spd_matrix(n: int, condition: float, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q @ np.diag(np.geomspace(1.0, condition, n)) @ q.T


DESCENT = [
    ("sgd", {"lr": 0.15}, 400),
    ("momentum", {"lr": 0.05}, 300),
    ("nesterov", {"lr": 0.05}, 300),
    ("adagrad", {"lr": 0.5}, 400),
    ("rmsprop", {"lr": 0.01}, 400),
    ("adadelta", {}, 800),
    ("adam", {"lr": 0.05}, 400),
    ("adamw", {"lr": 0.05, "weight_decay": 0.0}, 400),
]


@pytest.mark.parametrize("name, hp, steps", DESCENT, ids=[d[0] for d in DESCENT])
def test_decreases_convex_quadratic(name, hp, steps):
    a = spd_matrix(6, 10.0, seed=3)
    theta = np.linspace(-2.0, 2.5, 6)

    def loss(x: np.ndarray) -> float:
        return 0.5 * float(x @ a @ x)

    start = loss(theta)
    opt = by_name(name)(**hp)
    state = opt.init(theta)
    for _ in range(steps):
        update, state = opt.update(a @ theta, state, theta)
        theta = theta + update
    assert loss(theta) < 1e-2 * start


# --------------------------------------------------------------------------- Levenberg-Marquardt


class FakeContext(OptimizerContext):
    """Residuals, Jacobian and loss = sum(r**2) from plain functions, counting loss calls."""

    def __init__(self, residuals, jacobian):
        self._r, self._j = residuals, jacobian
        self.loss_calls = 0

    def residuals(self, theta):
        return self._r(theta)

    def jacobian(self, theta):
        return self._j(theta)

    def loss(self, theta):
        self.loss_calls += 1
        return float(np.sum(self._r(theta) ** 2))


def run_lm(opt, ctx, theta, steps):
    state = opt.init(theta)
    for _ in range(steps):
        update, state = opt.update(np.zeros_like(theta), state, theta, ctx)
        theta = theta + update
    return theta, state


@pytest.mark.parametrize("scaling", ["identity", "diagonal"])
def test_lm_solves_linear_least_squares(scaling):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(30, 5))
    b = rng.normal(size=30)
    ctx = FakeContext(lambda th: a @ th - b, lambda th: a)
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    theta, state = run_lm(LevenbergMarquardt(scaling=scaling), ctx, np.zeros(5), steps=3)
    np.testing.assert_allclose(theta, solution, atol=1e-8)
    assert math.isclose(state["mu"][0], 1e-6)  # three accepted steps, each μ *= 0.1
    assert state["step"][0] == 3.0


@pytest.mark.parametrize("scaling", ["identity", "diagonal"])
def test_lm_fits_exponential_curve(scaling):
    t = np.linspace(0.0, 3.0, 25)
    y = 2.0 * np.exp(-0.7 * t)

    def residuals(th):
        return th[0] * np.exp(th[1] * t) - y

    def jacobian(th):
        e = np.exp(th[1] * t)
        return np.column_stack([e, th[0] * t * e])

    ctx = FakeContext(residuals, jacobian)
    theta, _ = run_lm(LevenbergMarquardt(scaling=scaling), ctx, np.array([1.0, 0.0]), steps=10)
    np.testing.assert_allclose(theta, [2.0, -0.7], atol=1e-7)


def test_lm_rejects_every_try_at_the_minimum():
    """At the exact solution no step lowers the loss: zero update and μ raised max_tries times."""
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    theta = np.array([0.5, -1.0])
    b = a @ theta
    ctx = FakeContext(lambda th: a @ th - b, lambda th: a)
    opt = LevenbergMarquardt(mu=1e-2, mu_inc=10.0, max_tries=3)
    state = opt.init(theta)
    update, state = opt.update(np.zeros(2), state, theta, ctx)
    np.testing.assert_array_equal(update, 0.0)
    assert math.isclose(state["mu"][0], 10.0)
    assert ctx.loss_calls == 1 + 3


def test_lm_keeps_dtype_and_needs_context():
    a = np.eye(3)
    ctx = FakeContext(lambda th: a @ th - 1.0, lambda th: a)
    opt = LevenbergMarquardt()
    theta = np.zeros(3, dtype=np.float32)
    update, _ = opt.update(np.zeros(3), opt.init(theta), theta, ctx)
    assert update.dtype == np.float32
    with pytest.raises(PluginError):
        opt.update(np.zeros(3), opt.init(theta), theta, None)


def test_lm_checks_jacobian_shape():
    ctx = FakeContext(lambda th: th - 1.0, lambda th: np.ones((2, 2)))
    opt = LevenbergMarquardt()
    with pytest.raises(PluginError, match="Jacobian"):
        opt.update(np.zeros(3), opt.init(np.zeros(3)), np.zeros(3), ctx)
