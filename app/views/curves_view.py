"""Training curves: the loss of every step and of every epoch (training and validation), and the
epoch metrics, with a log scale and the values under the mouse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from gradient_lab.app.palette import CLASS_COLOURS
from gradient_lab.app.views.history_clock import HistoryClock
from gradient_lab.app.views.steady_range import steady_plot

STEP_PEN = pg.mkPen((150, 150, 150), width=1)
REDRAW_MS = 100  # on its own clock, curves of 10⁵ points redraw at most ten times a second


class RowBuffer:
    """Rows appended in place, in a buffer that doubles when full: the history's step rows
    arrive a few at a time and are drawn whole (joining them at each frame copied them all)."""

    def __init__(self, columns: int = 3) -> None:
        self._buffer = np.zeros((1024, columns))
        self._count = 0

    def extend(self, rows: np.ndarray) -> None:
        end = self._count + len(rows)
        if end > len(self._buffer):
            grown = np.zeros((max(end, 2 * len(self._buffer)), self._buffer.shape[1]))
            grown[: self._count] = self._buffer[: self._count]
            self._buffer = grown  # rows handed out before stay as they were
        self._buffer[self._count : end] = rows
        self._count = end

    def truncate(self, count: int) -> None:
        """Keep the first ``count`` rows."""
        self._count = min(self._count, count)

    @property
    def rows(self) -> np.ndarray:
        return self._buffer[: self._count]


class EpochTable:
    """The epoch records the snapshots deliver, and beside them their numbers as a table (the
    step, then one column per key of a split, such as ``val_loss``), updated by the new rows
    only: thousands of records were read again at every frame."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self._table = RowBuffer(1)

    def add(self, snap: Any) -> None:
        """Bring the records and the table up to ``snap`` (reset, replaced or added to)."""
        if snap.history_reset:
            self.keys, self._table = [], RowBuffer(1)
        snap.merge_epochs(self.records)
        new = snap.new_epochs
        keys = {k for r in new for k in r if k.startswith(("train_", "val_"))}
        if not keys <= set(self.keys):  # a new column: the table is built again, once
            self.keys = sorted(keys.union(self.keys))
            self._table = RowBuffer(1 + len(self.keys))
            new = tuple(self.records)
        self._table.truncate(len(self.records) - len(new))  # what stays as it was
        self._table.extend(self._rows(new))

    def _rows(self, records: Any) -> np.ndarray:
        table = [[r["step"], *(r.get(k, np.nan) for k in self.keys)] for r in records]
        return np.array(table, dtype=float).reshape(len(records), 1 + len(self.keys))

    @property
    def steps(self) -> np.ndarray:
        return self._table.rows[:, 0]

    def column(self, key: str) -> np.ndarray:
        return self._table.rows[:, 1 + self.keys.index(key)]


class CurvesView(QtWidgets.QWidget):
    """Keeps the history the snapshots deliver (new rows each time, or all after a reset)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_plot = steady_plot(background="w", title="loss")
        self.metric_plot = steady_plot(background="w", title="metrics per epoch")
        for plot, corner in ((self.loss_plot, (-10, 10)), (self.metric_plot, (-10, -30))):
            plot.addLegend(offset=corner)
            plot.setMenuEnabled(False)
            plot.setLabel("bottom", "step")
        self.step_curve = self.loss_plot.plot(pen=STEP_PEN, name="step loss")
        self.step_curve.setDownsampling(auto=True, method="peak")
        self.step_curve.setClipToView(True)
        self.epoch_curves: dict[str, Any] = {}
        self.metric_curves: dict[str, Any] = {}
        self.log_scale = QtWidgets.QCheckBox("Log scale")
        self.log_scale.toggled.connect(lambda on: self.loss_plot.setLogMode(y=on))
        self.readout = QtWidgets.QLabel(" ")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.log_scale)
        bar.addWidget(self.readout, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.metric_plot)
        layout.addLayout(plots, 1)
        layout.addLayout(bar)
        self._rows = RowBuffer()  # every step row received
        # the epoch records, and the split's numbers they carry (the instruments' own, such as
        # sharpness, have docks of their own)
        self._epochs = EpochTable()
        self.history_clock = HistoryClock(self._redraw, REDRAW_MS, self)
        self._hover = pg.SignalProxy(
            self.loss_plot.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved
        )

    def clear(self) -> None:
        self._rows, self._epochs = RowBuffer(), EpochTable()
        self._redraw()

    def add_snapshots(self, snapshots: list[Any]) -> None:
        """Take each snapshot's new history rows, in order."""
        for snap in snapshots:
            if snap.history_reset:
                self._rows = RowBuffer()
            if len(snap.new_steps):
                self._rows.extend(snap.new_steps)
            self._epochs.add(snap)
        self.history_clock.mark()

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """Every epoch record received (thinned as the engine thins them)."""
        return self._epochs.records

    @property
    def steps(self) -> np.ndarray:
        """Every step row received, (step, epoch, loss)."""
        return self._rows.rows

    def _redraw(self) -> None:
        rows = self.steps
        self.step_curve.setData(rows[:, 0] + 1, rows[:, 2])
        steps, keys = self._epochs.steps, self._epochs.keys
        for i, key in enumerate(keys):
            is_loss = key.endswith("_loss")
            curves, plot = (
                (self.epoch_curves, self.loss_plot)
                if is_loss
                else (self.metric_curves, self.metric_plot)
            )
            if key not in curves:
                colour = CLASS_COLOURS[(i + 1) % len(CLASS_COLOURS)]
                style = pg.mkPen(colour, width=2.2 if key.startswith("val") else 1.6)
                curves[key] = plot.plot(pen=style, name=key.replace("_", " "), symbol=None)
            curves[key].setData(steps, self._epochs.column(key))
        for curves in (self.epoch_curves, self.metric_curves):
            for key, curve in curves.items():
                if key not in keys:
                    curve.setData([], [])

    def latest(self) -> dict[str, float]:
        """The newest epoch's values, as the legend shows them."""
        return {
            k: v
            for k, v in (self.epochs[-1] if self.epochs else {}).items()
            if isinstance(v, float)
        }

    def _mouse_moved(self, event: tuple[Any, ...]) -> None:
        position = event[0]
        if not self.loss_plot.sceneBoundingRect().contains(position) or not len(self.steps):
            return
        x = self.loss_plot.getPlotItem().vb.mapSceneToView(position).x()
        row = self.steps[min(np.searchsorted(self.steps[:, 0] + 1, x), len(self.steps) - 1)]
        self.readout.setText(f"step {int(row[0]) + 1}: loss {row[2]:.4g} (epoch {int(row[1]) + 1})")
