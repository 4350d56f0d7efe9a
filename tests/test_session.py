"""The step-through session: phases, fast steps, determinism, rewind, divergence, observation."""

import numpy as np
import pytest

from gradient_lab.engine.training.history import ThinningLog
from gradient_lab.engine.training.session import SessionError
from tests.experiments import README_EXAMPLE, dense, small_session

EXAMPLE = {**README_EXAMPLE, "data": "n = 200\nnoise = 0.1", "epochs": 5}
# ReLU hidden layers, a linear output and a learning rate far too large
DIVERGING = dict(
    layers=[dense(8, "relu"), dense(8, "relu"), dense(1, "linear")],
    optimizer='{ name = "sgd", lr = 50.0 }',
)


def make(**changes):
    """A session of EXAMPLE with some of its choices changed."""
    return small_session(**{**EXAMPLE, **changes})


@pytest.mark.parametrize("units", [8, 64])
def test_phase_by_phase_equals_fast_steps_bit_for_bit(units):
    """8 units: plain loops only; 64: the products above the BLAS threshold go to BLAS."""
    wide = [dense(units, "tanh"), dense(units, "tanh"), dense(1, "tanh")]
    stepped, fast = make(layers=wide), make(layers=wide)
    assert stepped.fused is not None
    assert (stepped.fused.blas_above is None) == (units == 8)
    for _ in range(23 * len(stepped.phase_names)):
        stepped.step_phase()
    fast.run_steps(23)
    assert stepped.step == fast.step == 23
    assert stepped.model.theta.tobytes() == fast.model.theta.tobytes()
    np.testing.assert_array_equal(
        stepped.history.steps.column("train_loss"), fast.history.steps.column("train_loss")
    )


def test_same_seed_same_bits_other_seed_differs():
    a, b, c = make(), make(), make(seed=8)
    for s in (a, b, c):
        s.run_steps(40)
    assert a.model.theta.tobytes() == b.model.theta.tobytes()
    assert a.model.theta.tobytes() != c.model.theta.tobytes()


def test_rewind_restores_and_replays_bit_for_bit():
    reference = make()
    reference.run_steps(37)
    at_37 = reference.model.theta.copy()
    state_37 = reference.optimizer_state()
    reference.run_steps(63)
    at_100 = reference.model.theta.copy()

    session = make()
    session.run_steps(100)
    assert session.model.theta.tobytes() == at_100.tobytes()
    session.rewind(37)
    assert session.step == 37
    assert session.model.theta.tobytes() == at_37.tobytes()
    for key, value in state_37.items():
        np.testing.assert_array_equal(session.opt_state[key], value)
    assert len(session.history.steps) == 37
    session.run_steps(63)
    assert session.model.theta.tobytes() == at_100.tobytes()
    assert session.history.epochs == reference.history.epochs  # same losses and metrics


def test_rewind_to_unrecorded_step_is_a_clear_error():
    session = make()
    session.run_steps(5)
    for step in (9, 6, -1):  # 6: one step past the newest is not recorded either
        with pytest.raises(SessionError, match="not recorded"):
            session.rewind(step)
    assert session.step == 5


def test_phase_names_and_observation_after_each_phase():
    session = make()
    names = session.phase_names
    assert names[0] == "select batch" and names[-1] == "update"
    assert names[1:4] == ["forward 0", "forward 1", "forward 2"]
    assert names[5:8] == ["backward 2", "backward 1", "backward 0"]
    session.step_phase()  # select batch
    session.step_phase()  # forward 0
    values = session.layer_values(0)
    assert values["pre_activation"].shape == (10, 8)
    np.testing.assert_allclose(values["activation"], np.tanh(values["pre_activation"]))
    w = session.parameters()["layers.0.W"]
    b = session.parameters()["layers.0.b"]
    np.testing.assert_allclose(values["pre_activation"], values["input"] @ w + b, rtol=1e-12)


def test_backward_phases_give_the_finite_difference_gradient():
    session = make()
    for _ in range(len(session.phase_names) - 1):  # everything but the update
        session.step_phase()
    x = session.layer_values(0)["input"]
    start, size = session._batch
    t = session.targets_train[session.perm[start : start + size]]
    theta = session.model.theta
    analytic = session.model.grad.copy()

    def batch_loss():
        return float(np.mean((session.model.forward(x) - t) ** 2))

    rng = np.random.default_rng(0)
    for i in rng.choice(theta.size, 12, replace=False):
        keep = theta[i]
        theta[i] = keep + 1e-6
        up = batch_loss()
        theta[i] = keep - 1e-6
        down = batch_loss()
        theta[i] = keep
        assert analytic[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9)


def test_epoch_records_losses_metrics_and_norms():
    session = make()
    session.run_epochs(2)
    assert session.epoch == 2 and session.step == 2 * session.steps_per_epoch
    record = session.history.epochs[-1]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(record)
    assert 0.0 <= record["val_accuracy"] <= 1.0
    norms = session.history.layer_norms[-1]
    assert norms["layers.0.weight_norm"] > 0 and norms["layers.2.grad_norm"] >= 0


def test_divergence_stops_training_and_names_where():
    events = []
    session = make(**DIVERGING)
    session.events.on("diverged", lambda divergence: events.append(divergence))
    session.run_steps(50)
    assert session.diverged is not None and events
    assert session.diverged.where in ("forward", "loss", "parameters")
    assert session.step < 50
    with pytest.raises(SessionError, match="diverged"):
        session.step_batch()
    session.rewind(0)
    assert session.diverged is None


def test_events_fire_for_phases_steps_and_epochs():
    seen = {"phase_done": 0, "step_done": 0, "epoch_done": 0}
    steps = []
    session = make()
    for name in seen:
        session.events.on(name, lambda name=name, **kw: seen.__setitem__(name, seen[name] + 1))
    session.events.on("step_done", lambda step, loss: steps.append(step))
    session.step_batch()
    assert seen["phase_done"] == len(session.phase_names) and steps == [1]
    session.step_epoch()  # fast: one step_done per compiled call, with the newest step
    assert seen["epoch_done"] == 1 and steps[-1] == session.steps_per_epoch
    assert seen["phase_done"] == len(session.phase_names)


def test_training_learns_the_circle():
    session = make(dataset="circle", epochs=30)
    before = session.evaluate("val", with_loss=False)["accuracy"]
    session.run_epochs(30)
    after = session.history.epochs[-1]["val_accuracy"]
    assert after > 0.9 > before or after > 0.95


def test_generic_path_with_dropout_and_batch_norm_learns():
    layers = [
        dense(16, "relu"),
        '{ type = "batch_norm" }',
        '{ type = "dropout", rate = 0.1 }',
        dense(1, "tanh"),
    ]
    session = make(layers=layers, dataset="circle", optimizer='{ name = "sgd", lr = 0.05 }')
    assert session.fused is None
    first = session.evaluate("train")["loss"]
    session.run_epochs(15)
    assert session.evaluate("train")["loss"] < 0.6 * first
    a, b = make(layers=layers, dataset="circle"), make(layers=layers, dataset="circle")
    a.run_steps(30)
    b.run_steps(30)
    assert a.model.theta.tobytes() == b.model.theta.tobytes()


def test_float32_option_trains():
    session = make(dtype="float32")
    assert session.model.theta.dtype == np.float32
    session.run_steps(30)
    assert np.isfinite(session.history.steps.column("train_loss")).all()


def test_history_memory_is_bounded():
    log = ThinningLog(("step", "loss"), capacity=1000)
    for step in range(500):
        log.append(step, float(step))
    for start in range(500, 1_000_000, 2500):
        steps = np.arange(start, start + 2500)
        log.extend(steps, steps * 1.0)
    assert len(log) <= 1000
    steps = log.column("step")
    assert steps[0] == 0 and steps[-1] > 990_000
    assert len(np.unique(np.diff(steps))) == 1  # evenly thinned


def test_recorders_see_every_kth_step_in_fast_runs():
    seen = []
    session = make()
    session.add_recorder(7, lambda s: seen.append((s.step, s.model.theta.copy())))
    session.run_steps(30)
    assert [step for step, _ in seen] == [7, 14, 21, 28]
    reference = make()
    reference.run_steps(14)
    assert seen[1][1].tobytes() == reference.model.theta.tobytes()


def state_log(seen):
    """A state recorder that keeps copies of what it is given."""
    return lambda step, theta, grad, update: seen.append(
        (step, theta.copy(), grad.copy(), update.copy())
    )


def test_state_recorders_get_exact_snapshots_without_splitting_fast_runs(monkeypatch):
    seen, other = [], []
    session = make()
    session.evaluate_epochs = False
    session.add_state_recorder(7, state_log(seen))
    session.add_state_recorder(4, state_log(other))
    calls = []
    run = session.fused.run
    monkeypatch.setattr(session.fused, "run", lambda **kw: calls.append(1) or run(**kw))
    session.run_steps(30)
    assert len(calls) == 1  # one compiled call for all 30 steps
    assert [s[0] for s in seen] == [7, 14, 21, 28]
    assert [s[0] for s in other] == [4, 8, 12, 16, 20, 24, 28]
    for step, theta, grad, update in (seen[1], other[3]):
        reference = make()
        reference.run_steps(step)
        assert theta.tobytes() == reference.model.theta.tobytes()
        assert grad.tobytes() == reference.model.grad.tobytes()
        assert update.tobytes() == reference.last_update.tobytes()


def test_state_recorders_beyond_the_snapshot_buffer_and_by_hand(monkeypatch):
    seen = []
    session = make()
    session.evaluate_epochs = False
    monkeypatch.setattr(session.snapshots, "capacity", 3)
    session.add_state_recorder(2, state_log(seen))
    session.run_steps(15)  # 7 snapshots: three runs of the compiled loop
    session.step_batch()  # step 16, outside the loop
    for _ in range(len(session.phase_names) * 2):
        session.step_phase()  # steps 17 and 18, phase by phase
    assert [s[0] for s in seen] == list(range(2, 19, 2))
    reference = make()
    reference.run_steps(18)
    assert seen[-1][1].tobytes() == reference.model.theta.tobytes()


def test_state_recorders_in_unfused_sessions_and_at_divergence():
    dropout = '{ type = "dropout", rate = 0.0 }'
    unfused = make(layers=[dense(8, "tanh"), dense(8, "tanh"), dropout, dense(1, "tanh")])
    assert unfused.fused is None
    seen = []
    unfused.add_state_recorder(3, state_log(seen))
    unfused.run_steps(10)
    assert [s[0] for s in seen] == [3, 6, 9]
    diverging = make(**DIVERGING)
    steps = []
    diverging.add_state_recorder(1, lambda step, *_: steps.append(step))
    diverging.run_steps(50)
    assert diverging.diverged is not None
    assert steps == list(range(1, diverging.step + 1))
    with pytest.raises(SessionError, match="every = 0"):
        diverging.add_state_recorder(0, state_log([]))


def test_state_recorders_with_coprime_intervals_share_one_run(monkeypatch):
    session = make()
    session.evaluate_epochs = False
    steps = []
    session.add_state_recorder(100, lambda step, *_: steps.append(step))
    session.add_state_recorder(101, lambda step, *_: steps.append(step))
    calls = []
    run = session.fused.run
    monkeypatch.setattr(session.fused, "run", lambda **kw: calls.append(1) or run(**kw))
    session.run_steps(1000)
    assert len(calls) == 1  # 19 snapshots fit the buffer: no extra stops
    assert steps == sorted([100 * k for k in range(1, 11)] + [101 * k for k in range(1, 10)])
