"""Universal approximation with one hidden layer of sigmoid units: n units fitted to a target
by least squares, and the hand-built bump construction (two steep units per cell, an up-step
and a down-step) with every weight editable, so a student can move a bump or change its
height and see the network's output follow.

The fits, the construction, its error bound, the errors against n and the output of edited
weights are the engine's (``fit_sigmoid_units``, ``bump_construction``,
``approximation_sweep``, ``with_weights``, ``unit_contributions``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from gradient_lab.app.labs.lab_window import LabJob, LabWindow, labelled, spin

DEBOUNCE_MS = 150
TARGET = (128, 128, 128)  # reads on a light and a dark plot
FIT = (0, 114, 178)
BUILT = (213, 94, 0)
BUMP = (213, 94, 0, 110)
COLUMNS = ("unit", "bump", "w (slope)", "b (bias)", "a (output)")
EDITABLE = {2: "hidden_weights", 3: "hidden_biases", 4: "output_weights"}


@dataclass
class Approximations:
    """What one computation gives: the least-squares fit, the construction as built, and
    the sweep of errors against n (``approximation_sweep``'s arrays)."""

    settings: dict[str, Any]
    fit: Any
    bumps: Any
    sweep: dict[str, np.ndarray]


class Approximation(LabWindow):
    """Signals: ``open_experiment(Path)``, ``computed()``, ``edited()`` (the construction's
    weights were changed by hand and the output drawn again)."""

    edited = QtCore.Signal()

    title = "Universal approximation"
    summary = (
        "Least-squares output weights on n sigmoid units fit the target better as n grows, "
        "and the bump construction builds such a network by hand: two steep units per cell "
        "make a bump as high as the target there. Type a new weight in the table and watch "
        "its bump move or change height; the error bound holds for the weights as built."
    )
    example = "sine_regression.toml"
    example_hint = "a network of tanh units fitting a noisy sine: its curve bends into the wave"

    def __init__(self, registry: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(registry, parent)
        from gradient_lab.engine.instruments.theory import TARGETS

        self.outcome: Approximations | None = None
        self.network: Any = None  # the construction with the weights as edited
        self._rerun = self.debounce(DEBOUNCE_MS, self.compute)
        self.target_box = QtWidgets.QComboBox()
        for name in TARGETS:
            self.target_box.addItem(name, name)
        self.target_box.setToolTip("The function on [0, 1] to approximate")
        self.units_box = spin(1, 64, 6, "Sigmoid units of the least-squares fit")
        self.bumps_box = spin(1, 24, 5, "Cells of the bump construction (two units each)")
        self.steepness_box = QtWidgets.QDoubleSpinBox()
        self.steepness_box.setRange(1.0, 200.0)
        self.steepness_box.setValue(20.0)
        self.steepness_box.setDecimals(1)
        self.steepness_box.setKeyboardTracking(False)
        self.steepness_box.setToolTip(
            "K: each unit's slope is K / cell width; steeper steps make sharper bumps"
        )
        self.target_box.activated.connect(lambda _i: self._rerun.start())
        for box in (self.units_box, self.bumps_box, self.steepness_box):
            box.valueChanged.connect(lambda _v: self._rerun.start())
        self.controls.addWidget(labelled("target", self.target_box))
        self.controls.addWidget(labelled("fitted units", self.units_box))
        self.controls.addWidget(labelled("bumps", self.bumps_box))
        self.controls.addWidget(labelled("steepness", self.steepness_box))
        self.controls.addStretch(1)

        self.fit_plot = self._plot("least squares: n sigmoid units, output weights fitted")
        self.fit_target = self.fit_plot.plot(pen=_dashed(TARGET), name="target")
        self.fit_curve = self.fit_plot.plot(pen=pg.mkPen(FIT, width=3), name="network")
        self.bump_plot = self._plot("the bump construction: built, not trained")
        self.bump_target = self.bump_plot.plot(pen=_dashed(TARGET), name="target")
        self.bump_curve = self.bump_plot.plot(pen=pg.mkPen(BUILT, width=3), name="network")
        self.bump_parts: list[pg.PlotDataItem] = []
        self.error_plot = self._plot("largest error against the number of cells or units")
        self.error_plot.getPlotItem().legend.setOffset((10, -10))  # the empty corner
        self.error_plot.setLogMode(x=True, y=True)
        self.error_plot.setLabel("bottom", "n")
        self.fit_errors = self.error_plot.plot(
            pen=pg.mkPen(FIT, width=2), symbol="o", symbolBrush=FIT, symbolSize=6,
            name="least squares (n units)",
        )  # fmt: skip
        self.bump_errors = self.error_plot.plot(
            pen=pg.mkPen(BUILT, width=2), symbol="s", symbolBrush=BUILT, symbolSize=6,
            name="bumps (n cells)",
        )  # fmt: skip
        self.bump_bounds = self.error_plot.plot(pen=_dashed(BUILT), name="bumps' bound")

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip(
            "The construction's weights: unit k outputs a·σ(w·x + b). Double-click a value "
            "to type a new one"
        )
        self.table.itemChanged.connect(self._weight_typed)
        self.bias_edit = QtWidgets.QLineEdit("0")
        self.bias_edit.setToolTip("c, the output unit's bias")
        self.bias_edit.editingFinished.connect(self._bias_typed)
        self.reset_button = QtWidgets.QPushButton("Weights as built")
        self.reset_button.setToolTip("Undo every edit: the construction's own weights")
        self.reset_button.clicked.connect(self.reset_weights)
        self.construction_readout = QtWidgets.QLabel("")
        self.construction_readout.setWordWrap(True)
        self.fit_readout = QtWidgets.QLabel("")

        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.fit_plot, 1)
        left.addWidget(self.fit_readout)
        left.addWidget(self.bump_plot, 1)
        left.addWidget(self.construction_readout)
        edits = QtWidgets.QHBoxLayout()
        edits.addWidget(labelled("output bias c", self.bias_edit))
        edits.addWidget(self.reset_button)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(QtWidgets.QLabel("The construction's weights (editable)"))
        right.addWidget(self.table, 3)
        right.addLayout(edits)
        right.addWidget(self.error_plot, 2)
        views = QtWidgets.QHBoxLayout()
        views.addLayout(left, 3)
        views.addLayout(right, 2)
        self.body.addLayout(views, 1)
        self.resize(1240, 860)

    @staticmethod
    def _plot(title: str) -> pg.PlotWidget:
        plot = pg.PlotWidget(title=title)
        plot.setMenuEnabled(False)
        plot.setLabel("bottom", "x")
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.addLegend(offset=(-10, 10))
        return plot

    # ------------------------------------------------------------------ computing
    def current_settings(self) -> dict[str, Any]:
        return {
            "target": self.target_box.currentData(),
            "n_units": self.units_box.value(),
            "n_bumps": self.bumps_box.value(),
            "steepness": float(self.steepness_box.value()),
        }

    def compute(self) -> None:
        self._rerun.stop()
        settings = self.current_settings()
        target, steepness = settings["target"], settings["steepness"]
        last = self.outcome
        known = None
        if last is not None and (target, steepness) == (
            last.settings["target"],
            last.settings["steepness"],
        ):
            known = last.sweep

        def work(job: LabJob) -> Approximations:
            from gradient_lab.engine.instruments import theory

            fn = theory.TARGETS[settings["target"]]
            fit = theory.fit_sigmoid_units(fn, settings["n_units"])
            bumps = theory.bump_construction(fn, settings["n_bumps"], settings["steepness"])
            job.check()
            sweep = known  # the slow part: once per target and steepness
            if sweep is None:
                sweep = theory.approximation_sweep(target, steepness=steepness)
            return Approximations(settings, fit, bumps, sweep)

        self.run_job(work, self._show, "Fitting and building…")

    def _show(self, outcome: Approximations) -> None:
        self.outcome = outcome
        fit, sweep = outcome.fit, outcome.sweep
        self.fit_target.setData(fit.x, fit.target)
        self.fit_curve.setData(fit.x, fit.prediction)
        self.fit_readout.setText(
            f"{outcome.settings['n_units']} units: largest error {fit.max_error:.4g}, "
            f"RMS {fit.rms_error:.4g}."
        )
        self.fit_errors.setData(sweep["n_units"], sweep["fit_max_error"])
        self.bump_errors.setData(sweep["n_bumps"], sweep["bump_max_error"])
        self.bump_bounds.setData(sweep["n_bumps"], sweep["bump_error_bound"])
        ns = sorted({int(n) for n in (*sweep["n_units"], *sweep["n_bumps"])})
        self.error_plot.getPlotItem().getAxis("bottom").setTicks(
            [[(math.log10(n), str(n)) for n in ns], []]  # positions on the log axis
        )
        self.bump_target.setData(outcome.bumps.x, outcome.bumps.target)
        self.reset_weights()

    def reset_weights(self) -> None:
        """The construction's weights as built."""
        if self.outcome is not None:
            self._set_network(self.outcome.bumps)

    def set_weight(self, column: str, unit: int, value: float) -> None:
        """Replace one of the construction's weights (``hidden_weights``, ``hidden_biases``
        or ``output_weights`` of ``unit``) and draw the network's output again."""
        from gradient_lab.engine.instruments.theory import with_weights

        values = getattr(self.network, column).copy()
        values[unit] = float(value)
        self._set_network(with_weights(self.network, **{column: values}))

    def set_output_bias(self, value: float) -> None:
        from gradient_lab.engine.instruments.theory import with_weights

        self._set_network(with_weights(self.network, output_bias=float(value)))

    def _set_network(self, network: Any) -> None:
        from gradient_lab.engine.instruments.theory import unit_contributions

        self.network = network
        self.bump_curve.setData(network.x, network.prediction)
        parts = unit_contributions(
            network.x,
            network.hidden_weights,
            network.hidden_biases,
            network.output_weights,
            group=2,
        )
        while len(self.bump_parts) > len(parts):
            self.bump_plot.removeItem(self.bump_parts.pop())
        while len(self.bump_parts) < len(parts):
            self.bump_parts.append(self.bump_plot.plot(pen=pg.mkPen(BUMP, width=1)))
        for curve, part in zip(self.bump_parts, parts, strict=True):
            curve.setData(network.x, part)
        self._fill_table(network)
        self.bias_edit.setText(f"{network.output_bias:.6g}")
        assert self.outcome is not None
        built = self.outcome.bumps
        if network is built:
            self.construction_readout.setText(
                f"{len(built.heights)} bumps ({2 * len(built.heights)} units): largest error "
                f"{built.max_error:.4g}, within the guaranteed bound {built.error_bound:.4g}."
            )
        else:
            self.construction_readout.setText(
                f"Edited: largest error {network.max_error:.4g} (as built: "
                f"{built.max_error:.4g}, bound {built.error_bound:.4g} for those weights)."
            )
            self.edited.emit()

    def _fill_table(self, network: Any) -> None:
        self.table.blockSignals(True)
        units = len(network.hidden_weights)
        self.table.setRowCount(units)
        for k in range(units):
            fixed = [str(k + 1), f"{k // 2 + 1} ({'up' if k % 2 == 0 else 'down'})"]
            for column, text in enumerate(fixed):
                item = QtWidgets.QTableWidgetItem(text)
                item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(k, column, item)
            for column, name in EDITABLE.items():
                value = float(getattr(network, name)[k])
                self.table.setItem(k, column, QtWidgets.QTableWidgetItem(f"{value:.6g}"))
        self.table.blockSignals(False)

    def _weight_typed(self, item: QtWidgets.QTableWidgetItem) -> None:
        name = EDITABLE.get(item.column())
        if name is None or self.network is None:
            return
        try:
            value = float(item.text())
        except ValueError:
            value = float("nan")
        if not np.isfinite(value):
            self.show_error(f"{item.text()!r} is not a number: the weight is unchanged.")
            self._fill_table(self.network)
            return
        self.status.setText("")
        self.set_weight(name, item.row(), value)

    def _bias_typed(self) -> None:
        if self.network is None:
            return
        try:
            value = float(self.bias_edit.text())
        except ValueError:
            self.show_error(f"{self.bias_edit.text()!r} is not a number: c is unchanged.")
            self.bias_edit.setText(f"{self.network.output_bias:.6g}")
            return
        if value != self.network.output_bias:
            self.set_output_bias(value)


def _dashed(colour: tuple[int, ...]) -> Any:
    return pg.mkPen(colour, width=2, style=QtCore.Qt.PenStyle.DashLine)
