"""The Gradients dock: is every layer learning? Gradient flow (mean and largest |g| per layer,
on a log axis, so a layer whose gradients vanish or explode stands decades apart), every
layer's |g| as a histogram on the same log axis, each layer's update-to-weight ratio over time
against the usual 1e-3, and the share of dead and saturated units on probe samples.

Every number comes from the snapshot (``layer_stats``, ``gradient_magnitudes``,
``unit_activity``); this module only places them: log axes take log10 of what they draw, as
pyqtgraph's own log mode does for curves.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.palette import CLASS_COLOURS, NEGATIVE, POSITIVE
from gradient_lab.app.views.history_clock import HistoryClock
from gradient_lab.app.views.steady_range import SteadyRange, steady_plot
from gradient_lab.app.views.weights_view import Timeline

REFERENCE_RATIO = 1e-3  # the rule of thumb for ‖Δw‖/‖w‖ per step
REDRAW_MS = 100  # on its own clock, the ratio curves redraw at most ten times a second
UNITS_EVERY_S = 0.25  # while playing, the dead and saturated units are counted this often
MEAN_COLOUR = POSITIVE
MAX_COLOUR = (120, 180, 225)
DEAD_COLOUR = NEGATIVE
SATURATED_COLOUR = CLASS_COLOURS[3]
BAR = 0.38  # bar width, in layers
COMPACT = 4  # more layers than this: shorter labels, so they do not overlap
FLOW_HELP = (
    "Mean and largest |gradient| of each layer's weights, log scale: a layer far below the "
    "others barely learns (vanishing gradients), one far above may blow up (exploding)."
)


def layer_label(facts: Any, path: str) -> str:
    """A short name for a layer: its number and its activation (or its kind)."""
    layer = facts.model.node(path).layer
    act = getattr(layer, "act", None)
    return f"{path.replace('layers.', '')} {act.name if act is not None else type(layer).name}"


def axis_labels(facts: Any, paths: list[str]) -> list[tuple[float, str]]:
    """Labels under the layers' bars: with more than ``COMPACT`` layers their numbers only
    (the legend beside names them all)."""
    labels = [layer_label(facts, p) for p in paths]
    if len(paths) > COMPACT:
        labels = [label.split(" ")[0] for label in labels]
    return [(float(i), label) for i, label in enumerate(labels)]


def log_or_nan(values: Any) -> np.ndarray:
    """Positions on a log axis; values that have none (0, negative, NaN, inf) become NaN."""
    v = np.asarray(values, dtype=float)
    out = np.full(v.shape, np.nan)
    np.log10(v, out=out, where=(v > 0) & np.isfinite(v))
    return out


def _plot(title: str, bottom: str, left: str) -> pg.PlotWidget:
    plot = steady_plot(background="w", title=title)
    plot.setMenuEnabled(False)
    plot.getPlotItem().hideButtons()
    for side, text in (("bottom", bottom), ("left", left)):
        plot.setLabel(side, text)
        plot.getAxis(side).enableAutoSIPrefix(False)  # no "(x0.001)" on a log axis
    return plot


def _keyed_title(title: str, keys: list[tuple[str, tuple[int, int, int]]]) -> str:
    """A title with a coloured square before each key's name: a legend that covers no bar."""
    squares = "".join(
        f"&nbsp;&nbsp;<span style='color:#{r:02x}{g:02x}{b:02x}'>■</span>&nbsp;{name}"
        for name, (r, g, b) in keys
    )
    return f"{title}<span style='font-size:8pt'>{squares}</span>"


def _legend(plot: pg.PlotWidget, offset: tuple[int, int]) -> Any:
    return plot.addLegend(offset=offset, labelTextSize="8pt", brush=(255, 255, 255, 190))


class GradientsView(QtWidgets.QWidget):
    """Training health from the gradients. ``set_facts(facts, snapshot, probe=None)`` for a
    new session (``probe``: inputs to look for dead and saturated units on; default the
    snapshot's ``probe_inputs()``), ``show_snapshot(snapshot)`` for the newest state,
    ``add_snapshots(list)`` for the ratio's history."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        flow_keys = [("mean", MEAN_COLOUR), ("max", MAX_COLOUR)]
        self.flow_plot = _plot(_keyed_title("|g| per layer", flow_keys), "layer", "|gradient|")
        self.flow_plot.setLogMode(y=True)
        self.mean_bars = pg.BarGraphItem(x=[], height=[], width=BAR, brush=MEAN_COLOUR, pen=None)
        self.max_bars = pg.BarGraphItem(x=[], height=[], width=BAR, brush=MAX_COLOUR, pen=None)
        self.flow_plot.addItem(self.mean_bars)
        self.flow_plot.addItem(self.max_bars)

        self.spread_plot = _plot("|gradient| of every weight", "|gradient|", "weights")
        self.spread_plot.setLogMode(x=True)
        self.spread_legend = _legend(self.spread_plot, (5, 5))
        self.spread_curves: dict[str, pg.PlotCurveItem] = {}

        self.ratio_plot = _plot("update / weight  ‖Δw‖ / ‖w‖", "step", "ratio")
        self.ratio_plot.setLogMode(y=True)
        self.reference = pg.InfiniteLine(
            pos=np.log10(REFERENCE_RATIO),  # the axis is log10: items other than curves see it
            angle=0,
            pen=pg.mkPen((110, 110, 110), width=1, style=QtCore.Qt.PenStyle.DashLine),
            label="1e-3",
            labelOpts={"position": 0.06, "color": (90, 90, 90)},
        )
        self.ratio_plot.addItem(self.reference)
        self.ratio_curves: dict[str, pg.PlotDataItem] = {}
        self.ratio_names: dict[str, pg.TextItem] = {}  # each curve's layer, at its newest point

        self.units_plot = _plot("dead and saturated units", "layer", "% of the layer")
        self.dead_bars = pg.BarGraphItem(x=[], height=[], width=BAR, brush=DEAD_COLOUR, pen=None)
        self.saturated_bars = pg.BarGraphItem(
            x=[], height=[], width=BAR, brush=SATURATED_COLOUR, pen=None
        )
        self.units_plot.addItem(self.dead_bars)
        self.units_plot.addItem(self.saturated_bars)
        self.units_plot.setYRange(0, 100, padding=0.02)
        self.units_plot.setMouseEnabled(x=False, y=False)
        self.unit_labels: list[pg.TextItem] = []

        self.flow_plot.setToolTip(FLOW_HELP)
        self.spread_plot.setToolTip(
            "How many of each layer's weights have a gradient of each size (log scale); "
            "gradients exactly 0, such as a dead unit's, are counted in the legend."
        )
        self.ratio_plot.setToolTip(
            "Each step's update divided by the weights, per layer. About 1e-3 is the usual "
            "rule of thumb: far below, the layer barely moves; far above, it thrashes."
        )
        self.units_plot.setToolTip(
            "On the probe samples: ReLU-family units that output 0 on every sample (dead), "
            "and outputs of tanh or sigmoid units 99% of the way from the middle of their range "
            "to an end, such as |tanh| > 0.99 (saturated: their slope, and so their gradient, "
            "is nearly 0)."
        )
        row = QtWidgets.QHBoxLayout()
        for plot in (self.flow_plot, self.spread_plot, self.ratio_plot, self.units_plot):
            row.addWidget(plot, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row, 1)

        self.facts: Any = None
        self.probe: np.ndarray | None = None
        self.paths: list[str] = []  # layers with weights, in order
        self.unit_paths: list[str] = []  # layers with an activation, in order
        self.flow: dict[str, tuple[float, float]] = {}  # path: (mean |g|, max |g|) drawn
        self.activity: dict[str, dict[str, Any]] = {}  # the unit shares drawn
        self.timeline = Timeline()
        self.flow_range, self.ratio_range = SteadyRange(), SteadyRange()  # set by this view
        self.history_clock = HistoryClock(self.draw_ratios, REDRAW_MS, self)
        self._units_drawn = 0.0  # when the unit shares were counted last

    # ------------------------------------------------------------------ data
    def set_facts(self, facts: Any, snapshot: Any, probe: np.ndarray | None = None) -> None:
        """A new session: its layers on the axes, the history emptied."""
        self.facts = facts
        self.flow_range, self.ratio_range = SteadyRange(), SteadyRange()
        self._units_drawn = 0.0
        self.probe = probe if probe is not None else snapshot.probe_inputs()
        self.timeline.clear()
        self.paths = list(snapshot.layer_stats())
        self.unit_paths = list(snapshot.unit_activity(self.probe))
        labels = [layer_label(facts, p) for p in self.paths]
        self.flow_plot.getAxis("bottom").setTicks([axis_labels(facts, self.paths)])
        self.units_plot.getAxis("bottom").setTicks([axis_labels(facts, self.unit_paths)])
        self.units_plot.setXRange(-0.6, max(len(self.unit_paths), 1) - 0.4, padding=0)
        keys = [("dead", DEAD_COLOUR), ("saturated", SATURATED_COLOUR)]
        self.units_plot.setTitle(
            _keyed_title("units", keys) if self.probe is not None else "units: no samples to probe"
        )
        for spread in self.spread_curves.values():
            self.spread_plot.removeItem(spread)  # and from its legend
        for item in [*self.ratio_curves.values(), *self.ratio_names.values()]:
            self.ratio_plot.removeItem(item)
        self.spread_curves, self.ratio_curves, self.ratio_names = {}, {}, {}
        self.spread_legend.setColumnCount(1 if len(self.paths) <= COMPACT else 2)
        for i, path in enumerate(self.paths):
            colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
            spread = pg.PlotCurveItem(pen=pg.mkPen(colour, width=1.6), name=labels[i])
            self.spread_plot.addItem(spread)
            self.spread_curves[path] = spread
            self.ratio_curves[path] = self.ratio_plot.plot(
                pen=pg.mkPen(colour, width=1.6), connect="finite"
            )
            name = pg.TextItem(labels[i].split(" ")[0], color=colour, anchor=(0.0, 0.5))
            self.ratio_plot.addItem(name)
            self.ratio_names[path] = name
        self.show_snapshot(snapshot)
        self.draw_ratios()

    def add_snapshots(self, snapshots: list[Any]) -> None:
        """Keep each snapshot's update ratios (thinned evenly); a history reset starts over."""
        for snap in snapshots:
            if snap.history_reset:
                self.timeline.clear()
            self.timeline.add(snap.step, partial(self._ratios, snap))
        self.history_clock.mark()

    def _ratios(self, snapshot: Any) -> list[float]:
        stats = snapshot.layer_stats()
        return [stats[p]["update_ratio"] for p in self.paths]

    # ------------------------------------------------------------------ drawing
    def show_snapshot(self, snapshot: Any) -> None:
        """Gradient flow, |g| histograms and unit shares of ``snapshot``."""
        if self.facts is None:
            return
        self._draw_flow(snapshot.layer_stats())
        self._draw_spread(snapshot.gradient_magnitudes())
        now = time.perf_counter()
        if not snapshot.playing or now - self._units_drawn >= UNITS_EVERY_S:
            # a forward pass over the probe samples: while playing a few times a second, as
            # units die or saturate over many steps; exact when paused
            self._units_drawn = now
            self._draw_units(snapshot.unit_activity(self.probe) if self.probe is not None else {})

    def _draw_flow(self, stats: dict[str, dict[str, float]]) -> None:
        self.flow = {p: (stats[p]["grad_abs_mean"], stats[p]["grad_abs_max"]) for p in self.paths}
        means = log_or_nan([m for m, _ in self.flow.values()])
        maxima = log_or_nan([m for _, m in self.flow.values()])
        found = np.concatenate([means, maxima])
        found = found[np.isfinite(found)]
        floor = float(np.floor(found.min())) - 1 if found.size else -1.0
        top = float(np.ceil(found.max())) if found.size else 0.0
        shown = self.flow_plot.getViewBox().viewRange()[1]
        low, high = self.flow_range.follow(tuple(shown), (floor, max(top, floor + 1)))
        x = np.arange(len(self.paths), dtype=float)
        for bars, logs, shift in ((self.mean_bars, means, -0.5), (self.max_bars, maxima, 0.5)):
            bars.setOpts(x=x + shift * BAR, y0=low, height=np.nan_to_num(logs - low), width=BAR)
        self.flow_plot.setYRange(low, high, padding=0)
        self.flow_plot.setXRange(-0.6, max(len(self.paths), 1) - 0.4, padding=0)
        tip = "\n".join(
            [FLOW_HELP, ""]
            + [f"{p}: mean |g| {a:.3g}, max |g| {b:.3g}" for p, (a, b) in self.flow.items()]
        )
        if tip != self.flow_plot.toolTip():
            self.flow_plot.setToolTip(tip)

    def _draw_spread(self, magnitudes: dict[str, Any]) -> None:
        # an empty bin at each end brings the outline down to 0 (as a fill would, at a cost)
        edges = magnitudes["edges"]
        width = edges[1] - edges[0]
        edges = np.concatenate([[edges[0] - width], edges, [edges[-1] + width]])
        for i, path in enumerate(self.paths):
            counts = np.concatenate([[0], magnitudes["counts"][path], [0]])
            self.spread_curves[path].setData(edges, counts, stepMode="center")
            zeros = magnitudes["zeros"][path]
            label = layer_label(self.facts, path) + (f"  ({zeros} exactly 0)" if zeros else "")
            self._legend_text(self.spread_legend, i, label)

    @staticmethod
    def _legend_text(legend: Any, row: int, text: str) -> None:
        if row < len(legend.items):
            label = legend.items[row][1]
            if label.text != text:
                label.setText(text)

    def _draw_units(self, activity: dict[str, dict[str, Any]]) -> None:
        self.activity = activity
        x = np.arange(len(self.unit_paths), dtype=float)
        dead = np.array([activity.get(p, {}).get("dead", np.nan) for p in self.unit_paths])
        saturated = np.array(
            [activity.get(p, {}).get("saturated", np.nan) for p in self.unit_paths]
        )
        for bars, share, shift in (
            (self.dead_bars, dead, -0.5),
            (self.saturated_bars, saturated, 0.5),
        ):
            height = np.nan_to_num(100 * share)
            shown = bars.opts.get("height")
            if shown is None or not np.array_equal(shown, height):
                bars.setOpts(x=x + shift * BAR, height=height, width=BAR)  # shares seldom move
        while len(self.unit_labels) < len(self.unit_paths):
            label = pg.TextItem(anchor=(0.5, 1.0), color=(60, 60, 60))
            self.units_plot.addItem(label)
            self.unit_labels.append(label)
        for i, path in enumerate(self.unit_paths):
            text = _unit_text(activity.get(path), compact=len(self.unit_paths) > COMPACT)
            if self.unit_labels[i].toPlainText() != text:
                self.unit_labels[i].setText(text)
            height = np.nanmax([dead[i], saturated[i], 0.0]) * 100
            self.unit_labels[i].setPos(i, min(height + 3, 92))
        for label in self.unit_labels[len(self.unit_paths) :]:
            label.setText("")  # left from a session with more layers

    def draw_ratios(self) -> None:
        """Each layer's update-to-weight ratio over the history kept."""
        steps, rows = self.timeline.entries()
        table = np.array(rows, dtype=float).reshape(len(rows), len(self.paths))
        logs = log_or_nan(table)
        for i, path in enumerate(self.paths):
            ratios = np.where(np.isfinite(logs[:, i]), table[:, i], np.nan)  # 0: a gap
            self.ratio_curves[path].setData(np.asarray(steps, dtype=float), ratios)
            shown = np.flatnonzero(np.isfinite(logs[:, i]))
            self.ratio_names[path].setVisible(shown.size > 0)
            if shown.size:
                self.ratio_names[path].setPos(steps[shown[-1]], logs[shown[-1], i])
        # at least three decades round the reference line, so the axis names whole decades
        found = logs[np.isfinite(logs)]
        reference = np.log10(REFERENCE_RATIO)
        low = min(float(found.min()) if found.size else reference, reference) - 0.5
        high = max(float(found.max()) if found.size else reference, reference) + 0.5
        middle, half = 0.5 * (low + high), max(0.5 * (high - low), 1.5)
        shown = self.ratio_plot.getViewBox().viewRange()[1]
        wanted = (middle - half, middle + half)
        self.ratio_plot.setYRange(*self.ratio_range.follow(tuple(shown), wanted), padding=0)


def _unit_text(entry: dict[str, Any] | None, compact: bool = False) -> str:
    """What a layer's unit bars say in words: how many units are dead, how much saturates
    (``compact``: the numbers only, the bars' colours saying which)."""
    if not entry:
        return ""
    parts = []
    if np.isfinite(entry["dead"]):
        dead = f"{int(entry['dead_units'].sum())}/{entry['units']}"
        parts.append(dead if compact else f"{dead} dead")
    if np.isfinite(entry["saturated"]):
        share = f"{100 * entry['saturated']:.0f}%"
        parts.append(share if compact else f"{share} saturated")
    return "\n".join(parts) or "n/a"
