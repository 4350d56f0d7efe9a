"""The timeline: a slider over every step this run has reached. Dragging it back rewinds the
session; dragging it forward again replays up to where the run had got (training is exact, so
the replay is the same run, bit for bit). An edit made after going back forks the run: the old
future is gone and the slider ends at the edit."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PySide6 import QtCore, QtWidgets

from gradient_lab.app.background import when_done
from gradient_lab.app.steady_label import SteadyLabel


class Timeline(QtWidgets.QWidget):
    """Sends one rewind or replay at a time to ``service()`` and the newest wish once it is done,
    so a fast drag never piles up commands."""

    def __init__(self, service: Callable[[], Any], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.service = service
        self.head = 0  # the furthest step of the run as it stands
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setToolTip("Drag to go back to any step of the run, and forward again")
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.label = SteadyLabel("step 0 of 0", "step 999,999 of 999,999")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(QtWidgets.QLabel("Timeline"))
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._wished)
        self._wish: int | None = None
        self._busy: Future[Any] | None = None

    def clear(self) -> None:
        """A new session: nothing recorded yet."""
        self.head, self._wish, self._busy = 0, None, None
        self._show(0)

    def follow(self, snapshot: Any) -> None:
        """The session moved (trained, stepped, rewound by us): the slider shows where it is."""
        self.head = max(self.head, snapshot.step)
        if self._busy is None and self._wish is None:
            self._show(snapshot.step)

    def fork_at(self, step: int) -> None:
        """An edit at ``step`` changes what comes after it: the run now ends there."""
        self.head = step
        self._show(step)

    def _show(self, step: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setMaximum(self.head)
        self.slider.setValue(step)
        self.slider.blockSignals(False)
        self.label.setText(f"step {step:,} of {self.head:,}")

    def _wished(self, step: int) -> None:
        self._wish = step
        self.label.setText(f"step {step:,} of {self.head:,}")
        self._next()

    def _next(self) -> None:
        service = self.service()
        if service is None or self._wish is None:
            return
        if self._busy is not None and not self._busy.done():
            return
        target, self._wish = self._wish, None
        if service.snapshot.playing:
            service.pause()
        self._busy = service.go_to(target)
        when_done(self, self._busy, self._done)

    def _done(self, future: Future[Any]) -> None:
        self._busy = None
        if self._wish is not None:
            self._next()
            return
        snapshot = self.service().snapshot if self.service() is not None else None
        if snapshot is not None:
            self._show(snapshot.step)
