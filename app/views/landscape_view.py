"""The loss landscape: the loss over a plane through the current weights (Li et al.'s
filter-normalized random directions, the principal directions of the path, two chosen
weights, or the Hessian's top two eigenvectors), with the optimizer's recorded path on it and
the steps since drawn live as training goes on; the loss along the segment from the initial to
the current weights below; a 3D surface where OpenGL is available.

Every number is the engine's (``LandscapeJob``, ``line_between``, ``project``); the view
scans on a thread of its own, so training and the window go on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.landscape_runner import LandscapeRun
from gradient_lab.app.views.steady_range import steady_plot

MODES = ("random", "pca", "weights", "hessian")
SIZES = (21, 41, 61)
LIVE_POINTS = 5000
COLOURS = pg.colormap.get("viridis")


def gl_unavailable() -> str | None:
    """Why a 3D view cannot open here (None when it can)."""
    platform = QtGui.QGuiApplication.platformName()
    if platform in ("offscreen", "minimal"):
        return (
            f"3D needs OpenGL on a display; Qt's {platform!r} platform has none (the 2D map "
            "shows the same values)"
        )
    try:
        import pyqtgraph.opengl  # noqa: F401
    except Exception as exc:  # no GL library: the 2D map still works
        return f"3D needs OpenGL: {exc}"
    return None


class LandscapeView(QtWidgets.QWidget):
    def __init__(self, service: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.run = LandscapeRun(self)
        self.run.plane.connect(self.show_plane)
        self.run.line.connect(self.show_line)
        self.run.failed.connect(self._failed)
        self.run.finished.connect(self._finished)
        self.result: Any = None
        self.line_result: Any = None
        self.live: list[tuple[float, float]] = []
        self.live_version = -1
        self.own_clock = True  # draw each new point at once (else: draw_pending)
        self._pending = False
        self.facts: Any = None

        self.mode = QtWidgets.QComboBox()
        self.mode.addItems(MODES)
        self.mode.setToolTip(
            "random: filter-normalized Gaussian directions; pca: the path's principal "
            "directions; weights: two weights of your choice; hessian: the top two eigenvectors"
        )
        self.grid_size = QtWidgets.QComboBox()
        for n in SIZES:
            self.grid_size.addItem(f"{n}×{n}", n)
        self.grid_size.setCurrentIndex(1)
        self.range = QtWidgets.QDoubleSpinBox()
        self.range.setRange(0.05, 50.0)
        self.range.setValue(1.0)
        self.range.setSingleStep(0.25)
        self.range.setToolTip("The plane spans ±range along each direction")
        self.first, self.second = QtWidgets.QComboBox(), QtWidgets.QComboBox()
        for box in (self.first, self.second):
            box.setToolTip("weights mode: the weight along this axis")
        self.compute = QtWidgets.QPushButton("Compute")
        self.compute.clicked.connect(self.start)
        self.cancel = QtWidgets.QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.run.cancel)
        self.follow = QtWidgets.QCheckBox("Draw the path live")
        self.follow.setChecked(True)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QtWidgets.QLabel("Press Compute: the loss around the current weights.")
        self.status.setWordWrap(True)
        self.surface_button = QtWidgets.QPushButton("3D surface…")
        self.surface_button.clicked.connect(self.open_surface)
        self.surface: Any = None

        self.map = steady_plot(title="loss over the plane (log scale)")
        self.map.setMenuEnabled(False)
        self.image = pg.ImageItem()
        self.map.addItem(self.image)
        self.path = self.map.plot(pen=pg.mkPen("w", width=2), symbol="o", symbolSize=4)
        self.live_path = self.map.plot(pen=pg.mkPen((255, 120, 60), width=2))
        self.here = pg.ScatterPlotItem(size=12, brush=pg.mkBrush(255, 80, 40), pen="w")
        self.map.addItem(self.here)
        self.line_plot = steady_plot(title="loss from the initial (α=0) to the current (α=1)")
        self.line_plot.setMenuEnabled(False)
        self.line_plot.setLabel("bottom", "α")
        self.line_curve = self.line_plot.plot(pen=pg.mkPen((8, 119, 189), width=2))
        for alpha in (0.0, 1.0):
            self.line_plot.addItem(
                pg.InfiniteLine(
                    alpha, pen=pg.mkPen((150, 150, 150), style=QtCore.Qt.PenStyle.DashLine)
                )
            )

        self.map.setAspectLocked(True)
        controls = QtWidgets.QHBoxLayout()
        for label, widget in (
            ("directions", self.mode),
            ("grid", self.grid_size),
            ("range ±", self.range),
            ("weights", self.first),
            ("", self.second),
        ):
            if label:
                controls.addWidget(QtWidgets.QLabel(label))
            controls.addWidget(widget)
        for button in (self.compute, self.cancel, self.follow, self.surface_button):
            controls.addWidget(button)
        controls.addStretch(1)
        state = QtWidgets.QHBoxLayout()
        self.progress.setMaximumWidth(200)
        state.addWidget(self.progress)
        state.addWidget(self.status, 1)
        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        plots.addWidget(self.map)
        plots.addWidget(self.line_plot)
        plots.setSizes([500, 400])
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addLayout(state)
        layout.addWidget(plots, 1)
        self.mode.currentTextChanged.connect(self._mode_changed)
        self._mode_changed(self.mode.currentText())

    # ------------------------------------------------------------------ sessions
    def set_facts(self, facts: Any) -> None:
        """A new session: its weights to choose from, and nothing scanned yet."""
        self.run.cancel()
        self.facts, self.result, self.line_result, self.live = facts, None, None, []
        self._pending = False
        self.image.clear()
        for item in (self.path, self.live_path, self.line_curve):
            item.setData([], [])
        self.here.setData([], [])
        for box in (self.first, self.second):
            box.clear()
        for slot in facts.model.slots:
            for index in list(np.ndindex(*slot.shape))[:64]:
                label = f"{slot.key}[{', '.join(str(i) for i in index)}]"
                for box in (self.first, self.second):
                    box.addItem(label, (slot.key, index))
        self.second.setCurrentIndex(min(1, self.second.count() - 1))

    def _mode_changed(self, mode: str) -> None:
        for box in (self.first, self.second):
            box.setEnabled(mode == "weights")

    def start(self) -> None:
        service = self.service()
        if service is None:
            return
        mode = self.mode.currentText()
        r = self.range.value()
        options: dict[str, Any] = {
            "directions": mode,
            "size": self.grid_size.currentData(),
            "x_range": (-r, r),
        }
        if mode == "weights":
            options["weights"] = (self.first.currentData(), self.second.currentData())
        self.live, self.live_version = [], -1
        self.compute.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"scanning ({mode})…")
        self.run.start(service, options)

    # ------------------------------------------------------------------ results
    def show_plane(self, result: Any) -> None:
        self.result = result
        loss = np.where(result.done, result.loss, np.nan)
        shown = np.log10(np.maximum(loss, 1e-12))
        finite = shown[np.isfinite(shown)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            rgba = COLOURS.map(
                (np.nan_to_num(shown, nan=low) - low) / max(high - low, 1e-12), mode="byte"
            )
            rgba[~result.done] = (40, 40, 40, 255)
            self.image.setImage(rgba, autoLevels=False)
            dx = (result.x[-1] - result.x[0]) / max(len(result.x) - 1, 1)
            dy = (result.y[-1] - result.y[0]) / max(len(result.y) - 1, 1)
            self.image.setRect(
                QtCore.QRectF(
                    result.x[0] - dx / 2,
                    result.y[0] - dy / 2,
                    dx * len(result.x),
                    dy * len(result.y),
                )
            )
        if result.trajectory is not None and len(result.trajectory):
            self.path.setData(result.trajectory[:, 0], result.trajectory[:, 1])
        self.here.setData([0.0], [0.0])
        self.progress.setValue(int(100 * result.done.mean()))
        labels = result.directions.labels
        self.map.setLabel("bottom", labels[0])
        self.map.setLabel("left", labels[1])
        self.status.setText(self._describe(result))
        if self.surface is not None:
            self.surface.show_result(result)

    def _describe(self, result: Any) -> str:
        parts = [f"loss here {result.origin_loss:.4g}", f"{result.seconds:.1f} s"]
        if result.explained_variance is not None:
            share = ", ".join(f"{100 * v:.1f}%" for v in result.explained_variance)
            parts.append(f"explained variance {share}")
        if result.directions.eigenvalues is not None:
            parts.append(
                "eigenvalues " + ", ".join(f"{v:.4g}" for v in result.directions.eigenvalues)
            )
        if result.cancelled:
            parts.append("cancelled")
        elif not result.complete:
            parts.append("refining…")
        parts.append(result.description)
        return " · ".join(parts)

    def show_line(self, line: Any) -> None:
        self.line_result = line
        self.line_curve.setData(line.alpha, line.loss)

    def _failed(self, message: str) -> None:
        self.status.setText(f"Cannot scan: {message}")

    def _finished(self) -> None:
        self.compute.setEnabled(True)
        self.cancel.setEnabled(False)

    def show_snapshot(self, snapshot: Any) -> None:
        """Training went on: its new position on the plane (the engine's projection)."""
        result = self.result
        if result is None or not self.follow.isChecked() or snapshot.version == self.live_version:
            return
        from gradient_lab.engine.instruments.landscape.trajectory import project

        self.live_version = snapshot.version
        d = result.directions
        point = project(np.asarray(snapshot.theta)[None, :], result.center, d.d1, d.d2)[0]
        self.live.append((float(point[0]), float(point[1])))
        if len(self.live) > LIVE_POINTS:
            self.live = self.live[::2]
        self._pending = True
        if self.own_clock:
            self.draw_pending()

    def draw_pending(self) -> None:
        """Draw the live path's new points, if any (at once, or with ``own_clock`` False at
        the window's frame clock, which records a point at every frame but draws in turn)."""
        if not self._pending or not self.live:
            return
        self._pending = False
        xs, ys = zip(*self.live, strict=True)
        self.live_path.setData(xs, ys)
        self.here.setData([xs[-1]], [ys[-1]])

    # ------------------------------------------------------------------ 3D
    def open_surface(self) -> None:
        reason = gl_unavailable()
        if reason is not None:
            self.status.setText(reason)
            return
        from gradient_lab.app.views.landscape_surface import SurfaceWindow

        if self.surface is None:
            self.surface = SurfaceWindow(self)
        self.surface.show()
        if self.result is not None:
            self.surface.show_result(self.result)

    def close_scan(self) -> None:
        self.run.close()
        if self.surface is not None:
            self.surface.close()
