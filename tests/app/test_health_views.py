"""The Weights and Gradients docks on real sessions: what they draw is what the engine's
snapshot queries say, their series follow the snapshots (and start over after a rewind), and a
network made to have a dead ReLU layer shows it as dead."""

from itertools import pairwise

import numpy as np
import pytest
from PySide6 import QtCore

from gradient_lab.app.palette import MIDDLE, NEGATIVE, POSITIVE, diverging_rgba
from gradient_lab.app.views.gradients_view import GradientsView
from gradient_lab.app.views.weights_view import (
    RIDGE_HEIGHT,
    RIDGES,
    Timeline,
    WeightsView,
    hinton_rgba,
    ridge_picks,
)
from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.service.worker import SessionService
from gradient_lab.engine.training.experiment import load_experiment, parse_experiment
from tests.app.conftest import screenshot
from tests.experiments import dense, experiment_text

WAIT = 120  # seconds a command may take (a cold compile on a busy machine)


@pytest.fixture
def served():
    """``served(experiment)``: a started, built session service, with every snapshot it
    publishes kept in ``service.heard``; closed at the end."""
    started = []

    def make(experiment):
        svc = SessionService(experiment)
        svc.heard = []
        svc.subscribe(lambda e, p: svc.heard.append(p["snapshot"]) if e == "snapshot" else None)
        started.append(svc.start())
        svc.wait_built(WAIT)
        return svc

    yield make
    for svc in started:
        svc.close()


def circle(layers):
    text = experiment_text(
        layers, dataset="circle", data="n = 100", features=["x1", "x2"], validation=0.3
    )
    return parse_experiment(text)


def views(qtbot, snapshot, probe=None):
    weights, gradients = WeightsView(), GradientsView()
    for view in (weights, gradients):
        qtbot.addWidget(view)
        view.resize(1200, 300)
    weights.set_facts(snapshot.facts, snapshot)
    gradients.set_facts(snapshot.facts, snapshot, probe=probe)
    return weights, gradients


def trained_views(served, qtbot, rounds, steps):
    """Both views on the default experiment, fed every snapshot of ``rounds`` runs of
    ``steps`` steps; returns (service, weights view, gradients view)."""
    svc = served(load_experiment(default_experiment_path()))
    weights, gradients = views(qtbot, svc.wait_built())
    for _ in range(rounds):
        svc.run(steps).result(WAIT)
    for view in (weights, gradients):
        view.add_snapshots(list(svc.heard))
    return svc, weights, gradients


def bar_tops(bars):
    return np.asarray(bars.opts["y0"]) + np.asarray(bars.opts["height"])


def test_gradient_flow_bars_are_the_engine_s_gradient_sizes(served, qtbot):
    svc = served(load_experiment(default_experiment_path()))
    svc.run(300).result(WAIT)
    snap = svc.snapshot
    _, view = views(qtbot, svc.wait_built())
    view.show_snapshot(snap)
    stats = snap.layer_stats()
    assert list(view.flow) == ["layers.0", "layers.1", "layers.2"]
    means = [stats[p]["grad_abs_mean"] for p in view.flow]
    maxima = [stats[p]["grad_abs_max"] for p in view.flow]
    np.testing.assert_allclose(bar_tops(view.mean_bars), np.log10(means))  # a log axis
    np.testing.assert_allclose(bar_tops(view.max_bars), np.log10(maxima))
    assert view.flow_plot.getAxis("left").logMode
    assert np.all(np.asarray(view.mean_bars.opts["y0"]) < np.log10(min(means)))
    magnitudes = snap.gradient_magnitudes()
    x, counts = view.spread_curves["layers.1"].getData()
    edges, width = magnitudes["edges"], magnitudes["edges"][1] - magnitudes["edges"][0]
    np.testing.assert_array_equal(x[1:-1], edges)  # and an empty bin at each end
    np.testing.assert_allclose([x[0], x[-1]], [edges[0] - width, edges[-1] + width])
    np.testing.assert_array_equal(counts, [0, *magnitudes["counts"]["layers.1"], 0])


def test_the_ratio_curve_gains_a_point_per_snapshot_and_starts_over_after_a_rewind(served, qtbot):
    svc, _, view = trained_views(served, qtbot, rounds=6, steps=5)
    view.draw_ratios()
    steps, ratios = view.ratio_curves["layers.0"].getOriginalDataset()
    assert len(steps) == len(svc.heard) >= 7
    assert list(steps) == [s.step for s in svc.heard]
    expected = [s.layer_stats()["layers.0"]["update_ratio"] for s in svc.heard]
    assert np.isnan(ratios[0]) and expected[0] == 0  # no update before the first step
    np.testing.assert_allclose(ratios[1:], expected[1:])
    assert view.ratio_plot.getAxis("left").logMode
    assert view.reference.value() == pytest.approx(np.log10(1e-3))
    low, high = view.ratio_plot.getViewBox().viewRange()[1]
    assert low < -3 < high

    seen = len(svc.heard)
    svc.run(1).result(WAIT)
    view.add_snapshots(svc.heard[seen:])
    view.draw_ratios()
    assert len(view.ratio_curves["layers.0"].getOriginalDataset()[0]) == seen + 1

    seen = len(svc.heard)
    svc.rewind(10).result(WAIT)
    assert svc.heard[-1].history_reset
    view.add_snapshots(svc.heard[seen:])
    view.draw_ratios()
    steps, _ = view.ratio_curves["layers.2"].getOriginalDataset()
    assert list(steps) == [10]


def test_a_dead_relu_layer_shows_as_dead(served, qtbot):
    """Every unit of the first ReLU layer is pushed below 0 (no incoming weight, bias -3):
    the dock shows 4 of 4 units dead and no gradient at all for that layer."""
    svc = served(circle([dense(4, "relu"), dense(3, "tanh"), dense(1, "linear")]))
    healthy = svc.snapshot
    for unit in range(4):
        for i in range(2):
            svc.set_weight("layers.0.W", (i, unit), 0.0).result(WAIT)
        svc.set_weight("layers.0.b", (unit,), -3.0).result(WAIT)
    svc.run(3).result(WAIT)
    snap = svc.snapshot
    _, view = views(qtbot, healthy)
    view.show_snapshot(healthy)
    healthy_dead = healthy.unit_activity(healthy.probe_inputs())["layers.0"]["dead"]
    assert view.dead_bars.opts["height"][0] == pytest.approx(100 * healthy_dead) != 100

    view.show_snapshot(snap)
    assert view.unit_paths == ["layers.0", "layers.1", "layers.2"]
    dead, saturated = view.dead_bars.opts["height"], view.saturated_bars.opts["height"]
    assert dead[0] == 100 and view.unit_labels[0].toPlainText() == "4/4 dead"
    activity = snap.unit_activity(snap.probe_inputs())
    assert saturated[1] == pytest.approx(100 * activity["layers.1"]["saturated"])
    assert dead[1] == 0 and "saturated" in view.unit_labels[1].toPlainText()
    assert view.unit_labels[2].toPlainText() == "n/a"  # linear: neither applies
    assert view.flow["layers.0"] == (0.0, 0.0)
    assert bar_tops(view.mean_bars)[0] == view.mean_bars.opts["y0"]  # no bar: no gradient
    legend = [label.text for _, label in view.spread_legend.items]
    assert legend[0] == "0 relu  (12 exactly 0)"
    screenshot(view, "gradients_dead_relu")


def test_weight_histograms_over_time_count_every_weight(served, qtbot):
    svc, view, _ = trained_views(served, qtbot, rounds=20, steps=10)
    view.draw_spread()
    steps, hists = view.timeline.entries()
    assert steps == [s.step for s in svc.heard]
    assert all(h["layers.0"]["weight_counts"].sum() == 2 * 4 + 4 for h in hists)
    drawn = [r for r in view.ridges if r.isVisible()]
    picked = ridge_picks(len(steps), RIDGES)
    assert len(drawn) == len(picked) and RIDGES // 2 <= len(picked) <= RIDGES
    newest = svc.heard[-1].histograms()["layers.0"]
    x, y = drawn[0].getData()  # the newest, in front, on the baseline 0
    np.testing.assert_array_equal(x, newest["weight_edges"])
    counts = newest["weight_counts"]
    np.testing.assert_allclose(y / y.max(), counts / counts.max())  # the same shape
    assert y.max() <= RIDGE_HEIGHT
    assert [r.opts["fillLevel"] for r in drawn] == list(range(len(picked)))  # a baseline a row

    view.layer_box.setCurrentIndex(1)  # layers.1.W: 4×4 weights and 4 biases
    x, y = drawn[0].getData()
    np.testing.assert_array_equal(x, svc.heard[-1].histograms()["layers.1"]["weight_edges"])
    assert view.spread_plot.getPlotItem().titleLabel.text == "layers.1: weights over time"


def test_the_heat_map_and_the_hinton_diagram_show_the_chosen_matrix(served, qtbot):
    svc = served(load_experiment(default_experiment_path()))
    svc.run(50).result(WAIT)
    snap = svc.snapshot
    view, _ = views(qtbot, snap)
    assert view.layer_box.count() == 3 and view.chosen() == ("layers.0.W", "layers.0")
    view.layer_box.setCurrentIndex(1)
    params = snap.parameters()
    rows = np.column_stack([params["layers.1.W"].T, params["layers.1.b"]])  # unit by unit
    limit = snap.layer_stats()["layers.1"]["weight_abs_max"]
    np.testing.assert_array_equal(view.matrix, rows)
    np.testing.assert_array_equal(view.heat_image.image, diverging_rgba(rows, limit))
    image = view.hinton_image.image
    cell = image.shape[0] // rows.shape[0]
    assert image.shape[:2] == (4 * cell, 5 * cell)
    areas, colours = [], []
    for (r, c), w in np.ndenumerate(rows):
        block = image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell, :3].reshape(-1, 3)
        painted = block[np.any(block != MIDDLE, axis=1)]
        areas.append((abs(w), len(painted)))
        colours.append({tuple(p) for p in painted} <= {POSITIVE if w > 0 else NEGATIVE})
    assert all(colours)
    areas.sort()
    assert all(a[1] <= b[1] for a, b in pairwise(areas))
    assert areas[-1][1] >= (cell - 2) ** 2  # the largest weight fills its cell

    vb = view.heat_plot.getPlotItem().vb
    view._mouse_moved(view.heat_plot, (vb.mapViewToScene(QtCore.QPointF(3, 1)),))
    expected = f"{params['layers.1.W'][3, 1]:+.4g}"
    assert view.readout.text() == f"unit 1, input 3: layers.1.W[3, 1] = {expected}"
    view._mouse_moved(view.heat_plot, (vb.mapViewToScene(QtCore.QPointF(4, 2)),))
    assert view.readout.text().startswith("unit 2: layers.1.b[2] = ")


def test_a_hinton_square_grows_with_the_weight():
    image = hinton_rgba(np.array([[0.0, 0.25, -1.0]]), limit=1.0, cell=9)
    painted = [np.any(image[:, 9 * c : 9 * (c + 1), :3] != MIDDLE, axis=2) for c in range(3)]
    # sides in proportion to √|w| (7 × 0.5 pixels, centred on the cell: 3), a grey pixel round
    # the largest
    assert [int(p.sum()) for p in painted] == [0, 3**2, 7**2]
    assert tuple(image[4, 22, :3]) == NEGATIVE and tuple(image[4, 13, :3]) == POSITIVE


def test_the_timeline_keeps_an_even_bounded_share_of_a_long_run():
    timeline, made = Timeline(capacity=10), []

    def make(step):
        made.append(step)
        return step * 2

    for step in range(1000):
        timeline.add(step, lambda step=step: make(step))
    steps, values = timeline.entries()
    assert len(steps) <= 11 and steps[-1] == 999 and values == [2 * s for s in steps]
    gaps = np.diff(steps[:-1])
    assert len(set(gaps)) == 1 and steps[0] == 0
    assert len(made) < 100  # the thinned-away ones were never made
    timeline.clear()
    assert timeline.entries() == ([], [])


def test_both_docks_on_the_digits(served, qtbot):
    """64-32-10 ReLU, 2,410 weights: every layer listed, a probe from the validation set, and
    what is drawn is what the engine says."""
    from gradient_lab.app.main_window import examples_folder

    svc = served(load_experiment(examples_folder() / "digits_mlp.toml"))
    first = svc.wait_built()
    probe = svc.call(lambda session: session.data.X_val).result(WAIT)
    weights, gradients = views(qtbot, first, probe=probe)
    for _ in range(10):
        svc.run(30).result(WAIT)
    for view in (weights, gradients):
        view.add_snapshots(list(svc.heard))
        view.show_snapshot(svc.snapshot)
    weights.draw_spread()
    gradients.draw_ratios()
    snap = svc.snapshot
    assert weights.matrix.shape == (32, 65)
    assert weights.hinton_image.image.shape[:2] == (32 * 5, 65 * 5)
    activity = snap.unit_activity(probe)
    assert gradients.dead_bars.opts["height"][0] == pytest.approx(
        100 * activity["layers.0"]["dead"]
    )
    assert gradients.unit_labels[1].toPlainText() == "n/a"
    zeros = snap.gradient_magnitudes()["zeros"]["layers.0"]
    assert zeros > 0  # the digits' blank border pixels give their weights no gradient
    legend = [label.text for _, label in gradients.spread_legend.items]
    assert legend[0].endswith(f"({zeros} exactly 0)")
    for view, name in ((weights, "weights_digits"), (gradients, "gradients_digits")):
        view.show()
        screenshot(view, name)
        view.close()


def test_the_heat_map_s_colour_scale_holds_still_and_grows_when_a_weight_outgrows_it(served, qtbot):
    from dataclasses import replace

    from gradient_lab.engine.service.snapshot import frozen

    svc = served(load_experiment(default_experiment_path()))
    svc.run(50).result(WAIT)
    snap = svc.snapshot
    view, _ = views(qtbot, snap)
    largest = snap.layer_stats()["layers.0"]["weight_abs_max"]
    assert view.heat_plot.getPlotItem().titleLabel.text.endswith(f"±{largest:.3g})")

    def scaled(factor, playing=True):
        return replace(snap, theta=frozen(np.asarray(snap.theta) * factor), playing=playing)

    view.show_snapshot(scaled(1.0))
    view.show_snapshot(scaled(0.9))  # smaller while playing: the same scale, the same title
    assert view.heat_plot.getPlotItem().titleLabel.text.endswith(f"±{largest:.3g})")
    rows = view.matrix
    np.testing.assert_array_equal(view.heat_image.image, diverging_rgba(rows, largest))
    view.show_snapshot(scaled(2.0))  # a weight outgrew it: grown at once, with headroom
    grown = view.heat_plot.getPlotItem().titleLabel.text
    assert grown.endswith(f"±{2.5 * largest:.3g})")
    view.show_snapshot(scaled(0.5, playing=False))  # paused: its own exact scale
    assert view.heat_plot.getPlotItem().titleLabel.text.endswith(f"±{0.5 * largest:.3g})")


def test_the_stack_s_older_ridges_stay_as_the_history_grows():
    for entries in range(1, 200):
        picked = ridge_picks(entries, RIDGES)
        assert picked[-1] == entries - 1 and len(picked) <= RIDGES  # the newest, and few
        assert picked == sorted(set(picked))
        assert len(picked) >= min(entries, RIDGES // 2)  # still a stack
        # one more entry: no older ridge appears but the one that was the newest (when the
        # stride doubles, every other one goes)
        older = set(picked[:-1])
        assert set(ridge_picks(entries + 1, RIDGES)[:-1]) <= older | {entries - 1}


def test_only_the_ridges_that_change_are_set_again(served, qtbot):
    svc, view, _ = trained_views(served, qtbot, rounds=20, steps=10)
    calls = []
    set_ridge = view._set_ridge
    view._set_ridge = lambda ridge, *args: calls.append(ridge) or set_ridge(ridge, *args)
    view.draw_spread()
    assert len(calls) == len([r for r in view.ridges if r.isVisible()])  # all, at first
    calls.clear()
    view.draw_spread()
    assert calls == []  # nothing changed
    view.timeline.stride = 64  # as in a long run: a snapshot is the newest, not kept
    for _ in range(2):
        calls.clear()
        svc.run(10).result(WAIT)
        view.add_snapshots([svc.heard[-1]])
        view.draw_spread()
    assert calls == [view.ridges[0]]  # the newest alone (its scale held)


def test_while_playing_units_are_counted_a_few_times_a_second_and_exactly_when_paused(
    served, qtbot, monkeypatch
):
    from dataclasses import replace

    import gradient_lab.app.views.gradients_view as module

    svc = served(load_experiment(default_experiment_path()))
    svc.run(50).result(WAIT)
    snap = svc.snapshot
    _, view = views(qtbot, snap)
    counted = []
    draw_units = view._draw_units
    view._draw_units = lambda activity: counted.append(activity) or draw_units(activity)
    clock = [view._units_drawn + 10.0]
    monkeypatch.setattr(module.time, "perf_counter", lambda: clock[0])
    playing = replace(snap, playing=True)
    view.show_snapshot(playing)
    view.show_snapshot(playing)  # the same moment: not counted again
    clock[0] += module.UNITS_EVERY_S
    view.show_snapshot(playing)
    assert len(counted) == 2
    view.show_snapshot(snap)  # paused: counted at once
    assert len(counted) == 3
    exact = snap.unit_activity(view.probe)
    assert [view.activity[p]["saturated"] for p in ("layers.0", "layers.1")] == [
        exact[p]["saturated"] for p in ("layers.0", "layers.1")
    ]
