"""Rewind and replay bit for bit with every optimizer that keeps state, on both compute paths.

A rewind must restore the optimizer's state (velocity, moments, damping) with the parameters: a
reference session stepped once at a time records every state, and the rewound session must match
it exactly, whether the rewind restores a checkpoint directly or replays steps from an earlier one.
"""

import numpy as np
import pytest

from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

STATEFUL = {
    "momentum": '{ name = "momentum", lr = 0.05 }',
    "nesterov": '{ name = "nesterov", lr = 0.05 }',
    "adagrad": '{ name = "adagrad", lr = 0.05 }',
    "rmsprop": '{ name = "rmsprop", lr = 0.01, momentum = 0.5, centered = true }',
    "adadelta": '{ name = "adadelta", lr = 1.0 }',
    "adam": '{ name = "adam", lr = 0.01 }',
    "adam-amsgrad": '{ name = "adam", lr = 0.01, amsgrad = true }',
    "adamw": '{ name = "adamw", lr = 0.01 }',
    "levenberg_marquardt": '{ name = "levenberg_marquardt", mu = 10.0, mu_dec = 0.5 }',
}
# Dense stacks run on the compiled kernels; a batch-norm layer sends the step through the
# plugins' NumPy code and adds running statistics, layer state a rewind must restore too.
PATHS = {
    "compiled": [dense(6, "tanh"), dense(1, "tanh")],
    "plugins": [dense(6, "linear"), '{ type = "batch_norm" }', dense(1, "tanh")],
}
STEPS = 12


def new_session(optimizer, path):
    text = experiment_text(PATHS[path], optimizer=STATEFUL[optimizer], batch_size=8, epochs=None)
    return Session(parse_experiment(text))


def state_of(session):
    """Everything a continued run depends on: parameters, layer state, optimizer state."""
    state = {"theta": session.model.theta.copy()}
    state.update({f"layer:{k}": v.copy() for k, v in session.model.state_arrays().items()})
    state.update({f"optimizer:{k}": v for k, v in session.optimizer_state().items()})
    return state


def assert_same_state(actual, expected, when):
    assert actual.keys() == expected.keys(), when
    for key in expected:
        assert np.array_equal(actual[key], expected[key]), f"{key} differs {when}"


@pytest.fixture(scope="module", params=[(o, p) for o in STATEFUL for p in PATHS],
                ids=lambda c: f"{c[0]}-{c[1]}")  # fmt: skip
def reference(request):
    """(optimizer, path, states after every step, step losses) of a run stepped one at a time."""
    optimizer, path = request.param
    session = new_session(optimizer, path)
    states = [state_of(session)]
    for _ in range(STEPS):
        session.step_batch()
        states.append(state_of(session))
    # the optimizer's own state differs between the steps rewound to and the last one, so a
    # rewind that forgot it could not go unnoticed
    kept = [k for k in states[0] if k.startswith("optimizer:") and k != "optimizer:step"]
    for step in (0, 5, 8):
        assert any(not np.array_equal(states[step][k], states[STEPS][k]) for k in kept), step
    return optimizer, path, states, session.history.steps.column("train_loss").copy()


def test_a_fast_run_matches_stepping_one_at_a_time(reference):
    optimizer, path, states, _ = reference
    session = new_session(optimizer, path)
    session.run_steps(STEPS)
    assert_same_state(state_of(session), states[STEPS], f"after {STEPS} fast steps")


def test_rewind_replaying_from_an_earlier_checkpoint(reference):
    optimizer, path, states, losses = reference
    session = new_session(optimizer, path)
    session.run_steps(STEPS)
    # keep the first and last checkpoints only, as thinning leaves long runs, so 5 is replayed
    session.checkpoints = [session.checkpoints[0], session.checkpoints[-1]]
    assert session.recorded_steps() == [0, STEPS]
    session.rewind(5)
    assert session.step == 5
    assert_same_state(state_of(session), states[5], "after rewind(5)")
    session.run_steps(STEPS - 5)
    assert_same_state(state_of(session), states[STEPS], "after replaying to the end")
    assert np.array_equal(session.history.steps.column("train_loss"), losses)


def test_rewind_restoring_a_checkpoint_directly(reference):
    optimizer, path, states, losses = reference
    session = new_session(optimizer, path)
    for _ in range(STEPS):
        session.step_batch()  # a checkpoint after every step
    assert 8 in session.recorded_steps()
    session.rewind(8)
    assert_same_state(state_of(session), states[8], "after rewind(8)")
    for _ in range(STEPS - 8):
        session.step_batch()
    assert_same_state(state_of(session), states[STEPS], "after stepping on from 8")
    assert np.array_equal(session.history.steps.column("train_loss"), losses)


def test_rewind_to_the_start_then_the_same_run_again(reference):
    optimizer, path, states, losses = reference
    session = new_session(optimizer, path)
    session.run_steps(STEPS)
    session.rewind(0)
    assert_same_state(state_of(session), states[0], "after rewind(0)")
    session.run_steps(STEPS)
    assert_same_state(state_of(session), states[STEPS], "after the second run")
    assert np.array_equal(session.history.steps.column("train_loss"), losses)


def test_rewind_replays_dropout_bit_for_bit():
    layers = [dense(6, "tanh"), '{ type = "dropout", rate = 0.5 }', dense(1, "tanh")]
    text = experiment_text(layers, optimizer=STATEFUL["adam"], batch_size=8, epochs=None)
    session = Session(parse_experiment(text))
    session.run_steps(STEPS)
    expected = state_of(session)
    session.rewind(0)
    session.run_steps(STEPS)
    assert_same_state(state_of(session), expected, "after rewind(0) and the same steps again")
