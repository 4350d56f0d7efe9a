"""The network's output over the input plane: decision boundary, class regions or regression
surface, under the training (filled) and validation (ringed) points; for a regression on one
input, the fitted curve through the samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.palette import NEGATIVE, POSITIVE, class_colour, diverging_rgba, qcolour
from gradient_lab.app.views.steady_range import steady_plot

RESOLUTION = 80


class OutputView(QtWidgets.QWidget):
    """Shows ``snapshot.output_grid``; "Discretize" shows predicted classes only."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = steady_plot(background="w")
        self.plot.setAspectLocked(True)
        self.plot.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.train_points = pg.ScatterPlotItem(size=6, pen=pg.mkPen((60, 60, 60), width=0.6))
        self.val_points = pg.ScatterPlotItem(size=7, brush=None)
        self.plot.addItem(self.train_points)
        self.plot.addItem(self.val_points)
        self.discretize = QtWidgets.QCheckBox("Discretize")
        self.discretize.setToolTip("Colour each point of the plane by its predicted class only")
        self.discretize.toggled.connect(self._redraw)
        self.show_validation = QtWidgets.QCheckBox("Validation points")
        self.show_validation.setChecked(True)
        self.show_validation.toggled.connect(self.val_points.setVisible)
        options = QtWidgets.QHBoxLayout()
        options.addWidget(self.discretize)
        options.addWidget(self.show_validation)
        options.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot, 1)
        self.curve_plot = steady_plot(background="w", title="fitted curve")
        self.curve_plot.setMenuEnabled(False)
        self.curve_train = pg.ScatterPlotItem(size=5, brush=pg.mkBrush(POSITIVE), pen=None)
        self.curve_val = pg.ScatterPlotItem(size=6, brush=None, pen=pg.mkPen(NEGATIVE, width=1.4))
        self.fitted = self.curve_plot.plot(pen=pg.mkPen((40, 40, 40), width=2.5))
        for item in (self.curve_train, self.curve_val):
            self.curve_plot.addItem(item)
        layout.addWidget(self.curve_plot, 1)
        self.show_validation.toggled.connect(self.curve_val.setVisible)
        layout.addLayout(options)
        self.facts: Any = None
        self.grid: Any = None
        self._target_range = (-1.0, 1.0)
        self._rect = QtCore.QRectF()  # where the image is drawn, in data coordinates

    # ------------------------------------------------------------------ data
    def set_facts(self, facts: Any) -> None:
        """A new session: its points, and whether it has a plane to draw at all."""
        self.facts, self.grid, self._rect = facts, None, QtCore.QRectF()
        planar = bool(facts.planar and facts.points_train is not None)
        curve = facts.curve_train is not None
        self.setVisible(planar or curve)  # nothing to draw over: the network takes the room
        self.plot.setVisible(planar)
        self.discretize.setVisible(planar)
        self.curve_plot.setVisible(curve)
        if curve:
            self.curve_train.setData(facts.curve_train[:, 0], facts.curve_train[:, 1])
            val = facts.curve_val if facts.curve_val is not None else np.zeros((0, 2))
            self.curve_val.setData(val[:, 0], val[:, 1])
            self.fitted.setData([], [])
        if not planar:
            return
        self._points(self.train_points, facts.points_train, facts.targets_train, filled=True)
        self._points(self.val_points, facts.points_val, facts.targets_val, filled=False)
        if facts.task == "regression" and facts.targets_train is not None:
            t = np.asarray(facts.targets_train, dtype=float).ravel()
            self._target_range = (float(t.min()), float(t.max()))
        (x0, x1), (y0, y1) = facts.bounds
        self.plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def _points(self, item: Any, points: Any, targets: Any, filled: bool) -> None:
        if points is None or len(points) == 0:
            item.setData([], [])
            return
        colours = [self._point_colour(t) for t in np.asarray(targets).reshape(len(points), -1)]
        if filled:
            item.setData(points[:, 0], points[:, 1], brush=[qcolour(c) for c in colours])
        else:
            pens = [pg.mkPen(qcolour(c), width=1.6) for c in colours]
            item.setData(points[:, 0], points[:, 1], pen=pens, brush=pg.mkBrush(255, 255, 255, 160))

    def _point_colour(self, target: np.ndarray) -> tuple[int, int, int]:
        if self.facts.task == "classification":
            if self.facts.n_classes == 2:
                rgba = diverging_rgba(np.array([1.0 if target[0] == 1 else -1.0]))[0]
                return int(rgba[0]), int(rgba[1]), int(rgba[2])
            return class_colour(int(target[0]))
        low, high = self._target_range
        middle, half = 0.5 * (low + high), max(0.5 * (high - low), 1e-12)
        rgba = diverging_rgba(np.array([(float(target[0]) - middle) / half]))[0]
        return int(rgba[0]), int(rgba[1]), int(rgba[2])

    # ------------------------------------------------------------------ drawing
    def show_snapshot(self, snapshot: Any) -> None:
        if self.facts is not None and self.facts.curve_train is not None:
            self.fitted.setData(*snapshot.output_curve())
            return
        if self.facts is None or not self.facts.planar:
            return
        self.grid = snapshot.output_grid(RESOLUTION)
        self._redraw()

    def colours(self) -> np.ndarray | None:
        """The image's RGBA bytes (ny, nx, 4), as drawn."""
        grid = self.grid
        if grid is None:
            return None
        if grid.margin is not None:
            margin = np.sign(grid.margin) if self.discretize.isChecked() else grid.margin
            return diverging_rgba(margin)
        if grid.labels is not None:
            rgb = np.array([class_colour(k) for k in range(max(self.facts.n_classes, 1))])
            rgba = np.empty((*grid.labels.shape, 4), dtype=np.uint8)
            rgba[..., :3] = 255 - (255 - rgb[grid.labels]) * 0.45
            rgba[..., 3] = 255
            return rgba
        low, high = self._target_range
        middle, half = 0.5 * (low + high), max(0.5 * (high - low), 1e-12)
        values = (grid.values[..., 0] - middle) / half
        return diverging_rgba(np.round(values * 4) / 4 if self.discretize.isChecked() else values)

    def _redraw(self) -> None:
        rgba = self.colours()
        if rgba is None:
            return
        grid = self.grid
        self.image.setImage(rgba, autoLevels=False)
        dx = (grid.xs[-1] - grid.xs[0]) / max(len(grid.xs) - 1, 1)
        dy = (grid.ys[-1] - grid.ys[0]) / max(len(grid.ys) - 1, 1)
        rect = QtCore.QRectF(
            grid.xs[0] - dx / 2, grid.ys[0] - dy / 2, dx * len(grid.xs), dy * len(grid.ys)
        )
        if rect != self._rect:  # the same plane: no new transform, no new layout
            self._rect = rect
            self.image.setRect(rect)
