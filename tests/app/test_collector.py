"""The app collects reference cycles in the GUI thread only, from a timer: left automatic, a
collection triggered while PySide converts Qt's list of top-level widgets deleted a window that
list still pointed to, and the process crashed."""

import os
import subprocess
import sys

# Many windows held only by reference cycles, freed by the collector while Qt's list of
# top-level widgets is being converted (a threshold of 1 collects at every allocation); then
# the GUI thread's timer frees them.
SCRIPT = """
import gc
from PySide6 import QtCore, QtWidgets
from gradient_lab.app.collector import settle_heap
from gradient_lab.app.main import application

app = application()
settle_heap()  # what exists now is frozen; what comes after is still collected

class Held(QtWidgets.QWidget):
    def __init__(self):
        super().__init__()
        self.me = self

for _ in range(100):
    for _ in range(10):
        Held()
    gc.set_threshold(1)
    [w.isVisible() for w in app.topLevelWidgets()]
    gc.set_threshold(700)
left = len(app.topLevelWidgets())
QtCore.QTimer.singleShot(1500, app.quit)
app.exec()
print(left, len(app.topLevelWidgets()), gc.get_freeze_count() > 0)
"""


def test_cycles_are_collected_by_the_gui_threads_timer_and_never_mid_call():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    left, after_timer, frozen = result.stdout.split()
    assert int(left) == 1000  # nothing collected during the calls
    assert int(after_timer) == 0  # the timer collected them all
    assert frozen == "True"


def test_back_to_automatic_collection_nothing_stays_frozen(qtbot):
    import gc

    from gradient_lab.app.collector import collect_anywhere, collect_in_gui_thread, settle_heap

    settle_heap()
    assert gc.get_freeze_count() == 0  # the app's own policy only: here, tests collect
    collect_in_gui_thread()
    assert not gc.isenabled()
    settle_heap()
    assert gc.get_freeze_count() > 0
    collect_anywhere()
    assert gc.isenabled() and gc.get_freeze_count() == 0
