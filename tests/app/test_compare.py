"""A/B comparison: B is the experiment with one change; both train in lockstep on the same data
and seed, each exactly as alone; curves overlaid, outputs side by side."""

from PySide6 import QtWidgets

from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session
from tests.app.test_main_window import WAIT_MS


def test_a_and_b_train_in_lockstep_and_each_as_alone(window, qtbot):
    win = window()
    setup = win.compare()
    optimizer = setup.editor.findChild(QtWidgets.QComboBox, "choice training.optimizer")
    optimizer.setCurrentIndex(optimizer.findData("adam"))
    optimizer.activated.emit(optimizer.currentIndex())
    assert "training.optimizer: {'name': 'sgd', 'lr': 0.1} → 'adam'" in setup.summary.text()
    setup.start_button.click()
    compare = win.comparisons[0]
    assert "adam" in "; ".join(compare.lines)
    qtbot.waitUntil(lambda: len(compare.latest) == 2, timeout=WAIT_MS)
    compare.play_action.setChecked(True)
    qtbot.waitUntil(lambda: min(s.step for s in compare.latest.values()) > 150, timeout=WAIT_MS)
    compare.play_action.setChecked(False)
    qtbot.waitUntil(lambda: compare.lockstep.idle, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (
            len({s.step for s in compare.latest.values()}) == 1
            and compare.latest["A"].step == compare.services["A"].snapshot.step
        ),
        timeout=WAIT_MS,
    )
    step = compare.latest["A"].step
    assert compare.latest["B"].step == step  # lockstep: both stopped at the same step
    for name, experiment in (("A", win.experiment), ("B", setup.b)):
        alone = Session(experiment)
        alone.run_steps(step)
        assert compare.latest[name].theta.tobytes() == alone.model.theta.tobytes()
    assert Session(setup.b).data.X_train.tobytes() == Session(win.experiment).data.X_train.tobytes()
    epochs = step // 40
    for name in "AB":
        assert len(compare.curves[f"{name} train"].getData()[0]) == epochs
        assert compare.outputs[name].colours() is not None
    a, b = (compare.outputs[n].colours() for n in "AB")
    assert a.tobytes() != b.tobytes()  # side by side, and different
    assert load_experiment(default_experiment_path()) == win.experiment
