"""A teacher hides views and locks controls; Save keeps it in the experiment file and opening
the file brings the window back that way."""

from PySide6 import QtWidgets

from gradient_lab.engine.training.experiment import load_experiment
from tests.app.test_main_window import WAIT_MS


def test_hidden_and_locked_settings_are_saved_and_come_back(window, qtbot, tmp_path, monkeypatch):
    win = window()
    dialog = win.classroom_settings()
    dialog.hide_boxes["landscape"].setChecked(True)
    dialog.hide_boxes["timeline"].setChecked(True)
    dialog.lock_boxes["editor"].setChecked(True)
    dialog.lock_boxes["weights"].setChecked(True)
    dialog.accept()
    assert not win.landscape_dock.isVisible()
    assert not win.landscape_dock.toggleViewAction().isEnabled()
    assert not win.timeline.isVisible() and not win.editor.isEnabled()
    asked = []
    monkeypatch.setattr(QtWidgets.QInputDialog, "getDouble", lambda *a: asked.append(a))
    edge = win.network.edges[0]
    win.edit_value(edge.key, edge.index)
    assert asked == [] and "locked" in win.statusBar().currentMessage()

    target = tmp_path / "lesson.toml"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a: (str(target), ""))
    assert win.save_as()
    saved = load_experiment(target)
    assert saved.classroom.hide == ["landscape", "timeline"]
    assert saved.classroom.lock == ["editor", "weights"]

    win.curves.clear()
    first = win.latest.facts
    win.open_experiment(target)
    qtbot.waitUntil(
        lambda: win.latest is not None and win.latest.facts is not first, timeout=WAIT_MS
    )
    assert not win.landscape_dock.toggleViewAction().isEnabled() and not win.editor.isEnabled()

    dialog = win.classroom_settings()
    for box in (*dialog.hide_boxes.values(), *dialog.lock_boxes.values()):
        box.setChecked(False)
    dialog.accept()
    assert win.landscape_dock.toggleViewAction().isEnabled() and win.editor.isEnabled()
    assert win.timeline.isVisible() and not win.weights_locked
