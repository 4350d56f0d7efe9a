"""The network diagram: every neuron's output over the input plane as a thumbnail, weights as
edges (colour by sign, width by size), the phase being run highlighted.

Dense layers on a planar data set draw neuron by neuron; any other network (digits, a conv or
recurrent layer, more than ``MAX_UNITS`` units in a column) draws each layer as a block with the
heat map of its weights. Hover an edge or a neuron for its live value; click an edge to edit
it, a neuron to inspect it (double-click: edit its bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.palette import NEGATIVE, POSITIVE, diverging_rgba, qimage

MAX_UNITS = 16
THUMB = 40  # px, a neuron's thumbnail
ENLARGED = 160  # px, the thumbnail under the mouse
THUMB_RESOLUTION = 24  # grid points a side
MAX_ZOOM = 1.6
BLOCK = 140  # px, a layer's weight heat map when layers draw as blocks
COLUMN_GAP = 150
ROW_GAP = 56
PHASE_COLOURS = {
    "forward": QtGui.QColor(120, 200, 120, 70),
    "backward": QtGui.QColor(220, 110, 150, 70),
    "loss": QtGui.QColor(240, 200, 60, 90),
    "update": QtGui.QColor(90, 150, 230, 60),
}


@dataclass(frozen=True)
class Column:
    """One column of neurons: the inputs, or top-level layer ``layer``'s units."""

    title: str
    units: int
    layer: int | None  # None for the inputs
    weight_key: str | None  # the (inputs, units) weight matrix feeding it
    bias_key: str | None


def dense_columns(facts: Any) -> list[Column] | None:
    """The diagram's columns, or None when the network is not dense layers on a plane."""
    model = facts.model
    if not facts.planar or len(model.shapes[0]) != 1 or model.shapes[0][0] > MAX_UNITS:
        return None
    columns = [Column("inputs", model.shapes[0][0], None, None, None)]
    for k, node in enumerate(model.nodes):
        units = model.shapes[k + 1]
        if node.children or len(units) != 1 or units[0] > MAX_UNITS:
            return None
        w, b = node.slots.get("W"), node.slots.get("b")
        if w is None or w.shape != (columns[-1].units, units[0]):
            return None
        title = f"{type(node.layer).name} {k}"
        columns.append(Column(title, units[0], k, w.key, None if b is None else b.key))
    return columns


class Edge(QtWidgets.QGraphicsLineItem):
    """One weight: ``key[index]``; hover shows its value, a click asks to edit it."""

    def __init__(self, view: NetworkView, key: str, index: tuple[int, ...], line: QtCore.QLineF):
        super().__init__(line)
        self.view, self.key, self.index = view, key, index
        self.value, self.gradient = 0.0, 0.0
        self.look: tuple[int, int] | None = None  # (colour, width in tenths of a pixel)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)

    def describe(self) -> str:
        return (
            f"{self.key}[{self.index[0]}, {self.index[1]}] = {self.value:+.4f}\n"
            f"gradient {self.gradient:+.4g}  (click to edit)"
        )

    def hoverEnterEvent(self, event: QtWidgets.QGraphicsSceneHoverEvent) -> None:
        """The tooltip is written when the mouse arrives (and kept current while it stays),
        not for every edge at every frame."""
        self.setToolTip(self.describe())

    def mousePressEvent(self, event: QtWidgets.QGraphicsSceneMouseEvent) -> None:
        self.view.edit_requested.emit(self.key, self.index)


class Neuron(QtWidgets.QGraphicsPixmapItem):
    """One unit's output over the plane; hover enlarges it, a click selects it for the step
    inspector, a double click edits its bias."""

    def __init__(
        self, view: NetworkView, bias: tuple[str, tuple[int, ...]] | None, layer: int, unit: int
    ) -> None:
        super().__init__()
        self.view, self.bias, self.layer, self.unit = view, bias, layer, unit
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        self.full = QtGui.QPixmap()
        if bias is not None:
            self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)

    def describe(self) -> str:
        if self.bias is None:
            return ""
        key, index = self.bias
        value = self.view.bias_value(key, index)
        return f"{key}[{index[0]}] = {value:+.4f}  (click: inspect, double-click: edit)"

    def hoverEnterEvent(self, event: QtWidgets.QGraphicsSceneHoverEvent) -> None:
        """The tooltip is written when the mouse arrives (and kept current while it stays)."""
        self.setToolTip(self.describe())
        self.view.enlarge(self)

    def hoverLeaveEvent(self, event: QtWidgets.QGraphicsSceneHoverEvent) -> None:
        self.view.enlarge(None)

    def mousePressEvent(self, event: QtWidgets.QGraphicsSceneMouseEvent) -> None:
        if self.bias is not None:
            self.view.neuron_selected.emit(self.layer, self.unit)

    def mouseDoubleClickEvent(self, event: QtWidgets.QGraphicsSceneMouseEvent) -> None:
        if self.bias is not None:
            self.view.edit_requested.emit(*self.bias)


class NetworkView(QtWidgets.QGraphicsView):
    """``edit_requested(key, index)``: the user clicked a weight (or double-clicked a neuron,
    for its bias) to edit it; ``neuron_selected(layer, unit)``: a neuron was clicked."""

    edit_requested = QtCore.Signal(str, object)
    neuron_selected = QtCore.Signal(int, int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QtWidgets.QGraphicsScene(self))
        self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        # every frame repaints the thumbnails and the edges across them: one rectangle costs
        # less than the many small regions Qt would otherwise paint one by one
        self.setViewportUpdateMode(
            QtWidgets.QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate
        )
        self.playing_fast = False
        self.setBackgroundBrush(QtGui.QColor("white"))
        self.facts: Any = None
        self.columns: list[Column] | None = None
        self.neurons: list[list[Neuron]] = []
        self.edges: list[Edge] = []
        self.bands: list[QtWidgets.QGraphicsRectItem] = []
        self.blocks: list[tuple[str, QtWidgets.QGraphicsPixmapItem]] = []
        self.highlighted: str | None = None
        self._highlit = False  # whether the bands show ``highlighted`` (a new layout does not)
        self.weights: dict[str, np.ndarray] = {}
        self._grid_inputs: np.ndarray | None = None
        self._preview = QtWidgets.QGraphicsPixmapItem()
        self._caption = QtWidgets.QGraphicsSimpleTextItem()

    # ------------------------------------------------------------------ layout
    def set_facts(self, facts: Any, snapshot: Any) -> None:
        """Lay out a new session's network (the snapshot gives the grid the thumbnails use)."""
        scene = self.scene()
        scene.clear()
        self.facts, self.neurons, self.edges, self.bands, self.blocks = facts, [], [], [], []
        self._highlit, self.weights = False, {}
        self._preview = QtWidgets.QGraphicsPixmapItem()
        self._preview.setZValue(10)
        self._preview.setVisible(False)
        scene.addItem(self._preview)
        self._caption = scene.addSimpleText("")
        self._caption.setZValue(5)
        self.columns = dense_columns(facts)
        if self.columns is None:
            self._lay_out_blocks(facts)
        else:
            self._grid_inputs = snapshot.grid_inputs(THUMB_RESOLUTION)[2]
            self._lay_out_neurons(self.columns, facts)
        self._caption.setPos(0, -40)
        self.setSceneRect(scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
        self.fit()

    def _position(self, column: int, unit: int, units: int) -> QtCore.QPointF:
        tallest = max(c.units for c in self.columns or [])
        top = (tallest - units) * ROW_GAP / 2
        return QtCore.QPointF(column * COLUMN_GAP, top + unit * ROW_GAP)

    def _lay_out_neurons(self, columns: list[Column], facts: Any) -> None:
        scene = self.scene()
        tallest = max(c.units for c in columns)
        for c, column in enumerate(columns):
            band = scene.addRect(
                c * COLUMN_GAP - 12,
                -18,
                THUMB + 24,
                tallest * ROW_GAP + 8,
                QtGui.QPen(QtCore.Qt.PenStyle.NoPen),
            )
            band.setZValue(0)
            self.bands.append(band)
            label = scene.addSimpleText(column.title)
            label.setPos(c * COLUMN_GAP, tallest * ROW_GAP - 4)
            row = []
            for u in range(column.units):
                bias = None if column.bias_key is None else (column.bias_key, (u,))
                neuron = Neuron(self, bias, -1 if column.layer is None else column.layer, u)
                neuron.setPos(self._position(c, u, column.units))
                scene.addItem(neuron)
                if column.layer is None:
                    name = facts.feature_names[u]
                    text = scene.addSimpleText(name)
                    text.setPos(
                        self._position(c, u, column.units) + QtCore.QPointF(-8 - 7 * len(name), 12)
                    )
                row.append(neuron)
            self.neurons.append(row)
            if column.weight_key is None:
                continue
            for i in range(columns[c - 1].units):
                for j in range(column.units):
                    a = self._position(c - 1, i, columns[c - 1].units) + QtCore.QPointF(
                        THUMB, THUMB / 2
                    )
                    b = self._position(c, j, column.units) + QtCore.QPointF(0, THUMB / 2)
                    edge = Edge(self, column.weight_key, (i, j), QtCore.QLineF(a, b))
                    scene.addItem(edge)
                    self.edges.append(edge)

    def _lay_out_blocks(self, facts: Any) -> None:
        scene = self.scene()
        x = 0.0
        for k, node in enumerate(facts.model.nodes):
            shape = facts.model.shapes[k + 1]
            label = scene.addSimpleText(f"{type(node.layer).name} {k}\noutput {shape}")
            label.setPos(x, BLOCK + 12)
            matrix = next((s for s in node.slots.values() if len(s.shape) == 2), None)
            if matrix is not None:
                blank = QtGui.QPixmap(BLOCK, BLOCK)
                blank.fill(QtGui.QColor("white"))
                item = scene.addPixmap(blank)
                item.setPos(x, 0)
                item.setToolTip(f"{matrix.key}: {matrix.shape[0]}×{matrix.shape[1]} weights")
                self.blocks.append((matrix.key, item))
            x += COLUMN_GAP + 40

    def fit(self) -> None:
        """The whole network in view, enlarged at most ``MAX_ZOOM`` times."""
        rect = self.sceneRect()
        if rect.isEmpty():
            return
        view = self.viewport().size()
        zoom = min(view.width() / rect.width(), view.height() / rect.height(), MAX_ZOOM)
        self.resetTransform()
        self.scale(zoom, zoom)
        self.centerOn(rect.center())

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit()

    # ------------------------------------------------------------------ drawing
    def set_playing_fast(self, fast: bool) -> None:
        """Plain edges while training plays fast, antialiased ones once the picture holds
        still: antialiasing cost this view 40% of its frame, on edges that change too fast to
        see it (the view is drawn again, smooth, when it changes)."""
        if fast != self.playing_fast:
            self.playing_fast = fast
            self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, not fast)

    def show_snapshot(self, snapshot: Any, phase_done: str | None) -> None:
        """Thumbnails, weights and the highlight of ``phase_done`` (the phase just run)."""
        if self.facts is None:
            return
        weights = snapshot.parameters()
        if self.columns is None:
            for key, item in self.blocks:
                w = weights[key]
                limit = float(np.abs(w).max()) or 1.0
                image = qimage(diverging_rgba(w.T, limit))
                item.setPixmap(
                    QtGui.QPixmap.fromImage(image).scaled(
                        BLOCK, BLOCK, QtCore.Qt.AspectRatioMode.KeepAspectRatio
                    )
                )
        else:
            self._show_neurons(snapshot, weights)
        self._highlight(phase_done)

    def _show_neurons(self, snapshot: Any, weights: dict[str, np.ndarray]) -> None:
        assert self.columns is not None and self._grid_inputs is not None
        self.weights = weights
        values = snapshot.layer_values(self._grid_inputs)
        side = THUMB_RESOLUTION
        columns = [
            self._grid_inputs
            if column.layer is None
            else values[self.facts.model.nodes[column.layer].path]["activation"]
            for column in self.columns
        ]
        # every unit's map coloured in one lookup: (units, side, side, 4), rows from the top
        maps = np.concatenate([c.reshape(side, side, -1) for c in columns], axis=2)
        colours = diverging_rgba(np.moveaxis(maps, 2, 0)[:, ::-1])
        neurons = [neuron for column in self.neurons for neuron in column]
        for neuron, rgba in zip(neurons, colours, strict=True):
            neuron.full = QtGui.QPixmap.fromImage(qimage(rgba))
            neuron.setPixmap(neuron.full.scaled(THUMB, THUMB))
            if neuron.isUnderMouse():
                neuron.setToolTip(neuron.describe())
        gradients = snapshot.gradients()
        edge_colours = {True: self._edge_colour(POSITIVE), False: self._edge_colour(NEGATIVE)}
        for edge in self.edges:
            w = float(weights[edge.key][edge.index])
            # widths in steps of a tenth of a pixel: an edge whose look is unchanged is not
            # repainted (most of them, frame to frame)
            look = (edge_colours[w > 0].rgb(), round(10 * (0.5 + 1.6 * min(abs(w), 4.0))))
            if look != edge.look:
                edge.look = look
                edge.setPen(QtGui.QPen(edge_colours[w > 0], look[1] / 10))
            edge.value, edge.gradient = w, float(gradients[edge.key][edge.index])
            if edge.isUnderMouse():
                edge.setToolTip(edge.describe())

    def _edge_colour(self, rgb: tuple[int, int, int]) -> QtGui.QColor:
        """``rgb`` a fifth of the way to the background: the look of a translucent edge,
        opaque (translucent wide lines cost this view three times as much to paint)."""
        brush = self.backgroundBrush()
        base = (
            brush.color()
            if brush.style() != QtCore.Qt.BrushStyle.NoBrush
            else self.palette().color(QtGui.QPalette.ColorRole.Base)
        )
        mix = [base.red(), base.green(), base.blue()]
        return QtGui.QColor(*(round(0.82 * c + 0.18 * m) for c, m in zip(rgb, mix, strict=True)))

    def bias_value(self, key: str, index: tuple[int, ...]) -> float:
        """A bias as last drawn (a neuron's tooltip)."""
        return float(self.weights[key][index]) if key in self.weights else float("nan")

    def _highlight(self, phase: str | None) -> None:
        if phase == self.highlighted and self._highlit:
            return  # unchanged: the bands are not repainted
        self.highlighted, self._highlit = phase, True
        for band in self.bands:
            band.setBrush(QtGui.QBrush(QtCore.Qt.BrushStyle.NoBrush))
        self._caption.setText(_caption(phase))
        if phase is None or not self.bands or self.columns is None:
            return
        kind, _, rest = phase.partition(" ")
        brush = QtGui.QBrush(PHASE_COLOURS.get(kind, QtGui.QColor(0, 0, 0, 0)))
        if kind in ("forward", "backward") and rest.isdigit():
            self.bands[int(rest) + 1].setBrush(brush)
        elif kind == "loss":
            self.bands[-1].setBrush(brush)
        elif kind == "update":
            for band in self.bands[1:]:
                band.setBrush(brush)
        elif kind == "select":
            self.bands[0].setBrush(QtGui.QBrush(PHASE_COLOURS["forward"]))

    def enlarge(self, neuron: Neuron | None) -> None:
        """Show ``neuron``'s thumbnail large beside it (None hides it)."""
        if neuron is None or neuron.full.isNull():
            self._preview.setVisible(False)
            return
        self._preview.setPixmap(neuron.full.scaled(ENLARGED, ENLARGED))
        self._preview.setPos(neuron.pos() + QtCore.QPointF(THUMB + 8, -ENLARGED / 3))
        self._preview.setVisible(True)


def _caption(phase: str | None) -> str:
    if phase is None:
        return ""
    kind, _, rest = phase.partition(" ")
    return {
        "select": "selected the next minibatch",
        "forward": f"forward through layer {rest}  →",
        "loss": "loss of the minibatch",
        "backward": f"←  backward through layer {rest}",
        "update": "update: every weight moved by the optimizer",
    }.get(kind, phase)
