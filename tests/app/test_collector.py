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
from gradient_lab.app.main import application

app = application()

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
print(left, len(app.topLevelWidgets()))
"""


def test_cycles_are_collected_by_the_gui_threads_timer_and_never_mid_call():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    left, after_timer = map(int, result.stdout.split())
    assert left == 1000  # nothing collected during the calls
    assert after_timer == 0  # the timer collected them all
