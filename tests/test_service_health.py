"""The snapshot's training-health queries (the Weights and Gradients docks' numbers): per-layer
gradient sizes, histograms of weights and gradients, |gradient| on a log axis, and dead and
saturated units, each checked against NumPy on the snapshot's own arrays and against networks
made by hand to have a dead or a saturated layer."""

from dataclasses import replace

import numpy as np
import pytest

from gradient_lab.engine.model import Model
from gradient_lab.engine.service.snapshot import frozen
from gradient_lab.engine.service.worker import SessionService
from gradient_lab.engine.training.data import make_features
from gradient_lab.engine.training.experiment import parse_experiment
from tests.experiments import dense, experiment_text

WAIT = 120  # seconds a future may take (a cold compile on a busy machine)


def experiment(layers):
    return parse_experiment(
        experiment_text(
            layers, dataset="circle", data="n = 100", features=["x1", "x2"], validation=0.3
        )
    )


@pytest.fixture
def trained():
    """``trained(layers, steps)``: the snapshot after ``steps`` steps of a small circle net."""
    started = []

    def make(layers=None, steps=20):
        layers = layers or [dense(4, "tanh"), dense(3, "relu"), dense(1)]
        svc = SessionService(experiment(list(layers))).start()
        started.append(svc)
        svc.wait_built(WAIT)
        if steps:
            svc.run(steps).result(WAIT)
        return svc.snapshot

    yield make
    for svc in started:
        svc.close()


def layer_arrays(snap, path, source):
    """Every weight (or gradient) of top-level layer ``path``, flattened, straight from the
    snapshot's by-key arrays."""
    arrays = source()
    return np.concatenate([a.ravel() for k, a in arrays.items() if k.startswith(path + ".")])


def with_weights(snap, **values):
    """The snapshot with some weights replaced (``layers_0_b=...``: key with dots as _)."""
    theta = np.array(snap.theta)
    for slot in snap.facts.model.slots:
        name = slot.key.replace(".", "_")
        if name in values:
            Model.view(theta, slot)[...] = values[name]
    return replace(snap, theta=frozen(theta))


def test_layer_stats_give_each_layer_s_gradient_sizes(trained):
    snap = trained()
    stats = snap.layer_stats()
    assert set(stats) == {"layers.0", "layers.1", "layers.2"}
    for path, row in stats.items():
        w = layer_arrays(snap, path, snap.parameters)
        g = layer_arrays(snap, path, snap.gradients)
        assert row["grad_abs_mean"] == pytest.approx(np.mean(np.abs(g)))
        assert row["grad_abs_max"] == pytest.approx(np.max(np.abs(g)))
        assert row["weight_abs_max"] == pytest.approx(np.max(np.abs(w)))
        assert 0 < row["grad_abs_mean"] < row["grad_abs_max"]


def test_histograms_count_every_weight_and_gradient_in_symmetric_bins(trained):
    snap = trained()
    hist = snap.histograms(bins=21)
    for path, h in hist.items():
        for name, source in (("weight", snap.parameters), ("grad", snap.gradients)):
            values = layer_arrays(snap, path, source)
            edges, counts = h[f"{name}_edges"], h[f"{name}_counts"]
            limit = np.max(np.abs(values))
            np.testing.assert_allclose(edges, np.linspace(-limit, limit, 22))
            np.testing.assert_array_equal(counts, np.histogram(values, bins=edges)[0])
            assert counts.sum() == values.size
    auto = snap.histograms()
    assert [len(h["weight_counts"]) for h in auto.values()] == [7, 9, 7]  # 12, 15 and 4 weights
    assert all(h["grad_counts"].sum() == h["weight_counts"].sum() for h in auto.values())


def test_before_any_step_the_gradient_histogram_is_one_spike_at_zero(trained):
    snap = trained(steps=0)
    h = snap.histograms(bins=5)["layers.0"]
    np.testing.assert_allclose(h["grad_edges"], np.linspace(-1, 1, 6))
    np.testing.assert_array_equal(h["grad_counts"], [0, 0, 2 * 4 + 4, 0, 0])
    magnitudes = snap.gradient_magnitudes()
    assert magnitudes["zeros"]["layers.0"] == 12 and magnitudes["counts"]["layers.0"].sum() == 0


def test_gradient_magnitudes_put_every_layer_on_one_log_axis(trained):
    snap = trained()
    found = snap.gradient_magnitudes(per_decade=4)
    edges = found["edges"]
    assert np.allclose(edges, np.round(edges * 4) / 4) and edges[0] == np.floor(edges[0])
    for path in ("layers.0", "layers.1", "layers.2"):
        g = np.abs(layer_arrays(snap, path, snap.gradients))
        nonzero = g[g > 0]
        assert edges[0] <= np.log10(nonzero.min()) and np.log10(nonzero.max()) <= edges[-1]
        counts = np.histogram(np.log10(nonzero), bins=edges)[0]
        np.testing.assert_array_equal(found["counts"][path], counts)
        assert found["counts"][path].sum() + found["zeros"][path] == g.size


def test_a_vanishing_gradient_sits_decades_below_the_others(trained):
    """A layer whose gradient is a million times smaller shows 6 decades (24 bins) lower."""
    snap = trained()
    grad = np.array(snap.grad)
    slots = [s for s in snap.facts.model.slots if s.layer == 0]
    for slot in slots:
        Model.view(grad, slot)[...] *= 1e-6
    shrunk = replace(snap, grad=frozen(grad)).gradient_magnitudes(per_decade=4)
    before = snap.gradient_magnitudes(per_decade=4)

    def peak(found, path):
        return found["edges"][np.argmax(found["counts"][path])]

    assert peak(before, "layers.0") - peak(shrunk, "layers.0") == pytest.approx(6.0)
    assert peak(shrunk, "layers.2") == peak(before, "layers.2")
    assert shrunk["edges"][0] <= before["edges"][0] - 6


def test_probe_inputs_are_the_validation_points_as_network_inputs(trained):
    snap = trained(steps=0)
    facts = snap.facts
    np.testing.assert_array_equal(
        snap.probe_inputs(), make_features(facts.points_val, facts.feature_names)
    )
    assert len(snap.probe_inputs()) == 30
    given = np.zeros((5, 2))
    assert replace(snap, facts=replace(facts, probe_inputs=given)).probe_inputs() is given


def test_a_relu_unit_pushed_below_zero_everywhere_is_dead(trained):
    """Unit 1 of the ReLU layer gets zero incoming weights and a bias of -1: its output is 0
    on every sample. The shares match NumPy's own forward pass of the same weights."""
    snap = trained(layers=(dense(5, "relu"), dense(1, "linear")), steps=10)
    w = np.array(snap.parameters()["layers.0.W"])
    b = np.array(snap.parameters()["layers.0.b"])
    w[:, 1], b[1] = 0.0, -1.0
    killed = with_weights(snap, layers_0_W=w, layers_0_b=b)
    x = killed.probe_inputs()
    activity = killed.unit_activity(x)
    assert set(activity) == {"layers.0", "layers.1"}
    relu = activity["layers.0"]
    expected = np.all(x @ w + b <= 0, axis=0)
    assert expected[1]
    np.testing.assert_array_equal(relu["dead_units"], expected)
    assert relu["dead"] == pytest.approx(expected.mean())
    assert relu["activation"] == "relu" and relu["units"] == 5
    assert np.isnan(relu["saturated"])  # ReLU has no upper bound to saturate at
    assert np.isnan(activity["layers.1"]["dead"]) and np.isnan(activity["layers.1"]["saturated"])
    healthy = snap.unit_activity(x)["layers.0"]
    assert not healthy["dead_units"][1]
    assert killed.unit_activity(np.zeros((0, 2))) == {}  # no samples, nothing to say


def test_a_dead_unit_set_by_an_edit_gets_no_gradient(trained):
    """Through the service: the unit killed by edits learns nothing, so its gradients are
    exactly 0 and the magnitude histogram counts them as zeros."""
    svc = SessionService(experiment([dense(4, "relu"), dense(1, "linear")])).start()
    try:
        svc.wait_built(WAIT)
        for i in range(2):
            svc.set_weight("layers.0.W", (i, 2), 0.0).result(WAIT)
        svc.set_weight("layers.0.b", (2,), -2.0).result(WAIT)
        svc.run(5).result(WAIT)
        snap = svc.snapshot
    finally:
        svc.close()
    assert snap.unit_activity()["layers.0"]["dead_units"][2]
    grads = snap.gradients()
    assert np.all(grads["layers.0.W"][:, 2] == 0) and grads["layers.0.b"][2] == 0
    assert snap.gradient_magnitudes()["zeros"]["layers.0"] >= 3


def test_tanh_units_with_huge_weights_saturate(trained):
    snap = trained(steps=0)
    w = np.array(snap.parameters()["layers.0.W"]) * 100.0
    big = with_weights(snap, layers_0_W=w)
    x = big.probe_inputs()
    tanh = big.unit_activity(x)["layers.0"]
    y = np.tanh(x @ w + snap.parameters()["layers.0.b"])
    assert tanh["saturated"] == pytest.approx(np.mean(np.abs(y) > 0.99))
    np.testing.assert_allclose(tanh["saturated_units"], np.mean(np.abs(y) > 0.99, axis=0))
    assert tanh["saturated"] > 0.5
    assert snap.unit_activity(x)["layers.0"]["saturated"] < tanh["saturated"]
    assert np.isnan(tanh["dead"])  # tanh has no kink to die at
