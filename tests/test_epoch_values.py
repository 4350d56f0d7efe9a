"""What an epoch reports and which rows it trains on, checked by value against an independent
computation: validation loss and metrics on the validation rows, minibatches that follow the
shuffling setting, and `shuffle = false` meaning the file's order."""

import numpy as np
import pytest

from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, experiment_text

LAYERS = [dense(5, "tanh"), dense(1, "tanh")]
# the compiled kernels; a (no-op) dropout layer sends the step through the plugins' NumPy code
PATHS = {"compiled": LAYERS, "plugins": [LAYERS[0], '{ type = "dropout", rate = 0.0 }', LAYERS[1]]}


def session_for(layers=LAYERS, **options):
    return Session(parse_experiment(experiment_text(layers, **options)))


def forward_by_hand(session, x):
    """The dense tanh stack's output computed with NumPy from the session's parameters."""
    params = session.parameters()
    for k in range(len(session.model.layers)):
        x = np.tanh(x @ params[f"layers.{k}.W"] + params[f"layers.{k}.b"])
    return x


def outputs_as_trained(session, epochs):
    """Step ``epochs`` epochs by hand, keeping each row's output at the step that trained on
    it (computed with NumPy from the weights before that step's update); returns them, in the
    data's row order, for the last epoch."""
    outputs = np.full(session.data.n_train, np.nan)
    for _ in range(epochs * session.steps_per_epoch):
        session.step_phase()  # select batch
        start, size = session._batch
        rows = session.perm[start : start + size]
        outputs[rows] = forward_by_hand(session, session.data.X_train[rows])[:, 0]
        session.step_batch()
    return outputs


@pytest.mark.parametrize("epochs", [1, 3])
def test_epoch_losses_and_accuracies_are_those_of_their_own_rows(epochs):
    session = session_for(validation=0.3, epochs=epochs)
    trained = outputs_as_trained(session, epochs)
    record = session.history.epochs[-1]
    data = session.data
    assert data.n_val == 18 and data.n_train == 42
    # tanh output with MSE: class 1 is +1, class 0 is -1; a prediction is the side of 0.
    # Training accuracy: each row as the epoch trained on it; validation: at the epoch's end.
    assert record["train_accuracy"] == pytest.approx(np.mean((trained > 0) == data.y_train))
    val_out = forward_by_hand(session, data.X_val)[:, 0]
    assert record["val_accuracy"] == pytest.approx(np.mean((val_out > 0) == data.y_val))
    expected_val_loss = np.mean((val_out - np.where(data.y_val == 1, 1.0, -1.0)) ** 2)
    assert record["val_loss"] == pytest.approx(expected_val_loss, rel=1e-12)
    train_out = forward_by_hand(session, data.X_train)[:, 0]
    train_loss_now = np.mean((train_out - np.where(data.y_train == 1, 1.0, -1.0)) ** 2)
    assert abs(train_loss_now - expected_val_loss) > 1e-6  # the two splits really differ
    # the epoch's training loss is the mean of that epoch's step losses
    steps = session.history.steps
    in_epoch = steps.column("epoch") == record["epoch"] - 1
    assert in_epoch.sum() == session.steps_per_epoch
    assert record["train_loss"] == pytest.approx(steps.column("train_loss")[in_epoch].mean())


@pytest.mark.parametrize("layers", PATHS.values(), ids=PATHS.keys())
def test_fast_runs_record_the_epochs_that_stepping_records(layers):
    """Epoch records and norms are the same bits whether the epochs ran phase by phase or in
    one compiled run, also across a run that ends mid-epoch and a rewind into one."""
    stepped, fast = session_for(layers, validation=0.3), session_for(layers, validation=0.3)
    for _ in range(5 * stepped.steps_per_epoch):
        stepped.step_batch()
    fast.run_steps(7)
    fast.run_steps(5 * fast.steps_per_epoch - 7)
    assert fast.history.epochs == stepped.history.epochs
    assert fast.history.layer_norms == stepped.history.layer_norms
    fast.rewind(2 * fast.steps_per_epoch + 1)
    fast.run_steps(3 * fast.steps_per_epoch - 1)
    assert fast.history.epochs == stepped.history.epochs


def batches_of_one_epoch(session):
    """The input rows of every minibatch of the next epoch, observed after its first forward."""
    rows = []
    for _ in range(session.steps_per_epoch):
        session.step_phase()  # select batch
        session.step_phase()  # forward 0
        rows.append(session.layer_values(0)["input"])
        session.step_batch()
    return np.concatenate(rows)


def as_sorted_rows(x):
    return x[np.lexsort(x.T[::-1])]


@pytest.mark.parametrize("layers", PATHS.values(), ids=PATHS.keys())
def test_shuffled_minibatches_permute_the_training_rows_anew_each_epoch(layers):
    session = session_for(layers, validation=0.25)
    x = session.data.X_train
    first, second = batches_of_one_epoch(session), batches_of_one_epoch(session)
    for seen in (first, second):
        assert seen.shape == x.shape
        assert np.array_equal(as_sorted_rows(seen), as_sorted_rows(x))  # each row exactly once
        assert not np.array_equal(seen, x)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("layers", PATHS.values(), ids=PATHS.keys())
def test_unshuffled_minibatches_follow_the_training_rows_in_order(layers):
    session = session_for(layers, validation=0.25, shuffle=False)
    x = session.data.X_train
    assert np.array_equal(batches_of_one_epoch(session), x)
    assert np.array_equal(batches_of_one_epoch(session), x)


def test_without_shuffling_validation_is_the_files_last_rows(tmp_path):
    rows = [(i / 10, (i * 7 % 11) / 10, i % 2) for i in range(40)]
    csv = tmp_path / "ordered.csv"
    csv.write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    data = f'path = "{csv.as_posix()}"\ntarget = "label"'
    session = session_for(dataset="csv", data=data, validation=0.25, shuffle=False)
    X = np.array([r[:2] for r in rows])
    assert np.array_equal(session.data.X_train, X[:30])
    assert np.array_equal(session.data.X_val, X[30:])
    shuffled = session_for(dataset="csv", data=data, validation=0.25)
    assert not np.array_equal(shuffled.data.X_train, X[:30])
    both = np.concatenate([shuffled.data.X_train, shuffled.data.X_val])
    assert np.array_equal(as_sorted_rows(both), as_sorted_rows(X))


def test_fast_runs_train_on_the_same_minibatches_as_stepping():
    """run_steps draws the same permutations as stepping: one epoch gives the same parameters
    whichever way it runs, shuffled or not."""
    for shuffle in (True, False):
        by_hand, fast = session_for(shuffle=shuffle), session_for(shuffle=shuffle)
        for _ in range(by_hand.steps_per_epoch * 2):
            by_hand.step_batch()
        fast.run_steps(fast.steps_per_epoch * 2)
        assert np.array_equal(by_hand.model.theta, fast.model.theta), shuffle
