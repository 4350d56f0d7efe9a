"""Training-health diagnostics: fixed-bin histograms, per-parameter and per-layer statistics
against NumPy, the recorder's bookkeeping, and signal propagation at initialization."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradient_lab.engine.files import load_npz
from gradient_lab.engine.instruments.diagnostics import (
    PARAMETER_STATS,
    Bins,
    HealthRecorder,
    histogram,
    layer_health,
    save_npz,
    signal_propagation,
)
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.training.evaluation import eval_data
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

REGISTRY = discover(safe_mode=True)

W1_LIKE = experiment_text(
    [dense(8, "tanh"), dense(8, "tanh"), dense(1, "tanh")],
    data="n = 200\nnoise = 0.0",
    validation=0.0,
    optimizer='{ name = "sgd", lr = 0.03 }',
    epochs=None,
)

RELU_NET = experiment_text(
    [dense(8, "relu"), dense(6, "sigmoid"), dense(1, "tanh")],
    seed=5,
    dataset="circle",
    data="n = 200",
    validation=0.0,
    init="he_normal",
    optimizer='{ name = "adam", lr = 0.01 }',
    batch_size=16,
    epochs=None,
)

# batch normalization has no fused path: the session trains through the plugins' own code
UNFUSED = experiment_text(
    [dense(6, "relu"), '{ type = "batch_norm" }', dense(1, "sigmoid")],
    seed=2,
    dataset="moons",
    data="n = 120",
    validation=0.0,
    init=None,
    loss='"bce"',
    optimizer='{ name = "momentum", lr = 0.05 }',
    batch_size=12,
    epochs=None,
)


def session_of(toml: str) -> Session:
    return Session(parse_experiment(toml, REGISTRY), REGISTRY)


# ------------------------------------------------------------------------------------ histograms


def reference_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin i counts values with edges[i-1] <= v < edges[i]; NaN goes to the overflow bin."""
    v = np.asarray(values, dtype=np.float64).ravel()
    index = np.where(np.isnan(v), len(edges), np.searchsorted(edges, v, side="right"))
    return np.bincount(index, minlength=len(edges) + 1)


def test_histogram_counts_add_up_to_the_element_count_with_outliers_and_nan():
    edges = np.linspace(-1.0, 1.0, 11)
    values = np.array([-5.0, -1.0, -0.2, 0.0, 0.2, 0.9999, 1.0, 7.0, np.inf, -np.inf, np.nan])
    counts = histogram(values, edges)
    assert counts.dtype == np.int64 and counts.shape == (12,)
    assert counts.sum() == values.size
    assert counts[0] == 2  # -5 and -inf
    assert counts[-1] == 4  # 1.0 (the last edge), 7, inf and NaN
    assert counts[1] == 1  # -1.0 sits on the first edge: it opens the first bin
    np.testing.assert_array_equal(counts, reference_counts(values, edges))


def test_histogram_interior_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 40))
    edges = np.linspace(-2.0, 2.0, 17)
    counts = histogram(values, edges)
    inside = values[(values >= -2.0) & (values < 2.0)]
    np.testing.assert_array_equal(counts[1:-1], np.histogram(inside, edges)[0])
    assert counts.sum() == values.size


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=50
    ),
    kind=st.sampled_from(["uniform", "symmetric_log", "irregular"]),
)
def test_histogram_agrees_with_a_reference_everywhere(values, kind):
    edges = {
        "uniform": np.linspace(-3.0, 3.0, 13),
        "symmetric_log": Bins().gradient,
        "irregular": np.array([-1e3, -1.0, -1e-3, 0.0, 2.5, 1e6]),
    }[kind]
    values = [*values, *edges, *(-edges), *(edges * (1 + 1e-15))]
    counts = histogram(np.array(values, dtype=np.float64), edges)
    assert counts.sum() == len(values)
    np.testing.assert_array_equal(counts, reference_counts(np.array(values), edges))


@pytest.mark.parametrize("edges", [np.linspace(-3.0, 3.0, 61), Bins().gradient])
def test_values_exactly_on_the_edges_land_in_the_bin_they_open(edges):
    counts = histogram(edges[:-1], edges)
    np.testing.assert_array_equal(counts, np.r_[0, np.ones(len(edges) - 1, dtype=np.int64), 0])


def test_gradient_bins_span_orders_of_magnitude_on_both_sides():
    rng = np.random.default_rng(1)
    values = rng.normal(size=5000) * 10.0 ** rng.uniform(-9, 2, 5000)
    edges = Bins().gradient
    np.testing.assert_array_equal(histogram(values, edges), reference_counts(values, edges))


def test_bins_refuse_edges_that_do_not_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        Bins(weight=np.array([0.0, 1.0, 1.0]))


# ----------------------------------------------------------------------- statistics per parameter


def test_parameter_statistics_match_numpy_after_fast_steps():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=10)
    session.run_steps(50)
    assert list(recorder.steps) == [10, 20, 30, 40, 50]
    arrays = recorder.arrays()
    model = session.model
    for p, slot in enumerate(model.slots):
        w = model.view(model.theta, slot).ravel()
        g = model.view(model.grad, slot).ravel()
        u = model.view(session.last_update, slot).ravel()
        expected = {
            "grad_mean_abs": np.abs(g).mean(),
            "grad_max_abs": np.abs(g).max(),
            "grad_norm": np.linalg.norm(g),
            "weight_norm": np.linalg.norm(w),
            "update_ratio": math.log10(u.std() / w.std()) if w.size > 1 else math.nan,
        }
        for name in PARAMETER_STATS:
            got = arrays[name][-1, p]
            if math.isnan(expected[name]):
                assert math.isnan(got), (slot.key, name)
            else:
                assert got == pytest.approx(expected[name], rel=1e-10), (slot.key, name)
        assert arrays["weight_histogram"][-1, p].sum() == slot.size
        assert arrays["gradient_histogram"][-1, p].sum() == slot.size
        np.testing.assert_array_equal(
            arrays["weight_histogram"][-1, p], reference_counts(w, recorder.bins.weight)
        )


def test_update_ratio_of_sgd_is_log10_of_lr_times_gradient_spread():
    """With plain SGD the update is -lr·g, so the ratio is log10(lr·std(g)/std(W))."""
    session = session_of(W1_LIKE)
    session.run_steps(7)
    health = layer_health(session)
    w = session.parameters()["layers.1.W"]
    g = session.gradients()["layers.1.W"]
    assert health["layers.1.W"]["update_ratio"] == pytest.approx(
        math.log10(0.03 * g.std() / w.std()), rel=1e-9
    )


# -------------------------------------------------------------------------- statistics per layer


def forward_values(session: Session, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pre-activation, activation) of every layer, through the layers' own NumPy code."""
    _, calls = session.model.trace(x, training=False)
    return [(c.observed["pre_activation"], c.observed["activation"]) for c in calls]


def test_dead_units_are_those_never_active_on_the_data():
    session = session_of(RELU_NET)
    model = session.model
    b = model.view(model.theta, model.layer_slots(0)[1])
    b[:3] = -1e3  # three units can never switch on
    health = layer_health(session)
    z, _ = forward_values(session, session.x_train)[0]
    expected = np.mean(np.all(z <= 0.0, axis=0))
    assert expected >= 3 / 8
    assert health["layers.0"]["dead_fraction"] == pytest.approx(expected, abs=0)
    assert health["layers.0"]["activation"] == "relu"
    assert math.isnan(health["layers.0"]["saturated_fraction"])
    assert math.isnan(health["layers.1"]["dead_fraction"])


def test_saturation_of_tanh_and_sigmoid_against_numpy():
    session = session_of(RELU_NET)
    model = session.model
    model.theta *= 4.0  # big weights push sigmoid and tanh into their flat ends
    health = layer_health(session)
    values = forward_values(session, session.x_train)
    _, sig = values[1]
    _, tanh = values[2]
    tol = 1.0 / sig.size  # one value within rounding of 0.97 may fall either way
    expected_sig = np.mean((sig < 0.03) | (sig > 0.97))
    assert expected_sig > 0.1
    assert health["layers.1"]["saturated_fraction"] == pytest.approx(expected_sig, abs=tol)
    expected_tanh = np.mean(np.abs(tanh) > 0.97)
    assert health["layers.2"]["saturated_fraction"] == pytest.approx(expected_tanh, abs=tol)


def test_layer_histograms_count_every_value_of_the_data_pass():
    session = session_of(RELU_NET)
    session.run_steps(20)
    health = layer_health(session)
    values = forward_values(session, session.x_train)
    bins = Bins()
    for k, (z, y) in enumerate(values):
        entry = health[f"layers.{k}"]
        assert entry["pre_activation_histogram"].sum() == z.size
        assert entry["activation_histogram"].sum() == y.size
        # the compiled forward may differ from NumPy's in the last bit: compare away from edges
        diff = entry["pre_activation_histogram"] - reference_counts(z, bins.pre_activation)
        assert np.abs(diff).sum() <= 2


def test_the_compiled_data_pass_agrees_with_the_plugins_forward():
    fused = session_of(RELU_NET)
    fused.run_steps(30)
    assert fused.fused is not None
    compiled = layer_health(fused)
    fused.fused = None  # the recorder now takes the generic path; the session is not stepped
    generic = layer_health(fused)
    for key, entry in compiled.items():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                assert np.abs(value - generic[key][name]).sum() <= 2, (key, name)
            elif isinstance(value, float) and not math.isnan(value):
                assert value == pytest.approx(generic[key][name], abs=2e-3), (key, name)


def test_a_subsample_of_the_data_is_used_when_given():
    session = session_of(W1_LIKE)
    data = eval_data(session, subsample=50, seed=1)
    recorder = HealthRecorder(session, every=5, data_every=5, data=data)
    session.run_steps(10)
    arrays = recorder.arrays()
    assert arrays["activation_histogram"][-1, 0].sum() == 50 * 8
    assert "subsample of 50" in str(arrays["data_description"])


# ---------------------------------------------------------------------------------- the recorder


def test_unfused_sessions_are_recorded_and_their_phase_view_is_kept():
    session = session_of(UNFUSED)
    assert session.fused is None
    recorder = HealthRecorder(session, every=4, data_every=4)
    session.run_steps(8)
    for _ in range(1 + len(session.model.layers)):  # select batch and every forward phase
        session.step_phase()
    before = [session.layer_values(k) for k in range(len(session.model.layers))]
    recorder.record(session.step + 4)
    after = [session.layer_values(k) for k in range(len(session.model.layers))]
    for b, a in zip(before, after, strict=True):
        assert b.keys() == a.keys()
        for key in b:
            np.testing.assert_array_equal(b[key], a[key])
    assert recorder.layer_keys == ["layers.0", "layers.1", "layers.2"]
    arrays = recorder.arrays()
    assert arrays["layer_activations"].tolist() == ["relu", "", "sigmoid"]
    assert np.isnan(arrays["saturated_fraction"][:, 1]).all()  # batch norm has neither


def test_data_pass_runs_every_data_every_steps():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=10)  # data_every defaults to 10 * every
    session.run_steps(250)
    assert recorder.data_every == 100
    assert list(recorder.data_steps) == [100, 200]
    assert len(recorder.steps) == 25
    with pytest.raises(ValueError, match="multiple of every"):
        HealthRecorder(session, every=10, data_every=15)


def test_memory_is_bounded_by_thinning():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=1, data_every=1, capacity=8)
    session.run_steps(40)
    steps = recorder.steps
    assert len(steps) <= 8
    assert steps[-1] == 40 and np.all(np.diff(steps) > 0)
    assert len(set(np.diff(steps))) == 1  # evenly thinned
    assert recorder.arrays()["weight_histogram"].shape[0] == len(steps)


def test_rewinding_forgets_the_records_after_the_step_returned_to():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=5, data_every=10)
    session.run_steps(40)
    kept = recorder.arrays()
    session.rewind(20)
    session.run_steps(20)
    again = recorder.arrays()
    np.testing.assert_array_equal(again["steps"], kept["steps"])
    np.testing.assert_array_equal(again["data_steps"], kept["data_steps"])
    np.testing.assert_array_equal(again["update_ratio"], kept["update_ratio"])
    np.testing.assert_array_equal(again["activation_histogram"], kept["activation_histogram"])


def test_series_and_npz_round_trip(tmp_path):
    session = session_of(RELU_NET)
    recorder = HealthRecorder(session, every=10, data_every=20)
    session.run_steps(60)
    steps, ratio = recorder.series("layers.0.W", "update_ratio")
    assert list(steps) == [10, 20, 30, 40, 50, 60] and np.all(np.isfinite(ratio))
    data_steps, dead = recorder.series("layers.0", "dead_fraction")
    assert list(data_steps) == [20, 40, 60] and np.all((dead >= 0) & (dead <= 1))
    with pytest.raises(KeyError):
        recorder.series("layers.0", "update_ratio")
    path = tmp_path / "health.npz"
    recorder.save(path)
    loaded = load_npz(path)
    for key, value in recorder.arrays().items():
        np.testing.assert_array_equal(loaded[key], value)
    assert loaded["parameter_keys"].tolist()[:2] == ["layers.0.W", "layers.0.b"]


def test_save_npz_writes_plain_arrays(tmp_path):
    save_npz(tmp_path / "a.npz", {"x": [1, 2], "name": "relu"})
    loaded = load_npz(tmp_path / "a.npz")
    assert loaded["x"].tolist() == [1, 2] and str(loaded["name"]) == "relu"


# ---------------------------------------------------------------------------- signal propagation

SMALL = {"depth": 20, "width": 128, "n": 128, "seeds": 4, "registry": REGISTRY}


def ratio(result: dict) -> float:
    v = result["pre_activation_variance"]
    return float(v[-1] / v[0])


def test_he_initialization_is_critical_for_relu():
    he = signal_propagation("relu", math.sqrt(2.0), **SMALL)
    assert 0.5 < ratio(he) < 2.0  # keeps its size through 20 layers
    grad = he["gradient_norm"]
    assert 0.5 < grad[0] / grad[-1] < 2.0
    below = signal_propagation("relu", 1.0, **SMALL)
    assert ratio(below) < 0.01  # halves at every layer: 2^-19
    assert ratio(below) == pytest.approx(2.0**-19, rel=0.5)
    assert below["gradient_norm"][0] < 0.01 * below["gradient_norm"][-1]  # vanishes backwards
    above = signal_propagation("relu", 2.0, **SMALL)
    assert ratio(above) > 100.0  # doubles at every layer
    assert above["gradient_norm"][0] > 100.0 * above["gradient_norm"][-1]


def test_tanh_with_unit_gain_shrinks_slowly():
    result = signal_propagation("tanh", 1.0, **SMALL)
    v = result["pre_activation_variance"]
    assert np.all(np.diff(v) < 0.0)
    assert 0.005 < ratio(result) < 0.2  # far slower than the geometric 2^-19 of ReLU at gain 1


def test_signal_propagation_reports_mean_and_spread_over_seeds():
    result = signal_propagation("relu", math.sqrt(2.0), depth=5, width=32, n=64, seeds=3)
    assert result["pre_activation_variance_runs"].shape == (3, 5)
    np.testing.assert_allclose(
        result["pre_activation_variance"], result["pre_activation_variance_runs"].mean(axis=0)
    )
    assert np.all(result["pre_activation_variance_std"] > 0.0)
    assert list(result["layer"]) == [1, 2, 3, 4, 5]
    again = signal_propagation("relu", math.sqrt(2.0), depth=5, width=32, n=64, seeds=3)
    np.testing.assert_array_equal(again["gradient_norm"], result["gradient_norm"])


def test_records_inside_a_fast_run_equal_recording_that_step_by_hand(monkeypatch):
    session = session_of(W1_LIKE)
    session.evaluate_epochs = False
    recorder = HealthRecorder(session, every=5, data_every=10)
    calls = []
    run = session.fused.run
    monkeypatch.setattr(session.fused, "run", lambda **kw: calls.append(1) or run(**kw))
    session.run_steps(40)
    assert len(calls) == 1  # the recorder does not split the compiled run
    reference = session_of(W1_LIKE)
    reference.run_steps(20)
    by_hand = HealthRecorder(reference, every=5, data_every=10, attach=False)
    by_hand.record(20)
    got, expected = recorder.arrays(), by_hand.arrays()
    row, data_row = list(got["steps"]).index(20), list(got["data_steps"]).index(20)
    for name in (*PARAMETER_STATS, "weight_histogram", "gradient_histogram"):
        np.testing.assert_array_equal(got[name][row], expected[name][0], err_msg=name)
    for name in ("saturated_fraction", "pre_activation_histogram", "activation_histogram"):
        np.testing.assert_array_equal(got[name][data_row], expected[name][0], err_msg=name)


def test_latest_shows_every_record_even_when_thinning_skips_it():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=1, data_every=2, capacity=4)
    assert recorder.latest()["steps"] == -1
    session.run_steps(9)
    assert 9 not in recorder.steps  # thinned out of the history ...
    latest = recorder.latest()
    assert latest["steps"] == 9 and latest["data_steps"] == 8  # ... but shown as the latest
    now = layer_health(session)
    for p, key in enumerate(recorder.parameter_keys):
        for name in PARAMETER_STATS:
            assert latest[name][p] == pytest.approx(now[key][name], nan_ok=True)
        np.testing.assert_array_equal(
            latest["gradient_histogram"][p], now[key]["gradient_histogram"]
        )
    session.run_steps(3)  # thinning now keeps every 4th step
    kept = recorder.arrays()
    assert kept["steps"][-1] == 12
    np.testing.assert_array_equal(
        kept["weight_histogram"][-1], recorder.latest()["weight_histogram"]
    )


def test_a_rewind_drops_later_records_even_without_replaying():
    session = session_of(W1_LIKE)
    recorder = HealthRecorder(session, every=5, data_every=10)
    session.run_steps(20)
    session.run_steps(20)
    session.rewind(20)  # a checkpoint: nothing is replayed
    assert list(recorder.steps) == [5, 10, 15, 20]
    latest = recorder.latest()
    assert latest["steps"] == 20 and latest["data_steps"] == 20
    np.testing.assert_array_equal(latest["update_ratio"], recorder.arrays()["update_ratio"][-1])
    session.rewind(0)
    assert len(recorder.steps) == 0 and recorder.latest()["steps"] == -1


def test_the_health_view_descends_into_a_composite_layers_children():
    """A transformer block's dense children are layers of their own in the health records,
    counted from their own pre-activations and activations on the data."""
    text = experiment_text(
        [dense(8, "tanh"), '{ type = "transformer_block", heads = 2, activation = "relu" }',
         dense(4, "linear")],
        dataset="delayed_copy", data="n = 40\nlength = 5", loss="cross_entropy", validation=0.0,
    )  # fmt: skip
    session = session_of(text)
    session.run_steps(6)
    health = layer_health(session)
    for path in ("layers.1.fc1", "layers.1.fc2"):
        assert path in health, sorted(health)
    assert "layers.1.attn.W_q" in health  # a child's parameters are there by path too
    _, calls = session.model.trace(session.x_train, training=False)
    fc1 = calls[1].children["fc1"][0]
    z, y = fc1.observed["pre_activation"], fc1.observed["activation"]
    entry = health["layers.1.fc1"]
    assert entry["activation"] == "relu"
    assert entry["activation_histogram"].sum() == y.size == z.size
    per_unit = z.reshape(-1, z.shape[-1])
    assert entry["dead_fraction"] == pytest.approx(np.mean(np.all(per_unit <= 0, axis=0)))
