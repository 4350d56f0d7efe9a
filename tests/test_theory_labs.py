"""The engine's numbers behind the theory-lab windows: the race's contour map, the closed-form
rates of gradient descent and momentum on quadratics (checked against the closed forms and
against the real optimizer plugins), and the sigmoid network with weights typed in by hand."""

import math

import numpy as np
import pytest

from gradient_lab.engine.compute.array_math import sigmoid
from gradient_lab.engine.instruments.theory import (
    TARGETS,
    ApproximationResult,
    bump_construction,
    contour_bands,
    contour_levels,
    convergence_rate,
    fit_sigmoid_units,
    hessian_eigenvalues,
    objective_grid,
    quadratic_rate,
    quadratic_theory,
    run_optimizer,
    sgd_theory_rate,
    sigmoid_network,
    unit_contributions,
    with_weights,
)
from gradient_lab.engine.loading.discovery import discover

REGISTRY = discover(safe_mode=True)


def quadratic(kappa: float, angle: float = 0.0):
    return REGISTRY.create("objective", "quadratic", kappa=kappa, angle=angle)


# ------------------------------------------------------------------------------ contour map


def test_objective_grid_rows_follow_y_over_the_objectives_bounds():
    objective = quadratic(10.0)
    x, y, values = objective_grid(objective, n=11)
    (x0, x1), (y0, y1) = objective.bounds
    assert (x[0], x[-1], y[0], y[-1]) == (x0, x1, y0, y1)
    assert values.shape == (11, 11)
    # f = (x² + κ y²) / 2 on the unrotated quadratic: values[j, i] is the point (x_i, y_j)
    assert values == pytest.approx(0.5 * (x[None, :] ** 2 + 10.0 * y[:, None] ** 2), abs=1e-12)
    assert values[2, 7] == objective.value(x[7], y[2])


def test_objective_grid_takes_other_bounds_and_refuses_one_point():
    x, y, values = objective_grid(quadratic(4.0), ((0.0, 1.0), (-1.0, 0.0)), n=3)
    assert list(x) == [0.0, 0.5, 1.0] and list(y) == [-1.0, -0.5, 0.0]
    assert values[0, 2] == pytest.approx(0.5 * (1.0 + 4.0))
    with pytest.raises(ValueError, match="at least 2"):
        objective_grid(quadratic(4.0), n=1)


def test_geometric_contour_levels_grow_by_a_constant_factor_above_the_floor():
    values = np.array([[2.0, 5.0], [1002.0, 7.0]])
    levels = contour_levels(values, count=4)
    heights = levels - 2.0
    assert heights[0] == pytest.approx(1.0) and heights[-1] == pytest.approx(1000.0)
    assert heights[1:] / heights[:-1] == pytest.approx(np.full(3, 10.0))


def test_even_contour_levels_lie_strictly_inside_the_range():
    levels = contour_levels(np.array([-3.0, 0.0, 3.0]), count=5, geometric=False)
    assert levels == pytest.approx([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert len(contour_levels(np.ones(4), count=5)) == 0  # a flat map has no contour


def test_contour_bands_count_the_levels_below_each_value():
    bands = contour_bands(np.array([0.5, 1.0, 1.5, 9.0, np.nan]), np.array([1.0, 2.0]))
    assert list(bands[:4]) == [0, 0, 1, 2]
    assert math.isnan(bands[4])


# ----------------------------------------------------------------------------- rates in theory


@pytest.mark.parametrize("angle", [0.0, 30.0, -75.0])
def test_the_quadratics_curvatures_are_one_and_kappa_at_any_angle(angle):
    assert hessian_eigenvalues(quadratic(25.0, angle)) == pytest.approx([1.0, 25.0])


def test_curvatures_need_a_point_where_there_is_no_minimum():
    saddle = REGISTRY.create("objective", "saddle")
    with pytest.raises(ValueError, match="no known minimum"):
        hessian_eigenvalues(saddle)
    assert hessian_eigenvalues(saddle, (0.3, 0.2)) == pytest.approx([-2.0, 2.0])


@pytest.mark.parametrize("kappa", [1.0, 10.0, 100.0])
def test_quadratic_theory_is_the_closed_form(kappa):
    theory = quadratic_theory([1.0, kappa])
    root = math.sqrt(kappa)
    assert theory.condition_number == kappa
    assert theory.gd_lr == pytest.approx(2.0 / (1.0 + kappa))
    assert theory.gd_rate == pytest.approx((kappa - 1.0) / (kappa + 1.0))
    assert theory.momentum_lr == pytest.approx(4.0 / (root + 1.0) ** 2)
    assert theory.momentum == pytest.approx(((root - 1.0) / (root + 1.0)) ** 2)
    assert theory.momentum_rate == pytest.approx((root - 1.0) / (root + 1.0))


def test_quadratic_theory_scales_with_the_curvatures():
    theory = quadratic_theory([3.0, 12.0])  # κ = 4
    assert theory.gd_lr == pytest.approx(2.0 / 15.0)
    assert theory.gd_rate == pytest.approx(3.0 / 5.0)
    assert theory.momentum_lr == pytest.approx(4.0 / (math.sqrt(12.0) + math.sqrt(3.0)) ** 2)
    assert theory.momentum_rate == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match="positive"):
        quadratic_theory([-2.0, 2.0])


def test_the_optimal_settings_give_the_optimal_rates():
    theory = quadratic_theory([1.0, 100.0])
    assert quadratic_rate(theory.eigenvalues, theory.gd_lr) == pytest.approx(theory.gd_rate)
    at_best = quadratic_rate(theory.eigenvalues, theory.momentum_lr, theory.momentum)
    assert at_best == pytest.approx(theory.momentum_rate, abs=1e-6)  # a double root there


def test_gradient_descents_rate_is_the_largest_one_minus_step_times_curvature():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lam = rng.uniform(0.1, 10.0, size=3)
        lr = rng.uniform(0.0, 0.5)
        assert quadratic_rate(lam, lr) == pytest.approx(np.max(np.abs(1.0 - lr * lam)))
    assert quadratic_rate([1.0, 10.0], 0.25) == pytest.approx(1.5)  # beyond 2/λmax: diverges


def test_heavy_ball_with_complex_roots_contracts_by_root_beta():
    # (1 + β - αλ)² < 4β for every λ: the roots are a complex pair of modulus √β
    assert quadratic_rate([1.0, 4.0], lr=0.3, momentum=0.81) == pytest.approx(0.9)


def test_heavy_ball_with_real_roots_takes_the_larger_one():
    # λ = 1, α = 0.1, β = 0.1: z² - 1.0 z + 0.1 = 0, z = (1 ± √0.6) / 2
    assert quadratic_rate([1.0], lr=0.1, momentum=0.1) == pytest.approx((1 + math.sqrt(0.6)) / 2)


def test_nesterovs_rate_with_complex_roots_is_the_root_of_beta_times_the_shrink():
    # z² - (1 + β)(1 - αλ) z + β(1 - αλ) = 0 with λ = 1, α = 0.5, β = 0.9: complex, √(0.45)
    assert quadratic_rate([1.0], 0.5, 0.9, nesterov=True) == pytest.approx(math.sqrt(0.45))


def test_dampening_scales_the_step():
    assert quadratic_rate([1.0, 5.0], 0.2, 0.5, dampening=0.5) == quadratic_rate(
        [1.0, 5.0], 0.1, 0.5
    )


@pytest.mark.parametrize(
    ("name", "hp"),
    [
        ("sgd", {"lr": 0.15}),
        ("momentum", {"lr": 0.05, "momentum": 0.5}),
        ("momentum", {"lr": 0.02, "momentum": 0.6}),
        ("nesterov", {"lr": 0.05, "momentum": 0.2}),
        ("sgd", {"lr": 0.1, "weight_decay": 0.5}),
    ],
)
def test_the_plugins_measured_rate_meets_the_theorys(name, hp):
    """Settings whose slowest mode has real roots: a complex pair would make the distance
    oscillate and the measurement depend on where the window ends."""
    objective = quadratic(10.0, angle=20.0)
    optimizer = REGISTRY.create("optimizer", name, **hp)
    result = run_optimizer(objective, optimizer, steps=400)
    theory = sgd_theory_rate(optimizer.hp, hessian_eigenvalues(objective))
    minimum = (0.0, 0.0)
    if optimizer.hp["weight_decay"]:
        assert theory < quadratic_rate([1.0, 10.0], hp["lr"])  # decay adds to the curvature
    assert convergence_rate(result.trajectory, minimum) == pytest.approx(theory, abs=2e-3)


def test_there_is_no_closed_form_rate_for_adaptive_optimizers():
    adam = REGISTRY.create("optimizer", "adam")
    assert math.isnan(sgd_theory_rate(adam.hp, [1.0, 10.0]))
    rmsprop = REGISTRY.create("optimizer", "rmsprop", momentum=0.5)  # a momentum, not SGD's
    assert math.isnan(sgd_theory_rate(rmsprop.hp, [1.0, 10.0]))


# --------------------------------------------------------------- a sigmoid network by hand


def test_a_sigmoid_network_is_the_sum_of_its_units():
    x = np.linspace(-1.0, 1.0, 7)
    w, b, a = np.array([2.0, -3.0]), np.array([0.5, 0.0]), np.array([1.5, -0.25])
    expected = 1.5 / (1 + np.exp(-(2 * x + 0.5))) - 0.25 / (1 + np.exp(3 * x)) + 0.75
    assert sigmoid_network(x, w, b, a, 0.75) == pytest.approx(expected, rel=1e-12)
    parts = unit_contributions(x, w, b, a)
    assert parts.shape == (2, 7)
    assert parts[1] == pytest.approx(-0.25 / (1 + np.exp(3 * x)), rel=1e-12)
    assert unit_contributions(x, w, b, a, group=2)[0] == pytest.approx(parts.sum(axis=0))


def test_unit_contributions_refuse_mismatched_weights_and_groups():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="2 hidden weights, 1 biases"):
        unit_contributions(x, np.ones(2), np.ones(1), np.ones(2))
    with pytest.raises(ValueError, match="does not divide"):
        unit_contributions(x, np.ones(3), np.ones(3), np.ones(3), group=2)


def test_the_network_reproduces_the_fits_and_the_constructions_predictions():
    fit = fit_sigmoid_units(TARGETS["sine"], 8)
    fitted = sigmoid_network(fit.x, fit.hidden_weights, fit.hidden_biases, fit.output_weights)
    assert fitted + fit.output_bias == pytest.approx(fit.prediction, abs=1e-12)
    bumps = bump_construction(TARGETS["gaussian"], 6)
    args = (bumps.hidden_weights, bumps.hidden_biases, bumps.output_weights)
    assert sigmoid_network(bumps.x, *args) == pytest.approx(bumps.prediction, abs=1e-12)
    # each pair of units is one bump: height h_k between its edges, about 0 far from them
    one = unit_contributions(bumps.x, *args, group=2)
    assert one.shape == (6, len(bumps.x))
    assert one.sum(axis=0) == pytest.approx(bumps.prediction, abs=1e-12)
    centre = np.argmin(np.abs(bumps.x - 0.25))  # the middle of cell 1 of 6 (1/6 to 2/6)
    rise = sigmoid(np.array(10.0)) - sigmoid(np.array(-10.0))  # steepness 20, half a cell away
    assert one[1, centre] == pytest.approx(bumps.heights[1] * rise, rel=1e-6)


def test_an_edited_output_weight_changes_its_unit_only():
    bumps = bump_construction(TARGETS["sine"], 4)
    a = bumps.output_weights.copy()
    a[3] += 0.5
    edited = with_weights(bumps, output_weights=a)
    assert type(edited) is ApproximationResult  # the construction's bound is not claimed
    unit = sigmoid(bumps.hidden_weights[3] * bumps.x + bumps.hidden_biases[3])
    assert edited.prediction - bumps.prediction == pytest.approx(0.5 * unit, abs=1e-12)
    assert edited.max_error == pytest.approx(np.max(np.abs(edited.prediction - bumps.target)))
    assert list(bumps.output_weights) != list(a)  # the result given is left alone


def test_with_weights_keeps_what_is_not_replaced():
    fit = fit_sigmoid_units(TARGETS["absolute"], 5)
    same = with_weights(fit)
    assert same.prediction == pytest.approx(fit.prediction, abs=1e-12)
    shifted = with_weights(fit, output_bias=fit.output_bias + 1.0)
    assert shifted.prediction == pytest.approx(fit.prediction + 1.0, abs=1e-12)
    b = fit.hidden_biases.copy()
    b[0] = 100.0  # unit 0 saturates at 1 everywhere on [0, 1]
    moved = with_weights(fit, hidden_biases=b)
    expected = fit.prediction + fit.output_weights[0] * (
        1.0 - sigmoid(fit.hidden_weights[0] * fit.x + fit.hidden_biases[0])
    )
    assert moved.prediction == pytest.approx(expected, abs=1e-9)
