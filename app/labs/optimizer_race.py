"""The optimizer race: every optimizer plugin from one start on a 2D objective plugin, the paths
growing on the contour map as they run (the Distill "Why momentum really works" view, on the
real plugins), with the learning rate and the momentum as sliders that re-run the race at once.

The race, the map and every rate are the engine's (``run_optimizer``, ``race_arrays``,
``objective_grid``, ``contour_levels``, ``quadratic_theory``, ``sgd_theory_rate``): the whole
race is computed off the GUI thread in a fraction of a second, then drawn step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.editor.fields import ParamField
from gradient_lab.app.labs.lab_window import (
    LabJob,
    LabWindow,
    labelled,
    param_box,
    spin,
)
from gradient_lab.engine.plugin_api import PluginError

TOLERANCE = 1e-6  # "reached": within this distance of a known minimum
GRID = 121  # contour map points per axis
LEVELS = 14
LR_LOW, LR_HIGH, LR_TICKS = -4, 1, 100  # the learning-rate slider: 1e-4 to 10, 100 per decade
DEBOUNCE_MS = 150
FRAME_MS = 16
SPEEDS = (15, 60, 240, 1000)  # steps drawn per second
# Nine colours that read on the map and on a light or dark plot (Okabe-Ito's without yellow
# and black, a grey, a purple and a wine), ordered so that the built-in optimizers, listed by
# name, give sgd blue, momentum vermillion and nesterov green
PATH_COLOURS = [
    (128, 128, 128),
    (86, 180, 233),
    (204, 121, 167),
    (117, 112, 179),
    (230, 159, 0),
    (213, 94, 0),
    (0, 158, 115),
    (160, 40, 100),
    (0, 114, 178),
]
MAP_COLOURS = pg.ColorMap([0.0, 1.0], [(255, 255, 255), (168, 190, 212)])


@dataclass
class RaceOutcome:
    """What one run of the race gives: the engine's arrays and, on the quadratic, the
    theory's rates for each optimizer (NaN where there is no closed form)."""

    arrays: dict[str, np.ndarray]
    results: list[Any]
    theory_rates: list[float]
    grid: tuple[Any, ...]
    grid_key: Any
    steps: int


def lr_of(position: int) -> float:
    """The learning rate at a slider position (log scale)."""
    return float(10.0 ** (LR_LOW + position / LR_TICKS))


def position_of(lr: float) -> int:
    return round((math.log10(max(lr, 10.0**LR_LOW)) - LR_LOW) * LR_TICKS)


class OptimizerRace(LabWindow):
    """Signals: ``open_experiment(Path)``, ``computed()`` (a race is in), ``frame_drawn(k)``
    (the paths are drawn up to step k)."""

    frame_drawn = QtCore.Signal(int)

    title = "Optimizer race"
    summary = (
        "Every optimizer starts from the same point (click the map to move it): on the "
        "quadratic, plain gradient descent zig-zags across the narrow valley while momentum "
        "rolls along it, and raising κ slows both. Press a theory button: at gradient "
        "descent's best step the measured rate meets (κ−1)/(κ+1), and momentum at its best "
        "(α, β) reaches (√κ−1)/(√κ+1)."
    )
    example = "moons_relu.toml"
    example_hint = "a ReLU network trained with SGD and momentum 0.9"

    def __init__(self, registry: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(registry, parent)
        self.lr = 0.1
        self.momentum = 0.9
        self.start_point: tuple[float, float] | None = None
        self.outcome: RaceOutcome | None = None
        self.theory: Any = None
        self.refused: dict[str, str] = {}
        self.frame = 0
        self.playing = True
        self._grid_cache: tuple[Any, tuple[Any, ...]] | None = None
        self._frame_origin = 0
        self._clock = QtCore.QElapsedTimer()
        self._rerun = self.debounce(DEBOUNCE_MS, self.compute)
        self._build_controls()
        self._build_views()
        self.resize(1280, 880)
        self._set_objective("quadratic")
        self._rerun.stop()  # the first race runs when the window shows

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        self.objective_box = QtWidgets.QComboBox()
        for name in self.registry.names("objective"):
            self.objective_box.addItem(name, name)
        self.objective_box.setToolTip("The 2D objective plugin to race on")
        self.objective_box.activated.connect(
            lambda _i: self._set_objective(self.objective_box.currentData())
        )
        self.param_row = QtWidgets.QHBoxLayout()
        self.fields: dict[str, ParamField] = {}
        self.steps_box = spin(10, 5000, 300, "Steps each optimizer takes", step=50)
        self.steps_box.valueChanged.connect(lambda _v: self._rerun.start())

        self.lr_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.lr_slider.setRange(0, (LR_HIGH - LR_LOW) * LR_TICKS)
        self.lr_slider.setValue(position_of(self.lr))
        self.lr_slider.setMinimumWidth(200)
        self.lr_slider.setToolTip(
            "The learning rate of every optimizer that has one (log scale, 1e-4 to 10)"
        )
        self.lr_slider.valueChanged.connect(self._lr_moved)
        self.lr_label = QtWidgets.QLabel()
        self.lr_label.setMinimumWidth(70)
        self.momentum_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.momentum_slider.setRange(0, 99)
        self.momentum_slider.setValue(round(self.momentum * 100))
        self.momentum_slider.setMinimumWidth(160)
        self.momentum_slider.setToolTip(
            "The momentum β of the optimizers that use one by default (momentum, nesterov); "
            "sgd stays plain gradient descent"
        )
        self.momentum_slider.valueChanged.connect(self._momentum_moved)
        self.momentum_label = QtWidgets.QLabel()
        self.momentum_label.setMinimumWidth(40)
        self._show_settings()

        self.gd_button = QtWidgets.QPushButton("GD's best step")
        self.gd_button.setToolTip("Learning rate 2/(λmin + λmax): gradient descent's fastest")
        self.gd_button.clicked.connect(self._use_gd_best)
        self.momentum_button = QtWidgets.QPushButton("Momentum's best (α, β)")
        self.momentum_button.setToolTip(
            "Learning rate 4/(√λmax + √λmin)² and momentum ((√κ−1)/(√κ+1))²: heavy ball's fastest"
        )
        self.momentum_button.clicked.connect(self._use_momentum_best)

        first = QtWidgets.QHBoxLayout()
        first.addWidget(labelled("objective", self.objective_box))
        first.addLayout(self.param_row)
        first.addWidget(labelled("steps", self.steps_box))
        self.reset_start = QtWidgets.QPushButton("Default start")
        self.reset_start.setToolTip("Start from the objective's own starting point again")
        self.reset_start.clicked.connect(lambda: self.set_start(None))
        first.addWidget(self.reset_start)
        first.addStretch(1)
        second = QtWidgets.QHBoxLayout()
        second.addWidget(QtWidgets.QLabel("learning rate"))
        second.addWidget(self.lr_slider, 2)
        second.addWidget(self.lr_label)
        second.addWidget(QtWidgets.QLabel("momentum"))
        second.addWidget(self.momentum_slider, 1)
        second.addWidget(self.momentum_label)
        second.addWidget(self.gd_button)
        second.addWidget(self.momentum_button)
        rows = QtWidgets.QVBoxLayout()
        rows.addLayout(first)
        rows.addLayout(second)
        self.controls.addLayout(rows)

    def _build_views(self) -> None:
        self.map = pg.PlotWidget(title="the objective and the optimizers' paths")
        self.map.setMenuEnabled(False)
        self.map.setLabel("bottom", "x")
        self.map.setLabel("left", "y")
        self.map.setAspectLocked(False)
        self.image = pg.ImageItem()
        self.map.addItem(self.image)
        self.isocurves: list[pg.IsocurveItem] = []
        self.paths: dict[str, pg.PlotDataItem] = {}
        self.heads = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k", width=1))
        self.start_marker = pg.ScatterPlotItem(
            size=12, symbol="o", pen=pg.mkPen("k", width=2), brush=pg.mkBrush("w")
        )
        self.minima_marker = pg.ScatterPlotItem(
            size=14, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush(0, 0, 0, 160)
        )
        for item in (self.minima_marker, self.start_marker, self.heads):
            item.setZValue(20)
            self.map.addItem(item)
        self.map.scene().sigMouseClicked.connect(self._map_clicked)

        self.value_plot = pg.PlotWidget(title="objective value along each path")
        self.value_plot.setMenuEnabled(False)
        self.value_plot.setLabel("bottom", "step")
        self.value_plot.getViewBox().disableAutoRange(pg.ViewBox.YAxis)
        self.value_curves: dict[str, pg.PlotDataItem] = {}

        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(
            ["optimizer", "settings", f"to within {TOLERANCE:g}", "rate", "theory"]
        )
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip(
            f"Untick an optimizer to hide its path. To within {TOLERANCE:g}: the first step "
            "that close to a known minimum. Rate: the measured per-step contraction of the "
            "distance to the nearest minimum over the second half of the run (below 1 "
            "converges). Theory: the closed-form rate of SGD and momentum on the quadratic."
        )
        self.table.itemChanged.connect(self._visibility_changed)

        self.theory_label = QtWidgets.QLabel()
        self.theory_label.setWordWrap(True)
        self.play_button = QtWidgets.QPushButton("Pause")
        self.play_button.clicked.connect(self.toggle_play)
        self.restart_button = QtWidgets.QPushButton("Restart")
        self.restart_button.setToolTip("Draw the paths again from step 0")
        self.restart_button.clicked.connect(self.restart)
        self.speed_box = QtWidgets.QComboBox()
        for speed in SPEEDS:
            self.speed_box.addItem(f"{speed} steps/s", speed)
        self.speed_box.setCurrentIndex(SPEEDS.index(60))
        self.speed_box.activated.connect(lambda _i: self._keep_position())
        self.step_label = QtWidgets.QLabel("step 0")
        self.step_label.setMinimumWidth(110)
        player = QtWidgets.QHBoxLayout()
        player.addWidget(self.play_button)
        player.addWidget(self.restart_button)
        player.addWidget(self.speed_box)
        player.addWidget(self.step_label)
        player.addStretch(1)

        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.value_plot, 1)
        right.addWidget(self.theory_label)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.map, 1)
        left.addLayout(player)
        views = QtWidgets.QHBoxLayout()
        views.addLayout(left, 3)
        views.addLayout(right, 2)
        self.body.addLayout(views, 3)
        self.body.addWidget(self.table, 2)

        self.animation = QtCore.QTimer(self)
        self.animation.setInterval(FRAME_MS)
        self.animation.timeout.connect(self._tick)

    # ------------------------------------------------------------------ settings
    def _set_objective(self, name: str) -> None:
        self.objective_box.setCurrentIndex(max(0, self.objective_box.findData(name)))
        while self.param_row.count():
            item = self.param_row.takeAt(0)
            widget = None if item is None else item.widget()
            if widget is not None:
                widget.deleteLater()
        self.fields = {}
        for param in self.registry.get("objective", name).params:
            box, field = param_box(param, param.default, self.registry)
            field.changed.connect(lambda _v: self._objective_changed())
            self.fields[param.name] = field
            self.param_row.addWidget(box)
        self.start_point = None
        self._objective_changed()

    def objective_values(self) -> dict[str, Any]:
        return {name: field.value for name, field in self.fields.items()}

    def make_objective(self) -> Any:
        return self.registry.create(
            "objective", self.objective_box.currentData(), **self.objective_values()
        )

    def _objective_changed(self) -> None:
        try:
            objective = self.make_objective()
        except PluginError as exc:
            self.show_error(str(exc))
            return
        self.theory = None
        if objective.name == "quadratic":  # the closed forms are for quadratics
            from gradient_lab.engine.instruments.theory import (
                hessian_eigenvalues,
                quadratic_theory,
            )

            self.theory = quadratic_theory(hessian_eigenvalues(objective))
        self._show_theory()
        self._rerun.start()

    def _show_theory(self) -> None:
        t = self.theory
        self.gd_button.setVisible(t is not None)
        self.momentum_button.setVisible(t is not None)
        if t is None:
            self.theory_label.setText(
                "The theory's rates are closed forms for the quadratic; on this objective the "
                "measured rates are the distance's contraction near where each path ends."
            )
            return
        self.theory_label.setText(
            f"Theory for κ = {t.condition_number:g}: gradient descent at its best step "
            f"α = 2/(1+κ) = {t.gd_lr:.4g} contracts by (κ−1)/(κ+1) = {t.gd_rate:.4f} per step; "
            f"heavy-ball momentum at α = {t.momentum_lr:.4g}, β = {t.momentum:.4g} by "
            f"(√κ−1)/(√κ+1) = {t.momentum_rate:.4f}."
        )

    def _lr_moved(self, position: int) -> None:
        self.lr = lr_of(position)
        self._show_settings()
        self._rerun.start()

    def _momentum_moved(self, position: int) -> None:
        self.momentum = position / 100.0
        self._show_settings()
        self._rerun.start()

    def set_lr(self, lr: float, momentum: float | None = None) -> None:
        """Exact settings (the theory's), the sliders moved to the nearest position."""
        self.lr = float(lr)
        if momentum is not None:
            self.momentum = float(momentum)
        for slider, value in (
            (self.lr_slider, position_of(self.lr)),
            (self.momentum_slider, round(self.momentum * 100)),
        ):
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)
        self._show_settings()
        self._rerun.start()

    def _use_gd_best(self) -> None:
        if self.theory is not None:
            self.set_lr(self.theory.gd_lr)

    def _use_momentum_best(self) -> None:
        if self.theory is not None:
            self.set_lr(self.theory.momentum_lr, self.theory.momentum)

    def _show_settings(self) -> None:
        self.lr_label.setText(f"{self.lr:.4g}")
        self.momentum_label.setText(f"{self.momentum:.2f}")

    def set_start(self, point: tuple[float, float] | None) -> None:
        """Race from ``point`` (None: the objective's own start)."""
        self.start_point = None if point is None else (float(point[0]), float(point[1]))
        self._rerun.start()

    def _map_clicked(self, event: Any) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        view = self.map.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        point = view.mapSceneToView(event.scenePos())
        self.set_start((point.x(), point.y()))

    def optimizer_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """Each optimizer plugin with the sliders' settings: the learning rate for every one
        that declares one, the momentum for those whose declared momentum is above 0."""
        specs = []
        for name in self.registry.names("optimizer"):
            declared = {p.name: p for p in self.registry.get("optimizer", name).params}
            hp: dict[str, Any] = {}
            if "lr" in declared:
                hp["lr"] = self.lr
            momentum = declared.get("momentum")
            if momentum is not None and momentum.type == "float" and momentum.default > 0.0:
                hp["momentum"] = self.momentum
            specs.append((name, hp))
        return specs

    # ------------------------------------------------------------------ the race
    def compute(self) -> None:
        self._rerun.stop()
        try:
            objective = self.make_objective()
        except PluginError as exc:
            self.show_error(str(exc))
            return
        optimizers, self.refused = [], {}
        for name, hp in self.optimizer_specs():
            try:
                optimizers.append((name, self.registry.create("optimizer", name, **hp)))
            except PluginError as exc:  # nesterov at momentum 0: said in its row
                self.refused[name] = str(exc)
        grid_key = (objective.name, tuple(sorted(self.objective_values().items())))
        cached = self._grid_cache
        grid = cached[1] if cached is not None and cached[0] == grid_key else None
        start, steps = self.start_point, self.steps_box.value()
        is_quadratic = self.theory is not None

        def work(job: LabJob) -> RaceOutcome:
            from gradient_lab.engine.instruments import theory

            nonlocal grid
            if grid is None:
                x, y, values = theory.objective_grid(objective, n=GRID)
                levels = theory.contour_levels(values, LEVELS, geometric=bool(objective.minima))
                grid = (x, y, values, levels, theory.contour_bands(values, levels))
            results = []
            for name, optimizer in optimizers:
                job.check()
                results.append(
                    theory.run_optimizer(objective, optimizer, start, steps, TOLERANCE, name)
                )
            arrays = theory.race_arrays(objective, results, TOLERANCE)
            rates = [math.nan] * len(results)
            if is_quadratic:
                eigenvalues = theory.hessian_eigenvalues(objective)
                rates = [theory.sgd_theory_rate(r.hp, eigenvalues) for r in results]
            return RaceOutcome(arrays, results, rates, grid, grid_key, steps)

        self.run_job(work, self._show_race, "Racing…")

    def _show_race(self, outcome: RaceOutcome) -> None:
        previous = self.outcome
        self.outcome = outcome
        if self._grid_cache is None or self._grid_cache[0] != outcome.grid_key:
            self._grid_cache = (outcome.grid_key, outcome.grid)
            self._draw_map(outcome)
        finished = previous is not None and self.frame >= previous.steps
        self.frame = outcome.steps if finished else min(self.frame, outcome.steps)
        self._draw_paths(outcome)
        self._fill_table(outcome)
        self._draw_frame()
        if self.playing and self.frame < outcome.steps:
            self._play_from(self.frame)
        else:
            self._show_player()

    def _draw_map(self, outcome: RaceOutcome) -> None:
        x, y, values, levels, bands = outcome.grid
        dx, dy = x[1] - x[0], y[1] - y[0]
        self.image.setImage(bands.T, levels=(0, max(1, len(levels))))
        self.image.setLookupTable(MAP_COLOURS.getLookupTable(nPts=len(levels) + 1))
        self.image.setRect(
            QtCore.QRectF(x[0] - dx / 2, y[0] - dy / 2, dx * len(x), dy * len(y))
        )  # pixel centres on the grid points; the isocurves, its children, agree
        for curve in self.isocurves:
            self.map.removeItem(curve)
            curve.setParentItem(None)
        self.isocurves = []
        for level in levels:
            curve = pg.IsocurveItem(values.T, level, pen=pg.mkPen((120, 130, 145), width=1))
            curve.setParentItem(self.image)
            self.isocurves.append(curve)
        arrays = outcome.arrays
        minima = arrays["minima"]
        self.minima_marker.setData(minima[:, 0], minima[:, 1])
        (x0, x1), (y0, y1) = arrays["bounds"]
        self.map.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)
        self.map.getPlotItem().getViewBox().disableAutoRange()
        # the values' axis spans the map's values (diverging paths leave it at the top); on
        # the log scale down to 1e-16, where rounding takes over
        logarithmic = bool(len(minima)) and bool(levels[-1] > 0.0)
        self.value_plot.setLogMode(y=logarithmic)
        if logarithmic:
            self.value_plot.setYRange(-16.0, math.log10(levels[-1]), padding=0.02)
        elif len(levels):
            self.value_plot.setYRange(levels[0], levels[-1], padding=0.1)

    def _draw_paths(self, outcome: RaceOutcome) -> None:
        labels = list(outcome.arrays["optimizers"])
        for name in list(self.paths):
            if name not in labels:
                self.map.removeItem(self.paths.pop(name))
                self.value_plot.removeItem(self.value_curves.pop(name))
        for i, label in enumerate(labels):
            if label not in self.paths:
                pen = pg.mkPen(PATH_COLOURS[i % len(PATH_COLOURS)], width=2)
                self.paths[label] = pg.PlotDataItem(pen=pen, connect="finite")
                self.paths[label].setZValue(10)
                self.map.addItem(self.paths[label])
                self.value_curves[label] = pg.PlotDataItem(pen=pen, connect="finite")
                self.value_plot.addItem(self.value_curves[label])
        start = outcome.arrays["start"]
        self.start_marker.setData([start[0]], [start[1]])
        self.value_plot.setXRange(0, outcome.steps, padding=0.02)

    def _fill_table(self, outcome: RaceOutcome) -> None:
        arrays = outcome.arrays
        labels = list(arrays["optimizers"])
        names = [self.table.item(row, 0) for row in range(self.table.rowCount())]
        hidden = {
            item.text()
            for item in names
            if item is not None and item.checkState() == QtCore.Qt.CheckState.Unchecked
        }
        self.table.blockSignals(True)
        self.table.setRowCount(len(labels) + len(self.refused))
        for i, label in enumerate(labels):
            result = outcome.results[i]
            name = QtWidgets.QTableWidgetItem(label)
            name.setFlags(name.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            checked = label not in hidden
            name.setCheckState(
                QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked
            )
            name.setIcon(_swatch(PATH_COLOURS[i % len(PATH_COLOURS)]))
            cells = [
                name,
                QtWidgets.QTableWidgetItem(_settings(result.hp)),
                QtWidgets.QTableWidgetItem(_outcome(arrays, i, outcome.steps)),
                QtWidgets.QTableWidgetItem(_rate(arrays["rates"][i])),
                QtWidgets.QTableWidgetItem(_theory(outcome.theory_rates[i], self.theory)),
            ]
            for column, cell in enumerate(cells):
                self.table.setItem(i, column, cell)
            self.paths[label].setVisible(checked)
            self.value_curves[label].setVisible(checked)
        for j, (label, message) in enumerate(self.refused.items()):
            row = len(labels) + j
            self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(label))
            self.table.setItem(row, 1, QtWidgets.QTableWidgetItem(""))
            self.table.setItem(row, 2, QtWidgets.QTableWidgetItem(f"refused: {message}"))
            for column in (3, 4):
                self.table.setItem(row, column, QtWidgets.QTableWidgetItem("—"))
        self.table.blockSignals(False)

    def _visibility_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if item.column() == 0 and item.text() in self.paths:
            shown = item.checkState() == QtCore.Qt.CheckState.Checked
            self.paths[item.text()].setVisible(shown)
            self.value_curves[item.text()].setVisible(shown)
            self._draw_frame()

    # ------------------------------------------------------------------ animation
    def _play_from(self, frame: int) -> None:
        self.frame, self._frame_origin = frame, frame
        self.playing = True
        self._clock.start()
        self.animation.start()
        self._show_player()

    def _keep_position(self) -> None:
        if self.animation.isActive():
            self._play_from(self.frame)

    def toggle_play(self) -> None:
        if self.outcome is None:
            return
        if self.animation.isActive():
            self.animation.stop()
            self.playing = False
            self._show_player()
        elif self.frame >= self.outcome.steps:
            self.restart()
        else:
            self._play_from(self.frame)

    def restart(self) -> None:
        """Draw the race again from step 0."""
        if self.outcome is not None:
            self._play_from(0)
            self._draw_frame()

    def _tick(self) -> None:
        if self.outcome is None:
            self.animation.stop()
            return
        speed = self.speed_box.currentData()
        elapsed = self._clock.elapsed() / 1000.0
        self.frame = min(self.outcome.steps, self._frame_origin + int(elapsed * speed))
        self._draw_frame()
        if self.frame >= self.outcome.steps:
            self.animation.stop()
            self._show_player()

    def _draw_frame(self) -> None:
        outcome = self.outcome
        if outcome is None:
            return
        k = self.frame
        arrays = outcome.arrays
        heads_x, heads_y, brushes = [], [], []
        steps = np.arange(k + 1)
        for i, label in enumerate(arrays["optimizers"]):
            path = arrays["trajectories"][i, : k + 1]
            self.paths[label].setData(path[:, 0], path[:, 1])
            self.value_curves[label].setData(steps, arrays["values"][i, : k + 1])
            if self.paths[label].isVisible() and np.all(np.isfinite(path[-1])):
                heads_x.append(path[-1, 0])
                heads_y.append(path[-1, 1])
                brushes.append(pg.mkBrush(PATH_COLOURS[i % len(PATH_COLOURS)]))
        self.heads.setData(heads_x, heads_y, brush=brushes)
        self.step_label.setText(f"step {k} of {outcome.steps}")
        self.frame_drawn.emit(k)

    def _show_player(self) -> None:
        self.play_button.setText("Pause" if self.animation.isActive() else "Play")

    def stop(self) -> None:
        self.animation.stop()
        self._show_player()


def _swatch(colour: tuple[int, int, int]) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(12, 12)
    pixmap.fill(QtGui.QColor(*colour))
    return QtGui.QIcon(pixmap)


def _settings(hp: dict[str, Any]) -> str:
    shown = [f"{key} {hp[key]:.4g}" for key in ("lr", "momentum") if key in hp]
    return ", ".join(shown) or "its defaults"


def _outcome(arrays: dict[str, np.ndarray], i: int, steps: int) -> str:
    if arrays["skipped"][i]:
        return f"skipped: {arrays['skipped'][i]}"
    if arrays["diverged_at"][i] >= 0:
        return f"diverged at step {arrays['diverged_at'][i]}"
    if arrays["steps_to_tolerance"][i] >= 0:
        return f"at step {arrays['steps_to_tolerance'][i]}"
    if not len(arrays["minima"]):
        return f"no minimum; f = {arrays['values'][i, -1]:.4g} at step {steps}"
    return f"not in {steps} steps (f = {arrays['values'][i, -1]:.3g})"


def _rate(rate: float) -> str:
    if not math.isfinite(rate):
        return "—"
    return f"{rate:.4f}" + (" (diverging)" if rate > 1.0 else "")


def _theory(rate: float, theory: Any) -> str:
    if theory is None:
        return "—"
    return f"{rate:.4f}" if math.isfinite(rate) else "no closed form"
