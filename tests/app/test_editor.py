"""The experiment editor: build a network by clicking, values the engine refuses marked on the
field, the learning rate changed live and rewound across, undo and redo, and a drop-in plugin
offered at once with a working form."""

import shutil
from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.editor.experiment_editor import live_change
from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session
from tests.app.test_main_window import WAIT_MS, settle

DROPINS = Path(__file__).parent.parent / "dropins"


def click(win, name, qtbot):
    button = win.editor.findChild(QtWidgets.QAbstractButton, name)
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)


def test_building_a_network_by_clicking_and_reinitializing(window, qtbot):
    win = window()
    win.editor.confirm = lambda: True
    click(win, "add layer", qtbot)
    click(win, "units 0 +", qtbot)
    click(win, "units 0 +", qtbot)
    layers = win.editor.doc["model"]["layers"]
    assert [layer.get("units") for layer in layers] == [6, 4, 4, 1]
    assert win.editor.apply_button.isEnabled()  # structural: waits for Re-initialize
    assert len(win.latest.facts.model.nodes) == 3
    win.editor.apply_button.click()
    snap = settle(qtbot, win, lambda s: len(s.facts.model.nodes) == 4)
    assert snap.parameters()["layers.0.W"].shape == (2, 6)
    assert [c.units for c in win.network.columns] == [2, 6, 4, 4, 1]
    assert not win.editor.apply_button.isEnabled()


def test_a_refused_value_is_marked_with_the_engine_s_message(window):
    win = window()
    field = win.editor.fields["training.optimizer.lr"]
    field.widget.setText("-1")
    field.widget.editingFinished.emit()
    assert "expected a number >= 0" in field.error and field.widget.styleSheet()
    assert win.editor.doc["training"]["optimizer"] == {"name": "sgd", "lr": 0.1}
    units = win.editor.fields["model.layers[0].units"]
    for _ in range(4):
        win.editor.change_units(0, -1)
    assert win.editor.doc["model"]["layers"][0]["units"] == 1
    assert "expected a whole number >= 1" in units.error


def test_the_learning_rate_changes_live_and_a_rewind_replays_the_change(window, qtbot):
    win = window()
    win.service().run(30).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 30)
    field = win.editor.fields["training.optimizer.lr"]
    field.widget.setText("0.5")
    field.widget.editingFinished.emit()
    edits = win.service().call(lambda s: list(s.edits.edits)).result(WAIT_MS / 1000)
    assert [(e.step, e.target, e.name, e.value) for e in edits] == [(30, "optimizer", "lr", 0.5)]
    assert not win.editor.apply_button.isEnabled()  # live: nothing to re-initialize
    win.service().run(20).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 50)
    win.timeline.slider.setValue(10)
    settle(qtbot, win, lambda s: s.step == 10)
    win.timeline.slider.setValue(50)
    snap = settle(qtbot, win, lambda s: s.step == 50)
    bare = Session(load_experiment(default_experiment_path()))
    bare.run_steps(30)
    bare.set_hyperparameter("optimizer", "lr", 0.5)
    bare.run_steps(20)
    assert snap.theta.tobytes() == bare.model.theta.tobytes()


def test_undo_and_redo_every_edit(window, qtbot):
    win = window()
    field = win.editor.fields["training.optimizer.lr"]
    field.widget.setText("0.3")
    field.widget.editingFinished.emit()
    win.editor.add_layer()
    assert len(win.editor.doc["model"]["layers"]) == 4
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert len(win.editor.doc["model"]["layers"]) == 3 and not win.editor.apply_button.isEnabled()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert win.editor.fields["training.optimizer.lr"].widget.text() == "0.1"
    lr = win.service().call(lambda s: (s.optimizer.hp["lr"], [e.value for e in s.edits.edits]))
    assert lr.result(WAIT_MS / 1000) == (0.1, [0.3, 0.1])  # undo is a recorded edit too
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Y, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert win.editor.fields["training.optimizer.lr"].widget.text() == "0.3"


def test_a_weight_edit_is_undone_too(window, qtbot, monkeypatch):
    win = window()
    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", lambda *a: (2.0, True))
    edge = win.network.edges[0]
    before = float(win.latest.parameters()[edge.key][edge.index])
    win.edit_value(edge.key, edge.index)
    settle(qtbot, win, lambda s: s.parameters()[edge.key][edge.index] == 2.0)
    win.editor.undo_stack.undo()
    settle(qtbot, win, lambda s: s.parameters()[edge.key][edge.index] == before)


def test_a_drop_in_plugin_gets_a_working_form_at_once(window, qtbot, tmp_path):
    shutil.copy(DROPINS / "good_softsign.py", tmp_path / "good_softsign.py")
    from gradient_lab.app.session_loader import PluginOptions

    win = window()
    registry = __import__(
        "gradient_lab.app.session_loader", fromlist=["load_registry"]
    ).load_registry(PluginOptions(plugins_dir=str(tmp_path)))
    win.editor.set_experiment(win.experiment, registry)
    activation = win.editor.fields["model.layers[0].activation"].widget
    assert activation.findData("softsign") >= 0
    activation.setCurrentIndex(activation.findData("softsign"))
    activation.activated.emit(activation.currentIndex())
    assert win.editor.doc["model"]["layers"][0]["activation"] == "softsign"
    assert win.editor.apply_button.isEnabled()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d["training"]["optimizer"].update(lr=0.5), ("optimizer", "lr", 0.5)),
        (lambda d: d["training"].update(batch_size=20), ("batch_size", "", 20)),
        (lambda d: d["training"].update(optimizer="adam"), None),
        (lambda d: d["model"]["layers"][0].update(units=5), None),
        (lambda d: d.update(seed=3), None),
    ],
)
def test_what_applies_live_and_what_needs_new_weights(change, expected):
    import copy

    from gradient_lab.engine.training.experiment import experiment_to_dict

    old = experiment_to_dict(load_experiment(default_experiment_path()))
    new = copy.deepcopy(old)
    change(new)
    assert live_change(old, new) == expected


def test_a_new_plugin_written_from_the_app_is_a_choice_in_the_editor(
    window, qtbot, tmp_path, monkeypatch
):
    from PySide6 import QtGui

    from gradient_lab.app.session_loader import PluginOptions

    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl", lambda url: opened.append(url))
    win = window(options=PluginOptions(plugins_dir=str(tmp_path)))
    with qtbot.waitSignal(win.plugins.registry_changed, timeout=WAIT_MS):
        written = win.plugins.new_plugin("activation")
    name = written.stem
    assert opened[0].toLocalFile() == str(written)  # opened in the system editor
    assert name in win.registry.names("activation")
    activation = win.editor.fields["model.layers[0].activation"].widget
    assert activation.findData(name) >= 0
    assert win.latest.facts.model.nodes[0].layer.act.name == "tanh"  # the session goes on


def test_a_schedule_is_chosen_with_its_form_and_none_removes_it(window):
    win = window()
    box = win.editor.findChild(QtWidgets.QComboBox, "choice training.schedule")
    assert box.currentText() == "none"
    box.setCurrentIndex(box.findData("step"))
    box.activated.emit(box.currentIndex())
    assert win.editor.doc["training"]["schedule"] == "step"
    assert "training.schedule.gamma" in win.editor.fields  # its parameters, as declared
    box = win.editor.findChild(QtWidgets.QComboBox, "choice training.schedule")
    box.setCurrentIndex(box.findData(""))
    box.activated.emit(box.currentIndex())
    assert "schedule" not in win.editor.doc["training"]
