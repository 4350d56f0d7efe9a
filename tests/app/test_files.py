"""Files: save and open round trip, recent files, and recovery of a run after the app was
killed (kill -9): the autosave rebuilds the run, edits included, bit for bit."""

import os
import signal
import subprocess
import sys
import textwrap

from PySide6 import QtWidgets

from gradient_lab.app import autosave
from gradient_lab.engine.cli.main import default_experiment_path
from gradient_lab.engine.training.experiment import load_experiment
from gradient_lab.engine.training.session import Session
from tests.app.test_main_window import WAIT_MS, settle


def test_save_as_then_open_round_trip_and_recent_files(window, qtbot, tmp_path, monkeypatch):
    win = window()
    target = tmp_path / "circle lesson"
    asked = []

    def dialog(*args):
        asked.append(args[1])
        return str(target), "Experiments (*.toml)"

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", dialog)
    assert win.save()  # the default experiment is built in: Save asks where
    saved = tmp_path / "circle lesson.toml"
    assert asked == ["Save the experiment"] and saved.is_file()
    assert load_experiment(saved) == load_experiment(default_experiment_path())
    assert win.windowTitle() == "Gradient Lab — circle lesson"
    assert win.save() and asked == ["Save the experiment"]  # now a file of the user's
    first = win.latest.facts
    win.open_experiment(saved)
    qtbot.waitUntil(lambda: win.latest is not None and win.latest.facts is not first)
    assert win.recent_files()[0] == str(saved.resolve())
    win._fill_recent()
    assert win.recent_menu.actions()[0].text() == str(saved.resolve())


def test_a_folder_that_cannot_be_written_gets_a_message(window, tmp_path, monkeypatch):
    win = window()
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    target = tmp_path / "notes.txt" / "x.toml"  # refused even to root
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a: (str(target), ""))
    assert not win.save_as()
    dialog = win.findChild(QtWidgets.QMessageBox, "error dialog")
    assert "x.toml" in dialog.text() and dialog.isVisible()
    dialog.close()
    assert win.windowTitle() == "Gradient Lab — default_experiment"


KILLED_APP = textwrap.dedent("""
    import os, signal, sys, time
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtWidgets
    from gradient_lab.app.main import application, open_window
    from gradient_lab.engine.cli.main import default_experiment_path

    app = application()
    win = open_window(default_experiment_path())

    def wait(condition):
        while not condition():
            app.processEvents()
            time.sleep(0.005)

    wait(lambda: win.latest is not None)
    win.service().run(60).result(120)
    wait(lambda: win.latest.step == 60)
    QtWidgets.QInputDialog.getDouble = lambda *a: (-1.25, True)
    edge = win.network.edges[3]
    win.edit_value(edge.key, edge.index)
    win.service().run(25).result(120)
    win.autosaver.save(force=True).result(120)
    print(edge.key, *edge.index, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no clean close, the autosave stays
""")


def test_a_killed_session_is_recovered_with_its_edits(window, qtbot, tmp_path):
    env = {**os.environ, "GRADIENT_LAB_CONFIG": os.environ["GRADIENT_LAB_CONFIG"]}
    child = subprocess.run(
        [sys.executable, "-c", KILLED_APP], env=env, capture_output=True, text=True, timeout=600
    )
    key, *index = child.stdout.split()
    assert child.returncode == -signal.SIGKILL and autosave.leftover() is not None
    win = window()
    win.offer_recovery()
    qtbot.waitUntil(lambda: win.findChild(QtWidgets.QMessageBox, "recovery dialog") is not None)
    dialog = win.findChild(QtWidgets.QMessageBox, "recovery dialog")
    assert "step 85" in dialog.text() and "1 edit" in dialog.text()
    dialog.button(QtWidgets.QMessageBox.StandardButton.Yes).click()
    snap = settle(qtbot, win, lambda s: s.step == 85)
    bare = Session(load_experiment(default_experiment_path()))
    bare.run_steps(60)
    bare.set_weight(key, tuple(int(i) for i in index), -1.25)
    bare.run_steps(25)
    assert snap.theta.tobytes() == bare.model.theta.tobytes()
    assert win.windowTitle() == "Gradient Lab — default_experiment (recovered)"
    assert win.timeline.slider.maximum() == 85


def test_declining_recovery_keeps_the_autosave_once_and_a_clean_close_leaves_none(window, qtbot):
    win = window()
    win.service().run(10).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 10)
    win.autosaver.save(force=True).result(WAIT_MS / 1000)
    assert autosave.leftover() is not None
    win.offer_recovery()
    qtbot.waitUntil(lambda: win.findChild(QtWidgets.QMessageBox, "recovery dialog") is not None)
    dialog = win.findChild(QtWidgets.QMessageBox, "recovery dialog")
    dialog.button(QtWidgets.QMessageBox.StandardButton.No).click()
    qtbot.waitUntil(lambda: autosave.leftover() is None)
    assert autosave.autosave_path().with_name("run.json.previous").is_file()
    assert win.latest.step == 10  # the session in the window goes on
    win.service().run(5).result(WAIT_MS / 1000)
    settle(qtbot, win, lambda s: s.step == 15)
    win.autosaver.save(force=True).result(WAIT_MS / 1000)
    win.close()
    assert autosave.leftover() is None
