"""Python's cycle collector, run only in the GUI thread.

Left automatic, the collector runs wherever an allocation happens to trigger it: in a
session's worker thread, where freeing a window held only by a reference cycle deletes a Qt
widget outside the GUI thread; or in the middle of PySide turning Qt's list of top-level
widgets into Python objects, where it deleted a closed window the list still pointed to (a
segmentation fault). So the app turns automatic collection off and collects from a timer in
the GUI thread instead, with pyqtgraph's collector.

A full collection looks at every object there is: 60–80 ms for the 174,000 the engine, its
plugins and the window leave, once every 50 s or so. So once a session is ready the heap is
collected once and frozen (``settle_heap``): the collections after it look only at what is
newer, about 1 ms."""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

# often, so each collection has few objects to look at: every 0.5 s, a pass over the younger
# generations took 25 ms every 5 s; every 0.05 s, 0.5 ms
INTERVAL_S = 0.05

_collector: GarbageCollector | None = None


def collect_in_gui_thread() -> None:
    """Automatic collection off; a GUI-thread timer collects instead (once per process; a
    QApplication must exist)."""
    global _collector
    if _collector is None:
        _collector = GarbageCollector(interval=INTERVAL_S)


def settle_heap() -> None:
    """What exists now lives on (a session just built, its kernels just compiled): collect
    once, then freeze it out of the collections to come. Garbage made before is freed now;
    what a later session frees is collected as usual. Only where the GUI thread collects."""
    if _collector is None:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def collect_anywhere() -> None:
    """Back to Python's automatic collection: the timer stops, nothing stays frozen."""
    global _collector
    if _collector is not None:
        _collector.timer.stop()
        _collector = None
    gc.unfreeze()
    gc.enable()
