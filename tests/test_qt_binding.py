"""The Qt binding the app runs on: PySide6 6.12.0 on Python 3.11 aborts the process after a few
hundred Signal.emit() calls (`Fatal Python error: bool_dealloc`). pyproject.toml pins a clean
version per Python; this keeps the pin honest, in a process of its own so an abort is a failure
here and not the end of the suite."""

import os
import subprocess
import sys

EMIT_10_000 = """
from PySide6.QtCore import QCoreApplication, QObject, Signal


class Source(QObject):
    fired = Signal(bool)


app = QCoreApplication([])
source = Source()
seen = []
source.fired.connect(lambda flag: seen.append(flag))
for i in range(10_000):
    source.fired.emit(i % 2 == 0)
print(len(seen), sum(seen))
"""


def test_ten_thousand_signals_reach_their_slot_and_the_process_lives():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-c", EMIT_10_000], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["10000", "5000"]
