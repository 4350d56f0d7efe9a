"""Theory instruments: the empirical NTK and its width effect, optimizer races and their rates on
quadratics, the objective plugins' check, and universal approximation."""

import math

import numpy as np
import pytest

from gradient_lab.engine.files import load_npz
from gradient_lab.engine.instruments.theory import (
    TARGETS,
    NTKTracker,
    approximation_sweep,
    bump_construction,
    convergence_rate,
    empirical_ntk,
    fit_sigmoid_units,
    jacobian,
    ntk_change,
    ntk_eigenvalues,
    ntk_width_experiment,
    race,
    race_arrays,
    run_optimizer,
    save_npz,
)
from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.plugin_api import Objective
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

REGISTRY = discover(safe_mode=True)

TWO_OUTPUTS = experiment_text(
    [dense(5, "tanh"), dense(4, "relu"), dense(3, "linear")],
    seed=4,
    dataset="blobs",
    data="n = 60\nclasses = 3",
    validation=0.0,
    init=None,
    loss='{ name = "cross_entropy", input = "logits" }',
    optimizer='{ name = "adam", lr = 0.01 }',
    epochs=None,
)

NTK_MLP = """
schema = 1
seed = 1
[data]
dataset = "sine"
n = 40
noise = 0.0
validation_fraction = 0.0
[model.architecture]
name = "mlp"
depth = 2
width = 64
activation = "relu"
parameterization = "ntk"
[training]
loss = "mse"
optimizer = { name = "sgd", lr = 0.05 }
batch_size = 40
"""


def session_of(toml: str) -> Session:
    return Session(parse_experiment(toml, REGISTRY), REGISTRY)


# ------------------------------------------------------------------------ neural tangent kernel


def test_ntk_is_symmetric_positive_semidefinite():
    session = session_of(TWO_OUTPUTS)
    session.run_steps(30)
    x = session.x_train[:12]
    ntk = empirical_ntk(session, x)
    assert ntk.shape == (36, 36)  # 12 samples x 3 outputs
    np.testing.assert_allclose(ntk, ntk.T, rtol=0, atol=1e-12 * np.abs(ntk).max())
    eigenvalues = ntk_eigenvalues(ntk)
    assert np.all(np.diff(eigenvalues) <= 0.0)
    assert eigenvalues.min() >= -1e-10 * eigenvalues.max()


def test_jacobian_matches_finite_differences_and_leaves_the_model_alone():
    session = session_of(TWO_OUTPUTS)
    session.run_steps(5)
    model = session.model
    theta, grad = model.theta.copy(), model.grad.copy()
    x = session.x_train[:4]
    jac = jacobian(session, x)
    np.testing.assert_array_equal(model.theta, theta)
    np.testing.assert_array_equal(model.grad, grad)
    h = 1e-6
    for p in (0, 7, 20, model.n_params - 1):
        model.theta[p] += h
        up = model.forward(x, training=False).ravel()
        model.theta[p] -= 2 * h
        down = model.forward(x, training=False).ravel()
        model.theta[p] += h
        np.testing.assert_allclose(jac[:, p], (up - down) / (2 * h), rtol=1e-5, atol=1e-8)


def test_mlp_in_ntk_parameterization_uses_ntk_dense_and_trains():
    session = session_of(NTK_MLP)
    assert [layer.name for layer in session.model.layers] == ["ntk_dense"] * 3
    w = session.parameters()["layers.1.W"]
    assert abs(w.std() - 1.0) < 0.05  # standard normal weights; the layer scales by 1/√64
    tracker = NTKTracker(session, session.x_train[:10], every=20)
    first = session.evaluate()["loss"]
    session.run_steps(100)
    assert session.evaluate()["loss"] < first
    arrays = tracker.arrays()
    assert list(arrays["steps"]) == [20, 40, 60, 80, 100]
    assert np.all(np.diff(arrays["relative_change"]) > 0.0)
    session.rewind(40)
    session.run_steps(20)
    assert list(tracker.arrays()["steps"]) == [20, 40, 60]


def test_ntk_tracker_defaults_to_a_seeded_subsample_of_the_training_inputs():
    session = session_of(TWO_OUTPUTS)
    tracker = NTKTracker(session, every=10, n_inputs=8)
    assert tracker.x.shape == (8, 2)
    assert tracker.ntk_initial.shape == (24, 24)
    session.run_steps(10)
    arrays = tracker.arrays()
    assert arrays["eigenvalues"].shape == (1, 24) and arrays["relative_change"][0] > 0.0


def test_ntk_change_falls_with_width():
    """NTK parameterization, one hidden ReLU layer, full-batch GD: the wider, the lazier."""
    result = ntk_width_experiment(widths=(32, 128, 512), steps=300, seeds=2, registry=REGISTRY)
    change = result["relative_change"]
    assert np.all(np.diff(change) < 0.0)
    # at least as fast as 1/√width (measured: close to 1/width at these widths)
    assert change[0] / change[-1] > math.sqrt(512 / 32)
    assert np.all(np.isfinite(result["final_loss"]))
    assert result["initial_eigenvalues"].shape == (2, 3, 20)


def test_ntk_change_is_zero_for_the_same_kernel():
    ntk = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert ntk_change(ntk, ntk) == 0.0
    assert ntk_change(ntk, 2 * ntk) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- optimizer rates

KAPPA = 100.0


def quadratic(kappa: float = KAPPA):
    return REGISTRY.create("objective", "quadratic", kappa=kappa)


def test_gradient_descent_at_its_optimal_step_converges_at_kappa_rate():
    lr = 2.0 / (1.0 + KAPPA)  # 2 / (λmin + λmax)
    result = run_optimizer(quadratic(), REGISTRY.create("optimizer", "sgd", lr=lr), steps=1500)
    rate = convergence_rate(result.trajectory, (0.0, 0.0))
    assert rate == pytest.approx((KAPPA - 1) / (KAPPA + 1), abs=1e-3)
    assert rate == pytest.approx(0.9802, abs=1e-4)


def test_heavy_ball_at_its_optimal_parameters_converges_at_root_kappa_rate():
    """PyTorch's momentum (v = βv + g, θ -= αv) is Polyak's heavy ball with step α."""
    root = math.sqrt(KAPPA)
    lr = (2.0 / (root + 1.0)) ** 2
    beta = ((root - 1.0) / (root + 1.0)) ** 2
    optimizer = REGISTRY.create("optimizer", "momentum", lr=lr, momentum=beta)
    result = run_optimizer(quadratic(), optimizer, steps=400)
    rate = convergence_rate(result.trajectory, (0.0, 0.0))
    assert rate == pytest.approx((root - 1) / (root + 1), abs=1e-2)
    assert rate == pytest.approx(0.8182, abs=1e-2)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_momentum_diverges_once_step_times_curvature_exceeds_two_plus_two_beta(beta):
    limit = (2.0 + 2.0 * beta) / KAPPA  # α λmax = 2 + 2β
    below = REGISTRY.create("optimizer", "momentum", lr=0.98 * limit, momentum=beta)
    above = REGISTRY.create("optimizer", "momentum", lr=1.02 * limit, momentum=beta)
    converged = run_optimizer(quadratic(), below, steps=3000)
    diverged = run_optimizer(quadratic(), above, steps=3000)
    assert convergence_rate(converged.trajectory, (0.0, 0.0)) < 1.0
    assert np.linalg.norm(converged.trajectory[-1]) < 1e-6
    assert convergence_rate(diverged.trajectory, (0.0, 0.0)) > 1.0
    assert diverged.diverged_at is not None or np.linalg.norm(diverged.trajectory[-1]) > 1e6


def test_convergence_rate_of_a_geometric_sequence():
    steps = np.arange(60)
    trajectory = np.column_stack([0.9**steps, -(0.9**steps)]) + 1.0
    assert convergence_rate(trajectory, (1.0, 1.0)) == pytest.approx(0.9, rel=1e-12)
    assert math.isnan(convergence_rate(trajectory[:1], (1.0, 1.0)))  # no step to measure


# ------------------------------------------------------------------------------------- the race


def test_every_optimizer_races_from_the_same_start(tmp_path):
    objective = REGISTRY.create("objective", "himmelblau")
    results = race(objective, steps=300, tol=1e-4, lr=0.01, registry=REGISTRY)
    assert [r.label for r in results] == REGISTRY.names("optimizer")
    for r in results:
        assert r.trajectory.shape == (301, 2) and r.values.shape == (301,)
        np.testing.assert_array_equal(r.trajectory[0], objective.start)
        assert r.values[0] == objective.value(*objective.start)
    by_name = {r.label: r for r in results}
    lm = by_name["levenberg_marquardt"]
    assert lm.steps_to_tolerance is not None and lm.steps_to_tolerance < 20
    sgd = by_name["sgd"]
    assert sgd.hp["lr"] == 0.01
    assert sgd.steps_to_tolerance is not None
    distance = np.min(np.linalg.norm(np.array(objective.minima) - sgd.trajectory[-1], axis=1))
    assert distance < 1e-4
    arrays = race_arrays(objective, results, tol=1e-4)
    save_npz(tmp_path / "race.npz", arrays)
    loaded = load_npz(tmp_path / "race.npz")
    assert loaded["trajectories"].shape == (len(results), 301, 2)
    assert loaded["optimizers"].tolist() == [r.label for r in results]
    assert str(loaded["objective"]) == "himmelblau"
    assert loaded["minima"].shape == (4, 2)


def test_levenberg_marquardt_is_skipped_on_the_saddle_with_a_reason():
    results = race("saddle", ["sgd", "levenberg_marquardt"], steps=50, registry=REGISTRY)
    assert results[1].skipped and "residual" in results[1].skipped
    assert np.isnan(results[1].trajectory).all()
    assert results[0].steps_to_tolerance is None  # no minimum to reach
    assert results[0].trajectory[-1][1] > results[0].trajectory[0][1]  # escapes along y


def test_race_labels_repeated_optimizers_apart():
    specs = [("momentum", {"lr": 0.01}), ("momentum", {"lr": 0.001})]
    results = race("quadratic", specs, steps=10, registry=REGISTRY)
    assert [r.label for r in results] == ["momentum", "momentum_2"]


def test_divergence_stops_the_trajectory():
    result = run_optimizer(quadratic(), REGISTRY.create("optimizer", "sgd", lr=0.5), steps=400)
    assert result.diverged_at is not None
    assert np.isnan(result.trajectory[result.diverged_at :]).all()
    assert np.isfinite(result.trajectory[: result.diverged_at]).all()


def test_objectives_with_residuals_sum_their_squares_to_the_value():
    rng = np.random.default_rng(0)
    for name in REGISTRY.names("objective"):
        objective = REGISTRY.create("objective", name)
        if not hasattr(objective, "residuals"):
            continue
        for x, y in rng.uniform(-2, 2, (5, 2)):
            r = objective.residuals(x, y)
            assert np.sum(r**2) == pytest.approx(objective.value(x, y), rel=1e-12, abs=1e-12)
            jac = objective.residual_jacobian(x, y)
            h = 1e-6
            numeric = (objective.residuals(x + h, y) - objective.residuals(x - h, y)) / (2 * h)
            np.testing.assert_allclose(jac[:, 0], numeric, rtol=1e-6, atol=1e-6)


def test_quadratic_rotation_keeps_the_eigenvalues():
    objective = REGISTRY.create("objective", "quadratic", kappa=25.0, angle=30.0)
    np.testing.assert_allclose(np.linalg.eigvalsh(objective.hessian(0.3, -0.2)), [1.0, 25.0])


# --------------------------------------------------------------------- the objective check


class WrongHessian(Objective):
    name = "wrong_hessian"
    formula = r"f(x, y) = x^2 y"
    teaching = "Forgets the mixed derivative."

    def value(self, x, y):
        return x * x * y

    def gradient(self, x, y):
        return 2 * x * y, x * x

    def hessian(self, x, y):
        return np.array([[2 * y, 0.0], [0.0, 0.0]])


class AsymmetricHessian(WrongHessian):
    name = "asymmetric_hessian"

    def hessian(self, x, y):
        return np.array([[2 * y, 2 * x], [0.0, 0.0]])


class WrongGradient(WrongHessian):
    name = "wrong_gradient"

    def gradient(self, x, y):
        return 2 * x * y, x


class InfiniteStart(WrongHessian):
    name = "infinite_start"
    start = (0.0, 0.0)

    def value(self, x, y):
        return 1.0 / (x * x + y * y) if x or y else math.inf


def failed_items(cls) -> set[str]:
    return {item.name for item in check_plugin(cls, REGISTRY).failures()}


def test_the_objective_check_catches_wrong_derivatives():
    assert "Hessian vs finite differences" in failed_items(WrongHessian)
    assert "Hessian symmetric" in failed_items(AsymmetricHessian)
    assert "gradient vs finite differences" in failed_items(WrongGradient)
    assert "value finite at start" in failed_items(InfiniteStart)


def test_built_in_objectives_pass_their_check():
    for name in ("quadratic", "rosenbrock", "beale", "rastrigin", "saddle", "himmelblau"):
        report = check_plugin(REGISTRY.get("objective", name), REGISTRY)
        assert report.passed, report.describe(only_failures=True)


# ---------------------------------------------------------------------- universal approximation


def test_more_sigmoid_units_fit_better():
    errors = [fit_sigmoid_units(TARGETS["sine"], n).max_error for n in (2, 8, 32)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02
    random_units = fit_sigmoid_units(TARGETS["gaussian"], 32, seed=3)
    assert random_units.rms_error < 0.05


def test_bump_construction_meets_its_error_bound():
    previous = math.inf
    for n in (8, 16, 32, 64):
        result = bump_construction(TARGETS["sine"], n, steepness=20.0)
        assert result.max_error <= result.error_bound
        assert result.max_error < previous
        previous = result.max_error
    assert previous < 0.05  # 64 bumps: within 0.05 of sin(2πx) everywhere on [0, 1]
    assert result.error_bound < 0.06
    assert result.hidden_weights.shape == (128,) and result.output_weights.shape == (128,)
    assert np.all(result.hidden_weights == 20.0 * 64)
    np.testing.assert_allclose(result.output_weights[0::2], -result.output_weights[1::2])


def test_bump_bound_holds_for_kinks_and_steep_targets():
    for name in ("absolute", "step_smooth", "gaussian"):
        for n in (4, 16, 64):
            result = bump_construction(TARGETS[name], n)
            assert result.max_error <= result.error_bound, (name, n)


def test_approximation_sweep_arrays(tmp_path):
    arrays = approximation_sweep("absolute", n_units=(2, 8), n_bumps=(4, 16))
    assert arrays["fit_prediction"].shape == (2, len(arrays["x"]))
    assert arrays["bump_max_error"][1] < arrays["bump_max_error"][0]
    assert np.all(arrays["bump_max_error"] <= arrays["bump_error_bound"])
    save_npz(tmp_path / "ua.npz", arrays)
    assert str(load_npz(tmp_path / "ua.npz")["target_name"]) == "absolute"
    with pytest.raises(ValueError, match="unknown target"):
        approximation_sweep("nope")
