"""The Weights dock: the chosen layer's weights as a heat map and as a Hinton diagram, and how
its weights spread over training (a histogram per moment, stacked back in time).

Every number comes from the snapshot (``parameters``, ``layer_stats``, ``histograms``); this
module only turns them into colours and pixels. The history is kept per snapshot, evenly
thinned (``Timeline``), so a long run costs the same memory as a short one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.palette import MIDDLE, NEGATIVE, POSITIVE, diverging_rgba
from gradient_lab.app.views.history_clock import HistoryClock
from gradient_lab.app.views.steady_range import SteadyRange, steady_plot

RIDGES = 14  # histograms drawn in the stack, spread evenly over the history kept
HISTORY = 2000  # snapshots kept per series at most
REDRAW_MS = 200  # on its own clock, the histogram stack redraws at most five times a second
HINTON_MAX = 80  # rows and columns a Hinton diagram draws at most
HINTON_PIXELS = 240  # about how many pixels the larger side of a Hinton image gets
RIDGE_HEIGHT = 1.8  # the tallest bar of the stack, in ridges (they overlap like a joy plot)
OLD = (190, 205, 220)  # the oldest ridge's colour; the newest is POSITIVE
# background, positive and negative as one 32-bit RGBA word each: an image is one lookup
HINTON_COLOURS = (
    np.array([(*c, 255) for c in (MIDDLE, POSITIVE, NEGATIVE)], dtype=np.uint8)
    .view(np.uint32)
    .ravel()
)


class Timeline:
    """What a view keeps of each snapshot over training, at most ``capacity`` entries: once
    full, every other entry is dropped and from then on only every ``stride``-th snapshot is
    kept, so the kept ones stay evenly spread. The newest snapshot is always at hand
    (``entries`` ends with it). Entries are made lazily (``add`` takes a function), so a
    snapshot that is thinned away costs nothing."""

    def __init__(self, capacity: int = HISTORY) -> None:
        self.capacity = capacity
        self.clear()

    def clear(self) -> None:
        self.steps: list[int] = []
        self.values: list[Any] = []
        self.stride = 1
        self.seen = 0
        self._newest: tuple[int, Callable[[], Any]] | None = None

    def add(self, step: int, make: Callable[[], Any]) -> None:
        """The snapshot after ``step`` steps; ``make()`` gives what to keep of it."""
        self._newest = None
        if self.seen % self.stride == 0:
            self.steps.append(step)
            self.values.append(make())
            if len(self.steps) > self.capacity:
                self.steps, self.values = self.steps[::2], self.values[::2]
                self.stride *= 2
        else:
            self._newest = (step, make)
        self.seen += 1

    def entries(self) -> tuple[list[int], list[Any]]:
        """The kept steps and values, oldest first, ending with the newest snapshot's."""
        steps, values = list(self.steps), list(self.values)
        if self._newest is not None:
            step, make = self._newest
            value = make()
            self._newest = (step, lambda: value)  # made once however often it is drawn
            steps.append(step)
            values.append(value)
        return steps, values


def ridge_picks(entries: int, ridges: int) -> list[int]:
    """Which of ``entries`` kept entries the stack draws: the newest, and before it every
    k-th from the oldest, k the smallest power of two that leaves at most ``ridges`` in all.
    As entries are added, the older ridges stay until k doubles (and then every other one
    goes), so they hold still while training goes on."""
    if entries <= ridges:
        return list(range(entries))
    stride = 1
    while -(-(entries - 1) // stride) > ridges - 1:
        stride *= 2
    return [*range(0, entries - 1, stride), entries - 1]


def unit_rows(weight: np.ndarray) -> np.ndarray:
    """A weight array as one row per unit: a dense layer's (inputs, units) transposed, a
    convolution's (out, in, kh, kw) flattened per output channel."""
    if weight.ndim == 2:
        return weight.T
    return weight.reshape(weight.shape[0], -1)


def hinton_rgba(matrix: np.ndarray, limit: float, cell: int) -> np.ndarray:
    """A Hinton diagram as RGBA bytes (rows × cell, columns × cell, 4): each value a square
    in its cell, its area in proportion to |value| / limit, blue when positive and orange when
    negative, on light grey."""
    rows, cols = matrix.shape
    share = np.clip(np.abs(matrix) / (limit or 1.0), 0.0, 1.0)
    half = 0.5 * np.sqrt(share) * (cell - 1)  # a grey pixel round the largest square
    distance = np.abs(np.arange(cell) - (cell - 1) / 2)  # pixel centres from the cell's centre
    ring = np.maximum(distance[:, None], distance[None, :])  # (cell, cell): square rings
    inside = ring[None, :, None, :] < half[:, None, :, None]  # (rows, cell, cols, cell)
    colour = np.where(matrix > 0, 1, 2).astype(np.uint8)  # HINTON_COLOURS' rows
    index = (inside * colour[:, None, :, None]).reshape(rows * cell, cols * cell)
    return HINTON_COLOURS[index].view(np.uint8).reshape(rows * cell, cols * cell, 4)


def _column_ticks(inputs: int, columns: int) -> list[tuple[float, str]]:
    """Labels under a matrix's columns: every input up to 8, every k-th beyond, "b" under
    the bias column."""
    every = max(1, int(np.ceil(inputs / 8)))
    ticks = [(float(i), str(i)) for i in range(0, inputs, every)]
    return [*ticks, (float(inputs), "b")] if columns > inputs else ticks


def set_title(plot: pg.PlotWidget, title: str) -> None:
    """Set a plot's title only when it changes (setting one costs about a millisecond)."""
    if plot.getPlotItem().titleLabel.text != title:
        plot.setTitle(title)


def _matrix_plot(title: str) -> tuple[pg.PlotWidget, pg.ImageItem]:
    plot = steady_plot(background="w", title=title)
    plot.setMenuEnabled(False)
    plot.setAspectLocked(True)
    plot.invertY(True)  # unit 0 on top, as a matrix is written
    plot.setLabel("left", "unit")
    plot.setLabel("bottom", "input")
    image = pg.ImageItem()
    plot.addItem(image)
    return plot, image


class WeightsView(QtWidgets.QWidget):
    """The weights of one layer (chosen in ``layer_box``): heat map, Hinton diagram and the
    spread of the layer's weights over time. ``set_facts(facts, snapshot)`` for a new session,
    ``show_snapshot(snapshot)`` to draw the newest state, ``add_snapshots(list)`` for the
    history."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_box = QtWidgets.QComboBox()
        self.layer_box.setToolTip("The weight matrix to show: one row per unit")
        self.layer_box.currentIndexChanged.connect(self._chose_layer)
        self.readout = QtWidgets.QLabel(" ")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Layer"))
        bar.addWidget(self.layer_box)
        bar.addWidget(self.readout, 1)

        self.heat_plot, self.heat_image = _matrix_plot("heat map")
        self.heat_plot.setToolTip(
            "Each weight's colour: blue positive, orange negative, grey near 0; the colour "
            "scale runs to the layer's largest |weight|. The last column is the bias."
        )
        self.bias_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((90, 90, 90), width=1))
        self.heat_plot.addItem(self.bias_line)
        self.hinton_plot, self.hinton_image = _matrix_plot("Hinton diagram")
        self.hinton_plot.setToolTip(
            "Each weight as a square whose area grows with |weight|: blue positive, orange "
            "negative. The last column is the bias."
        )
        self.spread_plot = steady_plot(background="w", title="weights over time")
        self.spread_plot.setMenuEnabled(False)
        self.spread_plot.setLabel("bottom", "weight")
        self.spread_plot.setLabel("left", "step")
        self.spread_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.spread_plot.setToolTip(
            "A histogram of the layer's weights and biases at moments of training, the "
            "newest in front: weights that spread out, drift or collapse show here."
        )
        self.spread_plot.getPlotItem().hideButtons()
        self.ridges: list[pg.PlotCurveItem] = []

        plots = QtWidgets.QHBoxLayout()
        for plot in (self.heat_plot, self.hinton_plot, self.spread_plot):
            plots.addWidget(plot, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addLayout(plots, 1)

        self.facts: Any = None
        self.latest: Any = None
        self.timeline = Timeline()
        self.matrix: np.ndarray | None = None  # what the heat map shows, one row per unit
        self.inputs = 0  # columns of the matrix that are weights (the rest: the bias)
        self._ticks: list[tuple[float, str]] = []
        self._ridge_ticks: list[tuple[float, str]] = []
        # the height scale of the stack, and what each ridge shows by place (0: the newest):
        # (histogram, scale, shade)
        self._ridge_path, self._ridge_scale, self._ridge_tallest = "", SteadyRange(), 0.0
        self._ridge_drawn: dict[int, tuple[Any, ...]] = {}
        self._scale, self._scale_key, self._limit = SteadyRange(), "", 0.0  # the colour scale
        self.history_clock = HistoryClock(self.draw_spread, REDRAW_MS, self)
        self._hover = [
            pg.SignalProxy(
                plot.scene().sigMouseMoved, rateLimit=30, slot=partial(self._mouse_moved, plot)
            )
            for plot in (self.heat_plot, self.hinton_plot)
        ]

    # ------------------------------------------------------------------ data
    def set_facts(self, facts: Any, snapshot: Any) -> None:
        """A new session: its weight matrices in the layer box, the history emptied."""
        self.facts, self.latest = facts, None
        self._scale_key, self._limit = "", 0.0
        self.timeline.clear()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        model = facts.model
        for slot in model.slots:
            if len(slot.shape) >= 2:
                path = model.nodes[slot.layer].path
                size = "×".join(str(n) for n in slot.shape)
                self.layer_box.addItem(f"{slot.key}  ({size})", (slot.key, path))
        self.layer_box.blockSignals(False)
        self.layer_box.setEnabled(self.layer_box.count() > 0)
        self.show_snapshot(snapshot)

    def chosen(self) -> tuple[str, str] | None:
        """(weight key, layer path) of the matrix shown, or None."""
        data = self.layer_box.currentData()
        return None if data is None else (data[0], data[1])

    def add_snapshots(self, snapshots: list[Any]) -> None:
        """Keep each snapshot's histograms (thinned evenly); a history reset starts over."""
        for snap in snapshots:
            if snap.history_reset:
                self.timeline.clear()
            self.timeline.add(snap.step, partial(snap.histograms))
        self.history_clock.mark()

    # ------------------------------------------------------------------ drawing
    def show_snapshot(self, snapshot: Any) -> None:
        """The chosen matrix at ``snapshot``: heat map and Hinton diagram."""
        self.latest = snapshot
        chosen = self.chosen()
        if self.facts is None or chosen is None:
            return
        key, path = chosen
        weights = snapshot.parameters()
        rows = unit_rows(np.asarray(weights[key]))
        bias = weights.get(f"{path}.b")
        self.inputs = rows.shape[1]
        if bias is not None and bias.shape == (rows.shape[0],):
            rows = np.column_stack([rows, bias])
        largest = snapshot.layer_stats()[path]["weight_abs_max"] or 1.0
        if key != self._scale_key or not snapshot.playing:  # exact, and started over
            self._scale_key, self._scale, self._limit = key, SteadyRange(), 0.0
        # while playing, the colour scale holds still while the weights stay inside it (no
        # flicker, and the title is not laid out again at every frame); a paused, stepped or
        # rewound state is drawn on its own exact scale
        limit = self._scale.follow((0.0, self._limit), (0.0, largest))[1]
        self._limit = limit
        self.matrix = rows
        n_rows, n_cols = rows.shape
        self.heat_image.setImage(diverging_rgba(rows, limit), autoLevels=False)
        self.heat_image.setRect(QtCore.QRectF(-0.5, -0.5, n_cols, n_rows))
        self.bias_line.setVisible(n_cols > self.inputs)
        self.bias_line.setPos(self.inputs - 0.5)
        set_title(self.heat_plot, f"{key}ᵀ and bias   (colour scale ±{limit:.3g})")
        ticks = _column_ticks(self.inputs, n_cols)
        if ticks != self._ticks:  # a new axis costs a layout: only when the matrix changes
            self._ticks = ticks
            for plot in (self.heat_plot, self.hinton_plot):
                plot.getAxis("bottom").setTicks([ticks])
        shown = rows[:HINTON_MAX, :HINTON_MAX]
        cell = int(np.clip(HINTON_PIXELS // max(shown.shape), 5, 24))
        self.hinton_image.setImage(hinton_rgba(shown, limit, cell), autoLevels=False)
        self.hinton_image.setRect(QtCore.QRectF(-0.5, -0.5, shown.shape[1], shown.shape[0]))
        cut = "" if shown.shape == rows.shape else f"   (first {HINTON_MAX}×{HINTON_MAX})"
        set_title(self.hinton_plot, f"Hinton diagram{cut}")

    def draw_spread(self) -> None:
        """The stack of the chosen layer's histograms over the history kept. While training
        goes on only the newest ridge changes at most frames: the older ones are kept entries
        picked at a steady stride, on a height scale that holds still (``SteadyRange``), and
        a ridge whose histogram, scale and shade are the same is not set again."""
        chosen = self.chosen()
        steps, values = self.timeline.entries()
        if chosen is None or not steps:
            for ridge in self.ridges:
                ridge.setVisible(False)
            self._ridge_drawn.clear()
            return
        path = chosen[1]
        picked = ridge_picks(len(steps), RIDGES)
        counted = max(int(values[i][path]["weight_counts"].max()) for i in picked) or 1
        if path != self._ridge_path:
            self._ridge_path, self._ridge_scale, self._ridge_tallest = path, SteadyRange(), 0.0
        tallest = self._ridge_scale.follow((0.0, self._ridge_tallest), (0.0, float(counted)))[1]
        self._ridge_tallest = tallest
        colours = pg.ColorMap([0.0, 1.0], [OLD, POSITIVE])
        ticks = []
        for n, i in enumerate(picked[::-1]):  # the newest in front, at the bottom
            if n >= len(self.ridges):
                ridge = pg.PlotCurveItem()
                self.spread_plot.addItem(ridge)
                self.ridges.append(ridge)
            ridge = self.ridges[n]
            hist = values[i][path]
            shade = 1.0 - n / max(len(picked) - 1, 1)
            before = self._ridge_drawn.get(n)
            if before is None or before[0] is not hist or before[1:] != (tallest, shade):
                self._ridge_drawn[n] = (hist, tallest, shade)  # held: compared by identity
                self._set_ridge(ridge, hist, float(n), tallest, colours.map(shade, "qcolor"))
                ridge.setZValue(len(picked) - n)
            ridge.setVisible(True)
            # the newest is the one the snapshots replace: "now", so the axis stays
            ticks.append((float(n), "now" if n == 0 else str(steps[i])))
        for n in range(len(picked), len(self.ridges)):
            self.ridges[n].setVisible(False)
            self._ridge_drawn.pop(n, None)
        every = max(1, len(ticks) // 6)
        if ticks[::every] != self._ridge_ticks:  # a new axis costs a redraw of its text
            self._ridge_ticks = ticks[::every]
            self.spread_plot.getAxis("left").setTicks([self._ridge_ticks])
        set_title(self.spread_plot, f"{path}: weights over time")

    @staticmethod
    def _set_ridge(
        ridge: pg.PlotCurveItem, hist: dict[str, Any], base: float, tallest: float, colour: Any
    ) -> None:
        fill = pg.mkColor(colour)
        fill.setAlpha(150)
        heights = base + RIDGE_HEIGHT * hist["weight_counts"] / tallest
        ridge.setData(hist["weight_edges"], heights, stepMode="center", fillLevel=base, brush=fill)
        ridge.setPen(pg.mkPen(colour.darker(130), width=1))

    def _chose_layer(self) -> None:
        if self.latest is not None:
            self.show_snapshot(self.latest)
        self.draw_spread()

    def _mouse_moved(self, plot: pg.PlotWidget, event: tuple[Any, ...]) -> None:
        """Name the weight under the mouse and give its value (the snapshot's)."""
        matrix, chosen = self.matrix, self.chosen()
        if matrix is None or chosen is None:
            return
        point = plot.getPlotItem().vb.mapSceneToView(event[0])
        row, col = round(point.y()), round(point.x())
        if not (0 <= row < matrix.shape[0] and 0 <= col < matrix.shape[1]):
            self.readout.setText(" ")
            return
        key, path = chosen
        if col >= self.inputs:
            name = f"unit {row}: {path}.b[{row}]"
        elif self.latest is not None and self.latest.parameters()[key].ndim == 2:
            name = f"unit {row}, input {col}: {key}[{col}, {row}]"
        else:
            name = f"unit {row}, weight {col} of {key}"
        self.readout.setText(f"{name} = {matrix[row, col]:+.4g}")
