"""When a view draws the history it keeps: views that receive every snapshot (curves, the
weights' histograms over time, the update ratios) draw what came since their last drawing at
most so often. Alone, a view has its own timer; in the main window, ``own`` is turned off and
the window's frame clock calls ``draw_pending`` when it is the view's turn."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtCore


class HistoryClock(QtCore.QObject):
    """``mark()`` when new history arrives; ``draw`` runs at the next ``draw_pending()``, which
    the timer calls ``interval_ms`` after the first mark when ``own`` is on."""

    def __init__(self, draw: Callable[[], None], interval_ms: int, parent: QtCore.QObject):
        super().__init__(parent)
        self.own = True
        self._draw = draw
        self._pending = False
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.draw_pending)

    def mark(self) -> None:
        """New history to draw."""
        self._pending = True
        if self.own and not self._timer.isActive():
            self._timer.start()

    def draw_pending(self) -> None:
        """Draw the history received since the last drawing, if any."""
        if self._pending:
            self._pending = False
            self._draw()
