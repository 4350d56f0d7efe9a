"""Python's cycle collector, run only in the GUI thread.

Left automatic, the collector runs wherever an allocation happens to trigger it: in a
session's worker thread, where freeing a window held only by a reference cycle deletes a Qt
widget outside the GUI thread; or in the middle of PySide turning Qt's list of top-level
widgets into Python objects, where it deleted a closed window the list still pointed to (a
segmentation fault). So the app turns automatic collection off and collects from a timer in
the GUI thread instead, with pyqtgraph's collector."""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

INTERVAL_S = 0.5  # while playing, its collections take about 0.1% of the window's time

_collector: GarbageCollector | None = None


def collect_in_gui_thread() -> None:
    """Automatic collection off; a GUI-thread timer collects instead (once per process; a
    QApplication must exist)."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=INTERVAL_S)


def collect_anywhere() -> None:
    """Back to Python's automatic collection: the timer stops."""
    global _collector
    if _collector is not None:
        _collector.timer.stop()
        _collector = None
    gc.enable()
