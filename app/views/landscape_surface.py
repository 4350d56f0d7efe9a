"""The loss landscape as a 3D surface (pyqtgraph's OpenGL view): only where Qt has OpenGL on a
display; ``landscape_view.gl_unavailable`` says why not elsewhere."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
import pyqtgraph.opengl as gl
from PySide6 import QtCore, QtWidgets

COLOURS = pg.colormap.get("viridis")


class SurfaceWindow(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, QtCore.Qt.WindowType.Window)  # a window of its own
        self.setWindowTitle("Gradient Lab — loss surface")
        self.view = gl.GLViewWidget()
        self.view.setCameraPosition(distance=4.0, elevation=30, azimuth=45)
        self.surface: Any = None
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.view)
        self.resize(640, 480)

    def show_result(self, result: Any) -> None:
        """Heights are log10 of the loss, scaled to the plane's width; unscanned points flat."""
        loss = np.where(result.done, result.loss, np.nan)
        z = np.log10(np.maximum(loss, 1e-12))
        finite = z[np.isfinite(z)]
        if not finite.size:
            return
        low, high = float(finite.min()), float(finite.max())
        z = np.nan_to_num((z - low) / max(high - low, 1e-12), nan=0.0)
        # one colour per vertex, in the mesh's (x, y) order (a (x, y, 4) array, as pyqtgraph's
        # documentation says, fails when the mesh is drawn)
        colours = COLOURS.map(z.T.ravel(), mode="float")
        span = float(result.x[-1] - result.x[0]) or 1.0
        if self.surface is None:
            self.surface = gl.GLSurfacePlotItem(shader=None, smooth=False)
            self.view.addItem(self.surface)
        self.surface.setData(x=result.x / span * 2, y=result.y / span * 2, z=z.T, colors=colours)
