"""Curvature along training: the top Hessian eigenvalue (sharpness) measured every few epochs,
against gradient descent's stability edge 2/η. A quadratic with curvature λ diverges once
λ > 2/η; sharpness rising to the edge and hovering there is the "edge of stability".

Measuring is the engine's ``SharpnessRecorder`` (power iterations on the full training set);
it is attached on request, since every measurement costs about as much as an epoch."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.views.steady_range import steady_plot

KEYS = ("top_eigenvalue", "stability_edge")


class CurvatureView(QtWidgets.QWidget):
    def __init__(self, service: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.every = QtWidgets.QSpinBox()
        self.every.setRange(1, 1000)
        self.every.setToolTip("Measure at the end of every this many epochs")
        self.start_button = QtWidgets.QPushButton("Measure sharpness")
        self.start_button.setToolTip(
            "Attach the engine's sharpness recorder: the top Hessian eigenvalue of the training "
            "loss, by 20 power iterations, at each measured epoch's end"
        )
        self.start_button.clicked.connect(self.start)
        self.status = QtWidgets.QLabel("Not measuring: press Measure sharpness, then train.")
        self.plot = steady_plot(title="top Hessian eigenvalue and the stability edge 2/η")
        self.plot.setMenuEnabled(False)
        self.plot.setLogMode(y=True)
        self.plot.setLabel("bottom", "step")
        self.plot.addLegend(offset=(-10, 10))
        self.sharpness = self.plot.plot(
            pen=pg.mkPen((8, 119, 189), width=2), symbol="o", symbolSize=5, name="top eigenvalue"
        )
        self.edge = self.plot.plot(
            pen=pg.mkPen((213, 94, 0), width=2, style=QtCore.Qt.PenStyle.DashLine),
            name="2 / learning rate",
        )
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("every"))
        bar.addWidget(self.every)
        bar.addWidget(QtWidgets.QLabel("epochs"))
        bar.addWidget(self.start_button)
        bar.addWidget(self.status, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        self.records: list[dict[str, Any]] = []
        self.measuring = False

    def clear(self) -> None:
        """A new session: not measuring, nothing measured."""
        self.records, self.measuring = [], False
        self.start_button.setEnabled(True)
        self.every.setEnabled(True)
        self.status.setText("Not measuring: press Measure sharpness, then train.")
        self._redraw()

    def start(self) -> None:
        service = self.service()
        if service is None or self.measuring:
            return
        every = self.every.value()

        def attach(session: Any) -> None:
            from gradient_lab.engine.instruments.curvature import SharpnessRecorder

            SharpnessRecorder(session, every_epochs=every)

        service.call(attach)
        self.measuring = True
        self.start_button.setEnabled(False)
        self.every.setEnabled(False)
        self.status.setText(f"Measuring every {every} epoch(s) from now on.")

    def add_snapshots(self, snapshots: list[Any]) -> None:
        """Measurements arrive in the epoch records (a rewind resends them all)."""
        before = list(self.records)
        for snap in snapshots:
            snap.merge_epochs(self.records, keep=lambda record: KEYS[0] in record)
        if self.records != before:
            self._redraw()

    def _redraw(self) -> None:
        steps = [r["step"] for r in self.records]
        self.sharpness.setData(steps, [r[KEYS[0]] for r in self.records])
        self.edge.setData(steps, [r[KEYS[1]] for r in self.records])
        if self.records:
            last = self.records[-1]
            ratio = last[KEYS[0]] / last[KEYS[1]]
            self.status.setText(
                f"step {last['step']}: sharpness {last[KEYS[0]]:.4g}, edge 2/η = "
                f"{last[KEYS[1]]:.4g} ({100 * ratio:.0f}% of it)"
            )
