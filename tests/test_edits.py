"""Edits are recorded commands: a rewind and a replay reproduce the edited run bit for bit."""

import numpy as np
import pytest

from gradient_lab.engine.training.session import SessionError
from tests.experiments import dense, small_session

FUSED = [dense(6, "tanh"), dense(1, "tanh")]
PLUGIN = [dense(6, "tanh"), '{ type = "batch_norm" }', dense(1, "tanh")]
PATHS = {"fused": FUSED, "plugin": PLUGIN}
MOMENTUM = '{ name = "sgd", lr = 0.05, momentum = 0.5 }'


def assert_replays(s, step):
    """Rewinding to ``step`` and running to where the session was gives the same weights."""
    expected, end = s.model.theta.copy(), s.step
    s.rewind(step)
    s.run_steps(end - step)
    assert s.model.theta.tobytes() == expected.tobytes()


def session(layers, **options):
    options.setdefault("optimizer", MOMENTUM)
    options.setdefault("data", "n = 100")
    return small_session(layers, dataset="circle", **options)


@pytest.mark.parametrize("path", PATHS)
def test_a_learning_rate_change_is_replayed_after_a_rewind(path):
    """The issue's case: lr changed at step 30, rewind(20), replay: the same weights."""
    s = session(PATHS[path])
    assert (s.fused is not None) == (path == "fused")
    s.run_steps(30)
    s.set_hyperparameter("optimizer", "lr", 0.2)
    s.run_steps(20)
    expected = s.model.theta.copy()
    assert_replays(s, 20)
    s.rewind(0)
    for _ in range(50):
        s.step_batch()
    assert s.model.theta.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "target, name, value, experiment",
    [
        ("optimizer", "lr", 0.11, '{ name = "sgd", lr = 0.11, momentum = 0.5 }'),
        ("optimizer", "momentum", 0.8, '{ name = "sgd", lr = 0.05, momentum = 0.8 }'),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_an_edit_at_step_0_equals_the_experiment_with_that_value(
    path, target, name, value, experiment
):
    edited, written = session(PATHS[path]), session(PATHS[path], optimizer=experiment)
    edited.set_hyperparameter(target, name, value)
    edited.run_steps(25)
    written.run_steps(25)
    assert edited.model.theta.tobytes() == written.model.theta.tobytes()


@pytest.mark.parametrize("path", PATHS)
def test_a_regularizer_s_strength_is_editable_live(path):
    edited = session(PATHS[path], regularizers=['{ name = "l2", strength = 0.001 }'])
    written = session(PATHS[path], regularizers=['{ name = "l2", strength = 0.05 }'])
    edited.set_hyperparameter("regularizers[0]", "strength", 0.05)
    edited.run_steps(20)
    written.run_steps(20)
    assert edited.model.theta.tobytes() == written.model.theta.tobytes()


def test_a_weight_edit_is_replayed_and_a_new_edit_drops_the_old_future():
    s = session(FUSED)
    s.run_steps(10)
    s.set_weight("layers.0.W", (1, 2), 0.75)
    assert s.parameters()["layers.0.W"][1, 2] == 0.75
    s.run_steps(10)
    s.set_hyperparameter("optimizer", "lr", 0.3)
    s.run_steps(10)
    recorded = s.model.theta.copy()
    assert_replays(s, 5)
    s.rewind(15)
    s.set_hyperparameter("optimizer", "lr", 0.01)  # a new branch: the lr change at 20 is gone
    assert [e.step for e in s.edits.edits] == [10, 15]
    s.run_steps(15)
    assert s.model.theta.tobytes() != recorded.tobytes()


def test_the_batch_size_changes_at_the_next_epoch():
    s = session(FUSED, batch_size=10)  # 80 training samples: 8 steps an epoch
    s.run_steps(3)
    edit = s.set_batch_size(20)
    assert edit.step == 8 and s.batch_size == 10
    s.run_steps(5)
    assert s.batch_size == 10 and s.epoch == 1
    s.run_steps(1)
    assert s.batch_size == 20 and s.steps_per_epoch == 4
    s.run_steps(7)  # to the end of the next epoch: 4 steps of 20
    assert s.epoch == 3
    theta = s.model.theta.copy()
    s.rewind(2)
    assert s.batch_size == 10
    s.run_steps(14)
    assert s.model.theta.tobytes() == theta.tobytes()


def test_edits_tell_views_and_wait_for_the_step_boundary():
    s = session(PLUGIN)
    seen = []
    s.events.on("state_changed", lambda edit: seen.append(edit.describe()))
    s.set_hyperparameter("optimizer", "lr", 0.02)
    assert seen == ["step 0: optimizer.lr = 0.02"]
    s.step_phase()
    with pytest.raises(SessionError, match="edits apply between steps"):
        s.set_weight("layers.0.b", 0, 1.0)
    with pytest.raises(ValueError, match=r"sgd\.lr|lr = -1"):
        s.set_hyperparameter("optimizer", "lr", -1.0)
    s.step_batch()
    with pytest.raises(SessionError, match=r"no weight 'layers\.9\.W'"):
        s.set_weight("layers.9.W", (0, 0), 1.0)
    with pytest.raises(SessionError, match="sgd has no such parameter"):
        s.set_hyperparameter("optimizer", "beta1", 0.5)


def test_a_fork_continues_from_a_recorded_step_and_trains_apart():
    s = session(FUSED)
    s.run_steps(10)
    s.set_hyperparameter("optimizer", "lr", 0.2)
    s.run_steps(20)
    fork = s.fork(15)
    assert fork.step == 15 and s.step == 30
    fork.run_steps(15)
    assert fork.model.theta.tobytes() == s.model.theta.tobytes()  # the same edits, replayed
    fork.set_hyperparameter("optimizer", "lr", 0.01)
    fork.run_steps(5)
    s.run_steps(5)
    assert fork.model.theta.tobytes() != s.model.theta.tobytes()
    assert len(s.edits.edits) == 1 and len(fork.edits.edits) == 2
    np.testing.assert_array_equal(fork.history.steps.column("step")[:30], np.arange(30))


@pytest.mark.parametrize("path", PATHS)
def test_a_recorded_run_replays_from_its_edits_and_step(path):
    """What an autosave keeps (the edits as JSON values and the step) rebuilds the run in a
    new session bit for bit: weight, learning-rate and batch-size edits included."""
    import json

    from gradient_lab.engine.training.edits import edit_from_record, edit_record

    s = session(PATHS[path], batch_size=10)
    s.set_weight("layers.0.W", (0, 1), -0.4)
    s.run_steps(11)
    s.set_hyperparameter("optimizer", "lr", 0.2)
    s.set_batch_size(20)
    s.run_steps(9)
    s.set_weight("layers.0.b", 3, 0.25)
    s.run_steps(4)
    saved = json.loads(json.dumps([edit_record(e) for e in s.edits.edits]))
    again = session(PATHS[path], batch_size=10)
    again.replay([edit_from_record(r, f"edits[{i}]") for i, r in enumerate(saved)], s.step)
    assert again.step == s.step and again.batch_size == 20
    assert again.model.theta.tobytes() == s.model.theta.tobytes()
    with pytest.raises(SessionError, match="new session"):
        again.replay([], 3)


@pytest.mark.parametrize(
    "record, needle",
    [
        ({"step": -1, "made_at": 0, "kind": "weight"}, "edits[0].step = -1"),
        ({"step": 2, "made_at": True, "kind": "weight"}, "edits[0].made_at = True"),
        ({"step": 2, "made_at": 1, "kind": "paint"}, "edits[0].kind = 'paint'"),
        ({"step": 2, "made_at": 1, "kind": "weight", "index": ["a"]}, "edits[0].index"),
        ([1, 2], "expected a table"),
    ],
)
def test_a_bad_edit_record_names_its_field(record, needle):
    from gradient_lab.engine.training.edits import edit_from_record
    from gradient_lab.engine.training.errors import ExperimentError

    with pytest.raises(ExperimentError) as info:
        edit_from_record(record, "edits[0]")
    assert needle in str(info.value)


def test_a_replayed_weight_edit_outside_the_weights_is_refused():
    from gradient_lab.engine.training.edits import Edit

    s = session(FUSED)
    with pytest.raises(SessionError, match="inside the shape"):
        s.replay([Edit(0, 0, "weight", "layers.0.W", "", (9, 9), 1.0)], 5)
