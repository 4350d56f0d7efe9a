"""The theory labs' windows, driven as a student would: each draws exactly what the engine
computes for its settings, the race's sliders and buttons set what the race used and its
animation reaches the end, an edited weight of the bump construction changes the drawn output
as the engine evaluates it, the Open button names the example, and a lab closed while it
computes leaves nothing running."""

import threading
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.labs import (
    LABS,
    Approximation,
    NTKWidth,
    OptimizerRace,
    SignalPropagation,
)
from gradient_lab.app.labs.lab_window import THREAD_NAME
from gradient_lab.app.labs.optimizer_race import TOLERANCE, lr_of, position_of
from gradient_lab.engine.instruments import diagnostics, theory
from gradient_lab.engine.loading.discovery import discover
from tests.app.conftest import screenshot

REGISTRY = discover(safe_mode=True)
WAIT_MS = 120_000  # a cold Numba cache compiles the activations' kernels first


def lab_threads():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture(autouse=True)
def no_lab_threads():
    """Every test ends with its labs' workers finished."""
    yield
    deadline = QtCore.QDeadlineTimer(WAIT_MS)
    while lab_threads() and not deadline.hasExpired():
        for thread in lab_threads():
            thread.join(0.1)
    assert not lab_threads(), "a lab's worker is still running"


def open_lab(qtbot, cls, prepare=None):
    """The lab shown, with ``prepare(lab)`` applied first, once it has computed."""
    lab = cls(REGISTRY)
    qtbot.addWidget(lab)
    if prepare is not None:
        prepare(lab)
    lab.show()
    settle(qtbot, lab)
    return lab


def settle(qtbot, lab):
    qtbot.waitUntil(lambda: lab.idle, timeout=WAIT_MS)
    assert lab.error is None, lab.error


def data(curve):
    """What a curve was given (before a log axis transforms it for drawing)."""
    x, y = curve.getOriginalDataset()
    return np.asarray(x), np.asarray(y)


# ------------------------------------------------------------------------------ every lab


@pytest.mark.parametrize(("title", "cls"), LABS)
def test_each_lab_is_a_window_of_its_own_that_opens_its_example(qtbot, title, cls):
    lab = cls(REGISTRY)
    qtbot.addWidget(lab)
    assert lab.windowTitle() == f"Gradient Lab — {title}"
    assert lab.windowFlags() & QtCore.Qt.WindowType.Window
    assert lab.summary.count(". ") + 1 == 2  # two sentences say what to look for
    with qtbot.waitSignal(lab.open_experiment, timeout=5000) as signal:
        lab.open_button.click()
    (path,) = signal.args
    expected = Path(str(files("gradient_lab.assets").joinpath("examples", cls.example)))
    assert path == expected and path.is_file()


def test_the_labs_menu_lists_the_four_labs():
    assert [cls for _title, cls in LABS] == [
        OptimizerRace,
        SignalPropagation,
        NTKWidth,
        Approximation,
    ]


# --------------------------------------------------------------------------- optimizer race


def fast_race(steps):
    def prepare(lab):
        lab.steps_box.setValue(steps)
        lab.speed_box.setCurrentIndex(lab.speed_box.findData(1000))

    return prepare


def engine_race(lab, objective, steps):
    specs = [spec for spec in lab.optimizer_specs() if spec[0] not in lab.refused]
    results = theory.race(objective, specs, lab.start_point, steps, TOLERANCE, registry=REGISTRY)
    return results, theory.race_arrays(objective, results, TOLERANCE)


def finish_animation(qtbot, lab):
    qtbot.waitUntil(lambda: lab.frame == lab.outcome.steps, timeout=WAIT_MS)


def test_the_race_draws_the_engines_race_and_map(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(60))
    finish_animation(qtbot, lab)
    objective = REGISTRY.create("objective", "quadratic", kappa=10.0, angle=0.0)
    _results, arrays = engine_race(lab, objective, 60)
    labels = list(arrays["optimizers"])
    assert labels == list(lab.outcome.arrays["optimizers"])
    assert "sgd" in labels and "momentum" in labels
    for i, label in enumerate(labels):
        x, y = data(lab.paths[label])
        np.testing.assert_array_equal(x, arrays["trajectories"][i, :, 0])
        np.testing.assert_array_equal(y, arrays["trajectories"][i, :, 1])
        _steps, values = data(lab.value_curves[label])
        np.testing.assert_array_equal(values, arrays["values"][i])
        assert lab.table.item(i, 0).text() == label
        rate = arrays["rates"][i]
        assert lab.table.item(i, 3).text().startswith(f"{rate:.4f}")
    # the map: the engine's grid, bands and levels
    x, y, values = theory.objective_grid(objective, n=121)
    levels = theory.contour_levels(values, 14)
    np.testing.assert_array_equal(lab.image.image, theory.contour_bands(values, levels).T)
    assert [c.level for c in lab.isocurves] == list(levels)
    screenshot(lab, "lab_optimizer_race")


def test_the_sliders_set_the_learning_rate_and_momentum_the_race_used(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(50))
    position = position_of(0.03)
    lab.lr_slider.setValue(position)
    lab.momentum_slider.setValue(50)
    assert not lab.idle  # a change waits for the next pause, then the race runs again
    settle(qtbot, lab)
    used = {r.label: r.hp for r in lab.outcome.results}
    assert used["sgd"]["lr"] == lr_of(position) == lab.lr
    assert used["sgd"]["momentum"] == 0.0  # sgd stays plain gradient descent
    assert used["momentum"]["lr"] == lr_of(position)
    assert used["momentum"]["momentum"] == 0.5 and used["nesterov"]["momentum"] == 0.5
    assert lab.lr_label.text() == f"{lr_of(position):.4g}"
    objective = REGISTRY.create("objective", "quadratic", kappa=10.0)
    sgd = REGISTRY.create("optimizer", "sgd", lr=lr_of(position))
    expected = theory.run_optimizer(objective, sgd, steps=50, tol=TOLERANCE)
    finish_animation(qtbot, lab)
    x, y = data(lab.paths["sgd"])
    np.testing.assert_array_equal(np.column_stack([x, y]), expected.trajectory)


def test_momentum_zero_is_refused_by_nesterov_and_said_in_its_row(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(20))
    lab.momentum_slider.setValue(0)
    settle(qtbot, lab)
    assert "nesterov" in lab.refused
    assert "nesterov" not in lab.outcome.arrays["optimizers"]
    rows = {lab.table.item(r, 0).text(): r for r in range(lab.table.rowCount())}
    assert lab.table.item(rows["nesterov"], 2).text().startswith("refused: ")
    assert "nesterov.momentum = 0.0 is not allowed" in lab.table.item(rows["nesterov"], 2).text()


def test_the_theory_buttons_give_the_closed_form_rates(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(300))
    objective = REGISTRY.create("objective", "quadratic", kappa=10.0)
    best = theory.quadratic_theory(theory.hessian_eigenvalues(objective))
    assert f"{best.gd_rate:.4f}" in lab.theory_label.text()
    lab.gd_button.click()
    settle(qtbot, lab)
    assert lab.lr == best.gd_lr
    rows = {lab.table.item(r, 0).text(): r for r in range(lab.table.rowCount())}
    sgd = list(lab.outcome.arrays["optimizers"]).index("sgd")
    measured = lab.outcome.arrays["rates"][sgd]
    assert measured == pytest.approx(best.gd_rate, abs=1e-3)  # the plugin meets the theory
    assert lab.table.item(rows["sgd"], 4).text() == f"{best.gd_rate:.4f}"
    assert lab.table.item(rows["adam"], 4).text() == "no closed form"
    lab.momentum_button.click()
    settle(qtbot, lab)
    assert (lab.lr, lab.momentum) == (best.momentum_lr, best.momentum)
    hp = next(r.hp for r in lab.outcome.results if r.label == "momentum")
    expected = theory.sgd_theory_rate(hp, best.eigenvalues)
    assert expected == pytest.approx(best.momentum_rate, abs=1e-6)
    assert lab.table.item(rows["momentum"], 4).text() == f"{expected:.4f}"


def test_the_objectives_declared_parameter_changes_the_race(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(40))
    field = lab.fields["kappa"]
    assert field.param.default == 10.0  # the quadratic's own declaration
    field.widget.setText("100")
    field.widget.editingFinished.emit()
    settle(qtbot, lab)
    objective = REGISTRY.create("objective", "quadratic", kappa=100.0)
    _results, arrays = engine_race(lab, objective, 40)
    np.testing.assert_array_equal(lab.outcome.arrays["trajectories"], arrays["trajectories"])
    assert "κ = 100" in lab.theory_label.text()
    field.widget.setText("0.5")  # below the declared low of 1: refused on the field
    field.widget.editingFinished.emit()
    assert field.error and "kappa" in field.error
    assert lab.idle


def test_another_objective_has_no_theory_rates_and_its_own_bounds(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(30))
    lab.objective_box.setCurrentIndex(lab.objective_box.findData("rosenbrock"))
    lab.objective_box.activated.emit(lab.objective_box.currentIndex())
    settle(qtbot, lab)
    assert set(lab.fields) == {"a", "b"}
    assert lab.gd_button.isHidden()
    objective = REGISTRY.create("objective", "rosenbrock")
    _results, arrays = engine_race(lab, objective, 30)
    np.testing.assert_array_equal(lab.outcome.arrays["trajectories"], arrays["trajectories"])
    (x0, x1), (y0, y1) = objective.bounds
    (vx0, vx1), (vy0, vy1) = lab.map.getPlotItem().getViewBox().viewRange()
    assert (vx0, vx1, vy0, vy1) == pytest.approx((x0, x1, y0, y1))
    assert {lab.table.item(r, 4).text() for r in range(lab.table.rowCount())} == {"—"}


def test_a_click_on_the_map_moves_the_start(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(20))
    view = lab.map.getPlotItem().getViewBox()
    scene_point = view.mapViewToScene(QtCore.QPointF(0.5, -0.5))
    pixel = lab.map.mapFromScene(scene_point)
    qtbot.mouseClick(lab.map.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pixel)
    settle(qtbot, lab)
    assert lab.start_point == pytest.approx((0.5, -0.5), abs=0.05)  # within a pixel or two
    starts = lab.outcome.arrays["trajectories"][:, 0]
    np.testing.assert_array_equal(starts, np.tile(lab.start_point, (len(starts), 1)))
    lab.reset_start.click()
    settle(qtbot, lab)
    assert tuple(lab.outcome.arrays["start"]) == (-1.5, 1.0)  # the quadratic's own start


def test_the_animation_grows_the_paths_to_the_end(qtbot):
    lab = open_lab(qtbot, OptimizerRace, lambda lab: lab.steps_box.setValue(30))
    assert lab.speed_box.currentData() == 60
    finish_animation(qtbot, lab)
    assert not lab.animation.isActive() and lab.play_button.text() == "Play"
    assert lab.step_label.text() == "step 30 of 30"
    full = data(lab.paths["sgd"])[0]
    assert len(full) == 31
    seen = []
    lab.frame_drawn.connect(seen.append)
    lab.restart_button.click()
    assert seen[0] == 0 and len(data(lab.paths["sgd"])[0]) == 1  # back to the start
    finish_animation(qtbot, lab)
    assert seen == sorted(seen) and seen[-1] == 30  # it only grows
    np.testing.assert_array_equal(data(lab.paths["sgd"])[0], full)


def test_pause_stops_the_paths_where_they_are(qtbot):
    lab = open_lab(qtbot, OptimizerRace, lambda lab: lab.steps_box.setValue(2000))
    lab.speed_box.setCurrentIndex(lab.speed_box.findData(15))
    lab.restart_button.click()
    lab.play_button.click()  # pause
    assert not lab.animation.isActive() and lab.play_button.text() == "Play"
    frame = lab.frame
    assert frame < 2000
    assert len(data(lab.paths["sgd"])[0]) == frame + 1
    qtbot.wait(100)
    assert lab.frame == frame
    lab.play_button.click()
    assert lab.animation.isActive() and lab.play_button.text() == "Pause"


def test_unticking_an_optimizer_hides_its_path(qtbot):
    lab = open_lab(qtbot, OptimizerRace, fast_race(20))
    row = list(lab.outcome.arrays["optimizers"]).index("adam")
    lab.table.item(row, 0).setCheckState(QtCore.Qt.CheckState.Unchecked)
    assert not lab.paths["adam"].isVisible() and lab.paths["sgd"].isVisible()
    lab.lr_slider.setValue(lab.lr_slider.value() - 10)
    settle(qtbot, lab)
    assert not lab.paths["adam"].isVisible()  # a new race keeps the choice


# ------------------------------------------------------------------------- signal propagation


def small_network(lab):
    lab.depth_box.setValue(6)
    lab.width_box.setValue(32)
    lab.seeds_box.setValue(3)


def signal(**settings):
    return diagnostics.signal_propagation(registry=REGISTRY, **settings)


def test_signal_propagation_draws_the_engines_variances_and_gradients(qtbot):
    lab = open_lab(qtbot, SignalPropagation, small_network)
    settings = lab.current_settings()
    assert settings == {
        "activation": "relu",
        "init_gain": pytest.approx(2.0**0.5),  # he_normal's declared default
        "depth": 6,
        "width": 32,
        "seeds": 3,
        "initializer": "he_normal",
    }
    expected = signal(**settings)
    for key in ("pre_activation_variance", "gradient_norm"):
        layers, mean = data(lab.means[key])
        np.testing.assert_array_equal(layers, expected["layer"])
        np.testing.assert_array_equal(mean, expected[key])
        assert len(lab.runs[key]) == 3
        for curve, run in zip(lab.runs[key], expected[f"{key}_runs"], strict=True):
            np.testing.assert_array_equal(data(curve)[1], run)
    assert f"{expected['pre_activation_variance'][-1]:.3g}" in lab.readout.text()
    screenshot(lab, "lab_signal_propagation")


def test_a_gain_preset_runs_again_and_keeps_the_previous_run_dashed(qtbot):
    lab = open_lab(qtbot, SignalPropagation, small_network)
    first = lab.result
    buttons = {b.text(): b for b in lab.findChildren(QtWidgets.QPushButton)}
    buttons["gain 2"].click()
    settle(qtbot, lab)
    assert lab.gain.value == 2.0
    expected = signal(**{**lab.current_settings(), "init_gain": 2.0})
    np.testing.assert_array_equal(data(lab.means["gradient_norm"])[1], expected["gradient_norm"])
    np.testing.assert_array_equal(
        data(lab.previous_means["gradient_norm"])[1], first["gradient_norm"]
    )
    # gain 2 on ReLU explodes: every layer's variance above the one before
    assert np.all(np.diff(data(lab.means["pre_activation_variance"])[1]) > 0)


def test_the_gain_field_follows_the_initializers_declaration(qtbot):
    lab = open_lab(qtbot, SignalPropagation, small_network)
    lab.init_box.setCurrentIndex(lab.init_box.findData("xavier_normal"))
    lab.init_box.activated.emit(lab.init_box.currentIndex())
    declared = next(
        p for p in REGISTRY.get("initializer", "xavier_normal").params if p.name == "gain"
    )
    assert lab.gain.param == declared and lab.gain.value == declared.default
    settle(qtbot, lab)
    assert lab.settings["initializer"] == "xavier_normal"
    names = [lab.init_box.itemData(i) for i in range(lab.init_box.count())]
    assert "zeros" not in names and "he_uniform" in names  # only those with a gain


# --------------------------------------------------------------------- neural tangent kernel


def quick_widths(lab):
    lab.widths_edit.setText("16, 64")
    lab.steps_box.setValue(20)


def test_the_ntk_lab_draws_the_engines_width_experiment(qtbot):
    lab = open_lab(qtbot, NTKWidth, quick_widths)
    settings = lab.current_settings()
    assert settings["widths"] == (16, 64) and settings["parameterization"] == "ntk"
    expected = theory.ntk_width_experiment(registry=REGISTRY, **settings)
    arrays = lab.arrays()
    for key in ("widths", "relative_change", "relative_change_runs", "final_loss"):
        np.testing.assert_array_equal(arrays[key], expected[key])
    widths, change = data(lab.change_mean)
    np.testing.assert_array_equal(widths, [16, 64])
    np.testing.assert_array_equal(change, expected["relative_change"])
    for curve, run in zip(lab.loss_runs, expected["final_loss"], strict=True):
        np.testing.assert_array_equal(data(curve)[1], run)
    assert expected["relative_change"][1] < expected["relative_change"][0]  # falls with width
    screenshot(lab, "lab_ntk_width")


def test_widths_are_checked_by_the_architectures_declaration(qtbot):
    lab = open_lab(qtbot, NTKWidth, quick_widths)
    lab.widths_edit.setText("16, wide")
    lab.compute_button.click()
    assert lab.idle and "widths" in lab.error and "whole number" in lab.error
    lab.widths_edit.setText("0")
    lab.compute_button.click()
    assert ">= 1" in lab.error


class Gate:
    """Wraps an engine function so that its first call waits until ``open`` is called."""

    def __init__(self, function):
        self.function = function
        self.calls = 0
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.entered.set()
        self.opened.wait(WAIT_MS / 1000)
        return self.function(*args, **kwargs)


def closed_while_computing(qtbot, monkeypatch, module, name, cls, prepare):
    """A lab of ``cls`` closed while ``module.name`` (held at a gate) computes; the gate then
    opens and the lab's threads end. Returns (lab, gate)."""
    gate = Gate(getattr(module, name))
    monkeypatch.setattr(module, name, gate)
    lab = cls(REGISTRY)
    qtbot.addWidget(lab)
    prepare(lab)
    lab.show()
    qtbot.waitUntil(gate.entered.is_set, timeout=WAIT_MS)
    assert lab.computing and lab.busy.isVisible() and lab.cancel_button.isVisible()
    lab.close()
    assert not lab.computing
    gate.opened.set()
    qtbot.waitUntil(lambda: not lab_threads(), timeout=WAIT_MS)
    return lab, gate


def test_closing_the_ntk_lab_while_it_computes_stops_before_the_next_width(qtbot, monkeypatch):
    lab, gate = closed_while_computing(
        qtbot, monkeypatch, theory, "ntk_width_experiment", NTKWidth, quick_widths
    )
    assert gate.calls == 1  # the second width was never started
    qtbot.wait(100)  # a poll would have drawn a result by now
    assert lab.parts == [] and lab.arrays()["widths"].size == 0
    lab.show()  # shown again, it computes again
    settle(qtbot, lab)
    assert list(lab.arrays()["widths"]) == [16, 64]


def test_cancel_keeps_what_was_drawn_and_ignores_the_rest(qtbot, monkeypatch):
    lab = open_lab(qtbot, SignalPropagation, small_network)
    drawn = lab.result
    gate = Gate(diagnostics.signal_propagation)
    monkeypatch.setattr(diagnostics, "signal_propagation", gate)
    lab.depth_box.setValue(7)
    qtbot.waitUntil(gate.entered.is_set, timeout=WAIT_MS)
    lab.cancel_button.click()
    assert lab.status.text() == "Cancelled." and not lab.busy.isVisible()
    gate.opened.set()
    qtbot.waitUntil(lambda: not lab_threads(), timeout=WAIT_MS)
    qtbot.wait(100)
    assert lab.result is drawn and len(data(lab.means["gradient_norm"])[1]) == 6


def test_closing_the_signal_lab_while_it_computes_ignores_the_result(qtbot, monkeypatch):
    lab, _ = closed_while_computing(
        qtbot, monkeypatch, diagnostics, "signal_propagation", SignalPropagation, small_network
    )
    qtbot.wait(100)
    assert lab.result is None and not lab.computing


# --------------------------------------------------------------------- universal approximation


def test_the_approximation_lab_draws_the_engines_fit_construction_and_sweep(qtbot):
    lab = open_lab(qtbot, Approximation)
    sine = theory.TARGETS["sine"]
    fit = theory.fit_sigmoid_units(sine, 6)
    np.testing.assert_array_equal(data(lab.fit_curve)[1], fit.prediction)
    built = theory.bump_construction(sine, 5, 20.0)
    np.testing.assert_array_equal(data(lab.bump_curve)[1], built.prediction)
    np.testing.assert_array_equal(data(lab.bump_target)[1], built.target)
    sweep = theory.approximation_sweep("sine", steepness=20.0)
    np.testing.assert_array_equal(data(lab.fit_errors)[1], sweep["fit_max_error"])
    np.testing.assert_array_equal(data(lab.bump_bounds)[1], sweep["bump_error_bound"])
    assert lab.table.rowCount() == 10  # two units per bump
    assert float(lab.table.item(3, 4).text()) == pytest.approx(built.output_weights[3])
    assert f"{built.error_bound:.4g}" in lab.construction_readout.text()
    screenshot(lab, "lab_approximation")


def test_an_edited_weight_changes_the_drawn_approximation_as_the_engine_computes_it(qtbot):
    lab = open_lab(qtbot, Approximation)
    built = lab.outcome.bumps
    with qtbot.waitSignal(lab.edited, timeout=5000):
        lab.table.item(2, 4).setText("0.25")  # bump 2's up-step: a lower left side
    a = built.output_weights.copy()
    a[2] = 0.25
    expected = theory.with_weights(built, output_weights=a)
    drawn = data(lab.bump_curve)[1]
    np.testing.assert_array_equal(drawn, expected.prediction)
    assert np.max(np.abs(drawn - built.prediction)) > 0.1
    parts = theory.unit_contributions(
        built.x, built.hidden_weights, built.hidden_biases, a, group=2
    )
    np.testing.assert_array_equal(data(lab.bump_parts[1])[1], parts[1])
    assert f"{expected.max_error:.4g}" in lab.construction_readout.text()
    lab.table.item(0, 3).setText("-5")  # a bias moves the first step's edge
    b = built.hidden_biases.copy()
    b[0] = -5.0
    np.testing.assert_array_equal(
        data(lab.bump_curve)[1],
        theory.with_weights(built, hidden_biases=b, output_weights=a).prediction,
    )
    lab.bias_edit.setText("0.5")
    lab.bias_edit.editingFinished.emit()
    assert lab.network.output_bias == 0.5
    lab.reset_button.click()
    np.testing.assert_array_equal(data(lab.bump_curve)[1], built.prediction)


def test_a_weight_that_is_not_a_number_is_refused(qtbot):
    lab = open_lab(qtbot, Approximation)
    before = data(lab.bump_curve)[1].copy()
    lab.table.item(1, 2).setText("steep")
    assert "not a number" in lab.error
    assert lab.table.item(1, 2).text() == f"{lab.outcome.bumps.hidden_weights[1]:.6g}"
    np.testing.assert_array_equal(data(lab.bump_curve)[1], before)


def test_a_new_target_and_more_units_fit_again(qtbot):
    lab = open_lab(qtbot, Approximation)
    lab.target_box.setCurrentIndex(lab.target_box.findData("gaussian"))
    lab.target_box.activated.emit(lab.target_box.currentIndex())
    lab.units_box.setValue(12)
    settle(qtbot, lab)
    fit = theory.fit_sigmoid_units(theory.TARGETS["gaussian"], 12)
    np.testing.assert_array_equal(data(lab.fit_curve)[1], fit.prediction)
    np.testing.assert_array_equal(data(lab.fit_target)[1], fit.target)
    sweep = lab.outcome.sweep
    lab.bumps_box.setValue(8)
    settle(qtbot, lab)
    assert lab.outcome.sweep is sweep  # the same target and steepness: not swept again
    assert lab.table.rowCount() == 16
    lab.steepness_box.setValue(5.0)
    settle(qtbot, lab)
    expected = theory.approximation_sweep("gaussian", steepness=5.0)
    np.testing.assert_array_equal(data(lab.bump_bounds)[1], expected["bump_error_bound"])
    built = theory.bump_construction(theory.TARGETS["gaussian"], 8, 5.0)
    np.testing.assert_array_equal(data(lab.bump_curve)[1], built.prediction)


def test_the_labs_menu_opens_each_lab_and_its_experiment_opens_in_the_window(window, qtbot):
    from gradient_lab.app.labs import LABS

    win = window()
    menu = next(m for m in win.menuBar().findChildren(QtWidgets.QMenu) if m.title() == "&Labs")
    assert [a.text() for a in menu.actions()] == [f"{title}…" for title, _ in LABS]
    menu.actions()[3].trigger()  # universal approximation
    lab = win.labs[LABS[3][1]]
    assert lab.isVisible() and lab.windowTitle() == "Gradient Lab — Universal approximation"
    first = win.latest.facts
    lab.open_button.click()
    qtbot.waitUntil(lambda: win.latest is not None and win.latest.facts is not first)
    assert win.windowTitle() == "Gradient Lab — sine_regression"
