"""The history's memory stays bounded: epoch records and per-layer norms are thinned evenly."""

import numpy as np

from gradient_lab.engine.training.history import History
from tests.experiments import dense, small_session

STEPS_PER_EPOCH = 40  # the default experiment's: 400 training samples, batches of 10


def add_epochs(history, first, last):
    for epoch in range(first, last + 1):
        step = epoch * STEPS_PER_EPOCH
        history.add_norms({"step": step, "layers.0.grad_norm": 1.0 / epoch})
        history.add_epoch({"epoch": epoch, "step": step, "train_loss": 1.0 / epoch})


def test_epoch_records_and_norms_stay_below_the_capacity_after_many_epochs():
    history = History(epoch_capacity=100)
    first = 1
    for last in (1_000, 25_000, 100_001):
        add_epochs(history, first, last)
        first = last + 1
        for records in (history.epochs, history.layer_norms):
            assert len(records) <= 100
            assert records[0]["step"] == STEPS_PER_EPOCH  # the first is always there
            assert records[-1]["step"] == last * STEPS_PER_EPOCH  # the latest is always there
        steps = np.array([r["step"] for r in history.epochs[1:-1]])
        assert len(np.unique(np.diff(steps))) == 1  # evenly thinned between the two
        assert len(history.epochs) > 100 // 2 - 2  # thinning keeps about half at least
    assert [r["step"] for r in history.layer_norms] == [r["step"] for r in history.epochs]


def test_a_session_keeps_its_first_and_latest_epoch_within_the_capacity():
    session = small_session([dense(3, "tanh"), dense(1, "tanh")], dataset="circle", data="n = 40")
    session.history = History(epoch_capacity=8)
    session.run_epochs(50)
    epochs = [r["epoch"] for r in session.history.epochs]
    assert len(epochs) <= 8 and epochs[0] == 1 and epochs[-1] == 50
    assert session.history.epochs[-1]["step"] == session.step
    session.rewind(session.step - 7)
    assert session.history.epochs[-1]["step"] <= session.step
    session.run_epochs(3)
    assert len(session.history.epochs) <= 8
    assert session.history.epochs[-1]["epoch"] == session.epoch


def _thinned_session(keep_everything):
    session = small_session([dense(3, "tanh"), dense(1, "tanh")], dataset="circle", data="n = 40")
    session.history = History(epoch_capacity=8)
    evaluated = []
    evaluate = session._epoch_evaluation
    session._epoch_evaluation = lambda *a: evaluated.append(session.step) or evaluate(*a)
    if keep_everything:
        session.history.keeps = lambda step: True
    return session, evaluated


def test_epochs_the_thinned_history_drops_are_not_evaluated_and_the_kept_ones_are_the_same():
    lazy, evaluated = _thinned_session(keep_everything=False)
    full, every = _thinned_session(keep_everything=True)
    for session in (lazy, full):
        session.run_steps(5 * session.steps_per_epoch + 3)  # fast calls of uneven length
        for size in (1, 17, 400, 3 * session.steps_per_epoch, 2000):
            session.run_steps(size)
    assert lazy.fused is not None and lazy.step == full.step
    assert lazy.history.epochs == full.history.epochs  # the same records, bit for bit
    assert lazy.history.layer_norms == full.history.layer_norms
    assert "train_accuracy" in lazy.history.epochs[-1]  # the latest is complete
    assert len(every) == full.epoch and len(evaluated) < full.epoch / 4


def test_epochs_run_unevaluated_for_a_while_leave_no_record_without_its_numbers():
    session, _ = _thinned_session(keep_everything=False)
    session.evaluate_epochs = False  # the strides of records and norms part
    session.run_steps(100 * session.steps_per_epoch)
    session.evaluate_epochs = True
    for size in (7 * session.steps_per_epoch, 3, 5 * session.steps_per_epoch):
        session.run_steps(size)
    assert session.history.epoch_stride != session.history.norms_stride
    assert all(len(r) > 1 for r in session.history.layer_norms)  # no placeholder stayed
    evaluated = [r for r in session.history.epochs if r["step"] > 100 * session.steps_per_epoch]
    assert evaluated and all("train_accuracy" in r for r in evaluated)
