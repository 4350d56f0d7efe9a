"""Curvature: exact Hessian-vector products against finite differences, symmetry, closed forms and
PyTorch; eigenvalues, trace and density against a dense solver; sharpness along training."""

import math

import numpy as np
import pytest

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.instruments import curvature
from gradient_lab.engine.instruments.curvature import (
    EXACT,
    FINITE_DIFFERENCES,
    HessianOperator,
    density,
    full_hessian,
    hutchinson_trace,
    hvp,
    hvp_method,
    record_sharpness,
    slq_nodes,
    spectrum,
    top_eigenvectors,
)
from gradient_lab.engine.loading.discovery import default_registry, discover
from gradient_lab.engine.plugin_api import Activation, Layer, Loss
from gradient_lab.engine.training.evaluation import Evaluator
from gradient_lab.plugins.layers import Dense
from tests.experiments import dense, small_session

session = small_session


def gradient_differences(evaluator, theta, v):
    """Central differences of the full gradient along v (test's own step, not the module's)."""
    h = 1e-5 * max(1.0, float(np.linalg.norm(theta))) / float(np.linalg.norm(v))
    up = evaluator.gradient(theta + h * v)
    down = evaluator.gradient(theta - h * v)
    return (up - down) / (2.0 * h)


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_hvp(s, tol=1e-6):
    """Exact HVP agrees with differences of the gradient and is symmetric; theta untouched."""
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    before = (s.model.theta.tobytes(), s.model.grad.tobytes())
    u, v = np.random.default_rng(1).standard_normal((2, theta.size))
    hv, hu = hvp(evaluator, theta, v), hvp(evaluator, theta, u)
    assert hvp_method(s.model, s.loss) == EXACT
    assert relative(hv, gradient_differences(evaluator, theta, v)) < tol
    assert abs(u @ hv - v @ hu) <= 1e-10 * max(abs(u @ hv), 1e-300)
    assert (s.model.theta.tobytes(), s.model.grad.tobytes()) == before
    return hv


# ------------------------------------------------------------------------ exact HVP


@pytest.mark.parametrize(
    "activation",
    ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus"],
)
def test_hvp_matches_differences_for_every_activation(activation):
    s = session(f"{dense(6, activation)}, {dense(5, activation)}, {dense(1, 'tanh')}")
    check_hvp(s)


@pytest.mark.parametrize(
    ("loss", "output", "dataset", "outputs"),
    [
        ('"mse"', "tanh", "spiral", 1),
        ('"bce"', "sigmoid", "circle", 1),
        ('"bce_with_logits"', "linear", "circle", 1),
        ('{ name = "cross_entropy", input = "logits" }', "linear", "blobs", 3),
        ('"cross_entropy"', "softmax", "blobs", 3),
        ('{ name = "huber", delta = 0.3 }', "linear", "plane", 1),
        ('"mae"', "linear", "plane", 1),
        ('"hinge"', "linear", "circle", 1),
        ('"multi_margin"', "linear", "blobs", 3),
        ('"mse"', "softmax", "blobs", 3),
    ],
)
def test_hvp_matches_differences_for_every_loss(loss, output, dataset, outputs):
    s = session(f"{dense(5, 'gelu')}, {dense(outputs, output)}", loss=loss, dataset=dataset)
    check_hvp(s)


def test_softmax_layer_before_cross_entropy_on_probabilities():
    softmax = '{ type = "activation", activation = "softmax" }'
    layers = f"{dense(5, 'tanh')}, {dense(3, 'linear')}, {softmax}"
    s = session(layers, loss='"cross_entropy"', dataset="blobs")
    assert s.loss.inline_name() == "cross_entropy_probs"
    check_hvp(s)


def test_batch_norm_dropout_flatten_and_residual_in_evaluation_mode():
    layers = ", ".join(
        [
            '{ type = "batch_norm" }',
            '{ type = "flatten" }',
            dense(6, "tanh"),
            '{ type = "batch_norm" }',
            '{ type = "dropout", rate = 0.3 }',
            '{ type = "residual", hidden = 4, activation = "silu" }',
            '{ type = "activation", activation = "elu" }',
            dense(10, "linear"),
        ]
    )
    s = session(layers, loss='"cross_entropy"', dataset="digits", data='shape = "image"')
    s.run_steps(7)  # running statistics away from (0, 1), weights away from the start
    assert any(not np.allclose(a, 0) for k, a in s.model.state_arrays().items() if "mean" in k)
    state = {k: v.copy() for k, v in s.model.state_arrays().items()}
    check_hvp(s)
    evaluator, theta = Evaluator(s), s.model.theta.copy()
    block = np.random.default_rng(3).standard_normal((3, theta.size))
    one_by_one = np.array([hvp(evaluator, theta, v) for v in block])
    np.testing.assert_allclose(hvp(evaluator, theta, block), one_by_one, rtol=1e-12, atol=1e-14)
    for key, value in s.model.state_arrays().items():
        assert value.tobytes() == state[key].tobytes()


def test_linear_regression_hessian_is_the_closed_form():
    """One linear unit with MSE: H = 2/N X̃ᵀX̃ with X̃ = [X, 1] (W first, then b)."""
    s = session(dense(1, "linear"), dataset="plane", data="n = 50")
    x = s.x_train
    x1 = np.column_stack([x, np.ones(len(x))])
    exact = 2.0 / len(x) * x1.T @ x1
    h = full_hessian(Evaluator(s), s.model.theta.copy())
    np.testing.assert_allclose(h, exact, rtol=1e-13, atol=1e-13 * np.abs(exact).max())


def test_several_outputs_kronecker_structure():
    """K linear outputs with MSE: H = 2/(N K) · (X̃ᵀX̃ ⊗ I_K) in theta's order (W row-major, then
    b), so every eigenvalue of 2/(N K) X̃ᵀX̃ appears K times."""
    s = session(dense(3, "linear"), dataset="blobs", data="n = 40")
    x1 = np.column_stack([s.x_train, np.ones(len(s.x_train))])
    expect = np.kron(2.0 / (3 * len(x1)) * x1.T @ x1, np.eye(3))
    evaluator, theta = Evaluator(s), s.model.theta.copy()
    h = full_hessian(evaluator, theta)
    np.testing.assert_allclose(h, expect, rtol=1e-12, atol=1e-12 * np.abs(expect).max())
    # The Krylov space of one start vector holds one copy of each eigenvalue; Lanczos must
    # restart past that closure to find the other copies.
    values, vectors = top_eigenvectors(evaluator, theta, k=4, iterations=9)
    exact = spectrum(h)[::-1][:4]
    assert exact[0] == pytest.approx(exact[2], rel=1e-12) and exact[3] < 0.99 * exact[0]
    np.testing.assert_allclose(values, exact, rtol=1e-10)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(4), atol=1e-10)


def test_full_hessian_matches_a_difference_jacobian_of_the_gradient():
    s = session(f"{dense(4, 'softplus')}, {dense(1, 'sigmoid')}", loss='"bce"', dataset="moons")
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    h = full_hessian(evaluator, theta)
    jac = np.array([gradient_differences(evaluator, theta, e) for e in np.eye(theta.size)])
    np.testing.assert_allclose(h, 0.5 * (jac + jac.T), atol=1e-7 * np.abs(h).max())
    np.testing.assert_array_equal(h, h.T)
    np.testing.assert_allclose(spectrum(h), np.linalg.eigvalsh(h))


@pytest.mark.parametrize(
    ("activation", "output", "loss", "dataset", "outputs"),
    [
        ("tanh", "linear", '"mse"', "plane", 1),
        ("gelu", "sigmoid", '"bce"', "circle", 1),
        ("silu", "linear", '{ name = "cross_entropy", input = "logits" }', "blobs", 3),
        ("elu", "softmax", '"cross_entropy"', "blobs", 3),
        ("softplus", "linear", '"bce_with_logits"', "xor", 1),
    ],
)
def test_full_hessian_matches_torch(activation, output, loss, dataset, outputs):
    torch = pytest.importorskip("torch")
    s = session(
        f"{dense(4, activation)}, {dense(outputs, output)}",
        loss=loss,
        dataset=dataset,
        data="n = 40",
    )
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    x = torch.tensor(s.x_train, dtype=torch.float64)
    t = torch.tensor(s.targets_train, dtype=torch.float64)
    fn = torch.nn.functional
    acts = {
        "tanh": torch.tanh,
        "gelu": fn.gelu,
        "silu": fn.silu,
        "elu": fn.elu,
        "softplus": fn.softplus,
        "sigmoid": torch.sigmoid,
        "linear": lambda z: z,
        "softmax": lambda z: torch.softmax(z, dim=1),
    }
    shapes = [(x.shape[1], 4), (4,), (4, outputs), (outputs,)]

    def loss_of(flat):
        parts, at = [], 0
        for shape in shapes:
            size = math.prod(shape)
            parts.append(flat[at : at + size].reshape(shape))
            at += size
        h = acts[activation](x @ parts[0] + parts[1])
        out = acts[output](h @ parts[2] + parts[3])
        name = s.loss.inline_name()
        if name == "mse":
            return fn.mse_loss(out, t)
        if name == "bce":
            return fn.binary_cross_entropy(out, t)
        if name == "bce_with_logits":
            return fn.binary_cross_entropy_with_logits(out, t)
        if name == "cross_entropy_logits":
            return fn.cross_entropy(out, t)
        return -(t * torch.log(out)).sum() / len(out)

    expect = torch.autograd.functional.hessian(loss_of, torch.tensor(theta)).numpy()
    h = full_hessian(evaluator, theta)
    np.testing.assert_allclose(h, expect, rtol=1e-9, atol=1e-11 * np.abs(expect).max())


# ------------------------------------------------------------------------ plugins and fallbacks


class BentIdentity(Activation):
    name = "test_bent_identity"
    formula = r"f(x) = \frac{\sqrt{x^2 + 1} - 1}{2} + x"
    teaching = "A smooth activation without an engine fast path."

    @staticmethod
    def f(x, a, b):
        return (math.sqrt(x * x + 1.0) - 1.0) / 2.0 + x

    @staticmethod
    def df(x, y, a, b):
        return x / (2.0 * math.sqrt(x * x + 1.0)) + 1.0


class BentIdentityWithD2f(BentIdentity):
    name = "test_bent_identity_d2f"

    @staticmethod
    def d2f(x, y, a, b):
        return 0.5 / (x * x + 1.0) ** 1.5


class Scale(Layer):
    name = "test_scale"
    formula = r"y = s \odot x"
    teaching = "A learned per-feature scale the curvature module has no exact rule for."

    def build(self, input_shape, ctx):
        ctx.add_weight("s", np.full(input_shape[-1], 0.8))

    def forward(self, ctx, p, x):
        ctx.save(x=x)
        return x * p["s"]

    def backward(self, ctx, p, dy):
        return dy * p["s"], {"s": (dy * ctx.saved["x"]).sum(axis=0)}


class GainDense(Dense):
    """Claims to be a dense layer (it inherits the fusion description) but has one more weight."""

    name = "test_gain_dense"

    def build(self, input_shape, ctx):
        super().build(input_shape, ctx)
        ctx.add_weight("gain", np.full(1, 1.3))

    def forward(self, ctx, p, x):
        y = super().forward(ctx, p, x)
        ctx.save(ungained=y)
        return y * p["gain"]

    def backward(self, ctx, p, dy):
        dx, grads = super().backward(ctx, p, dy * p["gain"])
        grads["gain"] = np.array([(dy * ctx.saved["ungained"]).sum()])
        return dx, grads


class LogCosh(Loss):
    name = "test_log_cosh"
    formula = r"L = \frac{1}{N}\sum_i \log\cosh(\hat y_i - y_i)"
    teaching = "A smooth robust loss the curvature module has no exact rule for."

    def value(self, pred, target):
        d = pred - target
        return float(np.mean(np.abs(d) + np.log1p(np.exp(-2 * np.abs(d))) - np.log(2.0)))

    def grad(self, pred, target):
        return np.tanh(pred - target) / pred.size


@pytest.fixture(scope="module")
def registry():
    reg = discover(safe_mode=True)
    for cls in (BentIdentity, BentIdentityWithD2f, Scale, GainDense, LogCosh):
        reg.add_class(cls, "test", __name__)
    assert {"test_bent_identity", "test_bent_identity_d2f"} <= set(reg.names("activation"))
    assert {"test_scale", "test_gain_dense"} <= set(reg.names("layer"))
    assert "test_log_cosh" in reg.names("loss")
    return reg


@pytest.mark.parametrize("name", ["test_bent_identity", "test_bent_identity_d2f"])
def test_plugin_activation_without_an_inline_name(registry, name):
    s = session(f"{dense(5, name)}, {dense(1, 'tanh')}", registry=registry)
    check_hvp(s)


def test_unknown_layer_falls_back_to_differences(registry):
    s = session(f'{dense(4, "tanh")}, {{ type = "test_scale" }}, {dense(1)}', registry=registry)
    assert hvp_method(s.model) == FINITE_DIFFERENCES
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    before = (s.model.theta.tobytes(), s.model.grad.tobytes())
    op = HessianOperator(evaluator, theta)
    assert op.method == FINITE_DIFFERENCES
    u, v = np.random.default_rng(2).standard_normal((2, theta.size))
    hv = op.matvec(v)
    assert relative(hv, gradient_differences(evaluator, theta, v)) < 1e-5
    assert abs(u @ hv - v @ op.matvec(u)) < 1e-5 * abs(u @ hv)
    assert (s.model.theta.tobytes(), s.model.grad.tobytes()) == before


def test_a_layer_with_weights_no_rule_accounts_for_is_not_treated_as_exact(registry):
    s = session(f'{dense(4)}, {{ type = "test_gain_dense", units = 1 }}', registry=registry)
    assert hvp_method(s.model) == FINITE_DIFFERENCES
    evaluator, theta = Evaluator(s), s.model.theta.copy()
    v = np.random.default_rng(5).standard_normal(theta.size)
    assert relative(hvp(evaluator, theta, v), gradient_differences(evaluator, theta, v)) < 1e-5


def test_unknown_loss_falls_back_to_differences(registry):
    """Against the closed form for a linear unit: H = X̃ᵀ diag(sech²(r)) X̃ / N."""
    s = session(dense(1, "linear"), loss='"test_log_cosh"', dataset="plane", registry=registry)
    assert hvp_method(s.model) == EXACT
    assert hvp_method(s.model, s.loss) == FINITE_DIFFERENCES
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    x1 = np.column_stack([s.x_train, np.ones(len(s.x_train))])
    r = (x1 @ theta - s.targets_train[:, 0])[:, None]
    exact = x1.T @ (x1 / np.cosh(r) ** 2) / len(x1)
    np.testing.assert_allclose(full_hessian(evaluator, theta), exact, rtol=1e-6)


def test_second_derivatives_of_builtins_match_differences_of_df():
    rng = np.random.default_rng(4)
    z = rng.uniform(-4, 4, 400)
    z = z[np.abs(z) > 1e-3]  # away from the kinks
    reg = default_registry()
    options = {"leaky_relu": {"negative_slope": 0.1}, "elu": {"alpha": 0.7}}
    options["softplus"] = {"beta": 2.0, "threshold": 5.0}
    for name in kernels.ACTIVATION_CODES:
        if name == "softmax":
            continue
        act = reg.create("activation", name, **options.get(name, {}))
        y = act.apply(z)
        a, b = act.scalar_args()
        d2 = curvature.builtin_second_derivative(name, z, y, a, b)
        assert d2 is not None, name
        h = 1e-5
        numeric = (
            act.gradient(z + h, act.apply(z + h), np.ones_like(z))
            - act.gradient(z - h, act.apply(z - h), np.ones_like(z))
        ) / (2 * h)
        near_threshold = np.abs(a * z - b) < 1e-3 if name == "softplus" else False
        np.testing.assert_allclose(
            np.where(near_threshold, 0, d2),
            np.where(near_threshold, 0, numeric),
            atol=1e-8,
            err_msg=name,
        )


def test_every_engine_loss_has_an_exact_rule():
    assert set(kernels.LOSS_CODES) == set(curvature.EXACT_LOSSES)


# ------------------------------------------------------------------------ spectra


@pytest.fixture(scope="module")
def small():
    """A small tanh network partly trained, and its dense Hessian."""
    s = session(f"{dense(5, 'tanh')}, {dense(4, 'tanh')}, {dense(1, 'tanh')}", seed=5)
    s.run_epochs(2)
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    return s, evaluator, theta, full_hessian(evaluator, theta)


def test_top_eigenvectors_match_a_dense_solver(small):
    s, evaluator, theta, h = small
    exact_values, exact_vectors = np.linalg.eigh(h)
    before = s.model.theta.tobytes()
    values, vectors = top_eigenvectors(evaluator, theta, k=3, iterations=100, seed=0)
    assert values.shape == (3,) and vectors.shape == (3, theta.size)
    scale = np.abs(exact_values).max()
    np.testing.assert_allclose(values, exact_values[::-1][:3], atol=1e-6 * scale)
    assert np.all(np.diff(values) <= 0)
    for value, vector, expected in zip(values, vectors, exact_vectors.T[::-1], strict=False):
        assert abs(np.linalg.norm(vector) - 1) < 1e-12
        assert abs(abs(vector @ expected) - 1) < 1e-6
        assert np.linalg.norm(h @ vector - value * vector) < 1e-6 * scale
    assert s.model.theta.tobytes() == before
    again = top_eigenvectors(evaluator, theta, k=3, iterations=100, seed=0)
    np.testing.assert_array_equal(again[0], values)
    np.testing.assert_array_equal(again[1], vectors)
    with pytest.raises(ValueError, match="k = 0"):
        top_eigenvectors(evaluator, theta, k=0)


def test_top_eigenvalue_is_the_largest_algebraic_not_largest_magnitude():
    """Near a saddle a negative eigenvalue can be the largest in size; sharpness is the top one."""
    s = session(f"{dense(3, 'tanh')}, {dense(1, 'linear')}", seed=9)
    evaluator = Evaluator(s)
    theta = s.model.theta.copy() * 0.05
    exact = spectrum(full_hessian(evaluator, theta))
    values, _ = top_eigenvectors(evaluator, theta, k=2)
    np.testing.assert_allclose(values, exact[::-1][:2], atol=1e-8 * np.abs(exact).max())


def test_full_hessian_refuses_more_than_2000_parameters():
    s = session(f"{dense(40, 'tanh')}, {dense(10, 'linear')}", dataset="digits", data="")
    assert s.model.n_params > 2000
    with pytest.raises(ValueError, match="2000"):
        full_hessian(Evaluator(s), s.model.theta.copy())


def test_hutchinson_trace(small):
    _, evaluator, theta, h = small
    estimate, error = hutchinson_trace(evaluator, theta, samples=200, seed=0)
    assert error > 0
    assert abs(estimate - np.trace(h)) < 3 * error
    # The same probes on the dense matrix give the same numbers: the estimator is what it says.
    z = np.random.default_rng(0).integers(0, 2, (200, theta.size)) * 2.0 - 1.0
    quad = np.einsum("ij,jk,ik->i", z, h, z)
    assert estimate == pytest.approx(quad.mean(), rel=1e-12)
    assert error == pytest.approx(quad.std(ddof=1) / math.sqrt(200), rel=1e-9)


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    """One input, one linear unit, no bias: H = 2/N Σx² is 1x1, so every Rademacher probe (±1)
    returns it exactly and the standard error is zero."""
    s = session(
        dense(1, "linear", use_bias="false"), dataset="plane", data="n = 30", features=["x1"]
    )
    x = s.x_train[:, 0]
    estimate, error = hutchinson_trace(Evaluator(s), s.model.theta.copy(), samples=10)
    assert estimate == pytest.approx(2.0 / len(x) * float(x @ x), rel=1e-13)
    assert error == 0.0


def test_density_integrates_to_one_and_sits_on_the_eigenvalues(small):
    _, evaluator, theta, h = small
    exact = spectrum(h)
    grid, rho = density(evaluator, theta, lanczos_steps=30, probes=5, seed=0)
    assert grid.shape == rho.shape and np.all(rho >= 0)
    assert abs(np.trapezoid(rho, grid) - 1.0) < 1e-3
    assert grid[0] < exact[0] and grid[-1] > exact[-1]
    # With as many steps as parameters every quadrature node is an eigenvalue.
    nodes, weights = slq_nodes(evaluator, theta, lanczos_steps=theta.size, probes=3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    used = nodes[weights > 1e-10]
    gaps = np.abs(used[:, None] - exact[None, :]).min(axis=1)
    assert gaps.max() < 1e-8 * np.abs(exact).max()
    # The density's mean is an unbiased estimate of trace / P.
    nodes, weights = slq_nodes(evaluator, theta, lanczos_steps=20, probes=200, seed=1)
    means = (nodes * weights).sum(axis=1)
    assert abs(means.mean() - exact.mean()) < 3 * means.std(ddof=1) / math.sqrt(200)


def test_density_on_a_given_grid():
    s = session(dense(1, "linear"), dataset="plane", data="n = 50")
    evaluator = Evaluator(s)
    theta = s.model.theta.copy()
    exact = spectrum(full_hessian(evaluator, theta))
    grid = np.linspace(exact[0] - 5, exact[-1] + 5, 4001)
    out_grid, rho = density(evaluator, theta, lanczos_steps=3, probes=4, grid=grid, sigma=0.2)
    np.testing.assert_array_equal(out_grid, grid)
    assert abs(np.trapezoid(rho, grid) - 1.0) < 1e-3
    for value in exact:  # three well separated peaks, each at an eigenvalue
        near = np.abs(grid - value) < 0.2
        assert rho[near].max() > 0.5 * rho.max() / 3


# ------------------------------------------------------------------------ sharpness in training


def test_sharpness_along_training_on_linear_regression():
    s = session(dense(1, "linear"), dataset="plane", data="n = 100", lr=0.01)
    x1 = np.column_stack([s.x_train, np.ones(len(s.x_train))])
    top = np.linalg.eigvalsh(2.0 / len(x1) * x1.T @ x1)[-1]
    recorder = record_sharpness(s, every_epochs=1)
    s.run_epochs(3)
    records = recorder.records
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [s.steps_per_epoch * e for e in (1, 2, 3)]
    for r in records:
        assert r["top_eigenvalue"] == pytest.approx(top, rel=1e-10)
        assert r["stability_edge"] == pytest.approx(2.0 / 0.01)
    for epoch in s.history.epochs:
        assert epoch["top_eigenvalue"] == pytest.approx(top, rel=1e-10)
        assert epoch["stability_edge"] == pytest.approx(200.0)
    s.rewind(s.steps_per_epoch)  # back to the end of epoch 1, then replay
    assert [r["epoch"] for r in recorder.records] == [1]
    s.run_epochs(2)
    assert [r["epoch"] for r in recorder.records] == [1, 2, 3]


def test_sharpness_every_other_epoch_on_a_subsample():
    s = session(f"{dense(6, 'tanh')}, {dense(1, 'tanh')}", lr=0.1)
    recorder = record_sharpness(s, every_epochs=2, subsample=20, seed=1)
    assert recorder.evaluator.data.x.shape[0] == 20
    s.run_epochs(4)
    assert [r["epoch"] for r in recorder.records] == [2, 4]
    assert all(r["top_eigenvalue"] > 0 for r in recorder.records)
    marked = [e["epoch"] for e in s.history.epochs if "top_eigenvalue" in e]
    assert marked == [2, 4]
    with pytest.raises(ValueError, match="every_epochs"):
        record_sharpness(s, every_epochs=0)
