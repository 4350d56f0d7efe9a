"""GUI tests: the real widgets on Qt's offscreen platform, driven with pytest-qt. Every test
must leave no window open and no session thread running; a fixture fails the test that does."""

import gc
import os
import threading

import pytest

# before the first QApplication: without a display Qt would abort the whole run
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6 import QtCore, QtWidgets

from gradient_lab.app.collector import collect_anywhere
from gradient_lab.engine.cli.main import default_experiment_path

BUILD_MS = 180_000  # a session's first build may compile kernels on a cold cache
SCREENSHOTS = os.environ.get("GRADIENT_LAB_SCREENSHOTS")  # a folder to save screenshots in


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch, tmp_path):
    """Fails a test that leaves a window shown or a session thread running; each test gets a
    settings folder of its own. As in the app, Python's cycle collector runs in this thread
    only: here at the end of each test, which frees its windows before the next one starts."""
    monkeypatch.setenv("GRADIENT_LAB_CONFIG", str(tmp_path / "config"))
    gc.disable()
    try:
        yield
        _check_closed()
    finally:
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
        gc.collect()
        collect_anywhere()


def _check_closed():
    app = QtWidgets.QApplication.instance()
    if app is None:
        return
    app.processEvents()
    shown = [w for w in app.topLevelWidgets() if w.isVisible()]
    for widget in shown:
        widget.close()
    for thread in threading.enumerate():  # a cancelled scan ends within a block of points
        if thread.name == "gradient-lab landscape":
            thread.join(30)
    threads = [
        t.name
        for t in threading.enumerate()
        if t.name in ("gradient-lab session", "gradient-lab landscape")
    ]
    assert not shown, f"windows left open: {[w.windowTitle() or w for w in shown]}"
    assert not threads, f"session threads left running: {threads}"


@pytest.fixture
def window(qtbot):
    """``open(path)``: the main window on an experiment file, its session built."""
    from gradient_lab.app.main_window import MainWindow

    def open_window(path=None, options=None):
        win = MainWindow(plugin_options=options)
        qtbot.addWidget(win)
        win.show()
        win.open_experiment(path or default_experiment_path())
        qtbot.waitUntil(lambda: win.latest is not None, timeout=BUILD_MS)
        qtbot.waitUntil(lambda: win.rendered_version == win.latest.version, timeout=5000)
        return win

    return open_window


def screenshot(widget, name):
    """Save a picture of ``widget`` when GRADIENT_LAB_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        QtWidgets.QApplication.processEvents()
        widget.grab().save(os.path.join(SCREENSHOTS, f"{name}.png"))
