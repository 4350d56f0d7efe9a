"""A/B comparison: the experiment and a copy with one change (say the optimizer), each in a
session of its own, trained in lockstep on the same data and seed: both always stop at the same
step. Their curves are overlaid, their outputs and landscapes side by side."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.bridge import ServiceBridge
from gradient_lab.app.editor.experiment_editor import ExperimentEditor
from gradient_lab.app.views.landscape_view import LandscapeView
from gradient_lab.app.views.output_view import OutputView

TICK_MS = 30
MAX_CHUNK = 4096
COLOURS = {"A": (8, 119, 189), "B": (230, 120, 20)}


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two experiment documents differ, as "field: A → B" lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += differences(x, y, f"{where}[{i}]")
        return out
    return [] if a == b else [f"{where}: {a!r} → {b!r}"]


class CompareSetup(QtWidgets.QDialog):
    """Edit B, a copy of the experiment; ``chosen(a, b)`` when the user starts the comparison."""

    chosen = QtCore.Signal(object, object)

    def __init__(self, experiment: Any, registry: Any, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Compare A/B: change B")
        self.experiment = experiment
        self.editor = ExperimentEditor(self)
        self.editor.set_experiment(experiment, registry)
        self.editor.confirm = lambda: True
        self.editor.apply_button.hide()
        self.summary = QtWidgets.QLabel("B is A so far: change what B should differ in.")
        self.summary.setWordWrap(True)
        self.editor.changed.connect(self._changed)
        self.start_button = QtWidgets.QPushButton("Start the comparison")
        self.start_button.setEnabled(False)
        self.start_button.clicked.connect(self._start)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.start_button)
        self.resize(460, 700)
        self.b: Any = None

    def _changed(self, experiment: Any) -> None:
        from gradient_lab.engine.training.experiment import experiment_to_dict

        self.b = experiment
        lines = differences(experiment_to_dict(self.experiment), experiment_to_dict(experiment))
        self.summary.setText("B differs in:\n" + "\n".join(lines) if lines else "B is A so far.")
        self.start_button.setEnabled(bool(lines))

    def _start(self) -> None:
        self.chosen.emit(self.experiment, self.b)
        self.accept()


class Lockstep(QtCore.QObject):
    """Sends each command to every service and the next only when all are done, so the runs
    stay at the same step; playing grows the chunk while a round takes under a tick."""

    def __init__(self, services: list[Any], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.pending: list[Any] = []
        self.playing = False
        self.chunk = 1
        self.started = 0.0
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(TICK_MS // 3)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    @property
    def idle(self) -> bool:
        return all(f.done() for f in self.pending)

    def send(self, command: Callable[[Any], Any]) -> bool:
        """``command(service)`` to every service, once all finished the last one."""
        if not self.idle:
            return False
        self.started = time.perf_counter()
        self.pending = [command(service) for service in self.services]
        return True

    def play(self, on: bool) -> None:
        self.playing, self.chunk = on, 1

    def _tick(self) -> None:
        if not self.playing or not self.idle:
            return
        if self.pending:  # the last round's time sets the next chunk
            took = time.perf_counter() - self.started
            self.chunk = min(
                MAX_CHUNK, self.chunk * 2 if took < TICK_MS / 1000 else max(1, self.chunk // 2)
            )
        chunk = self.chunk
        self.send(lambda service: service.run(chunk))


class CompareWindow(QtWidgets.QMainWindow):
    """A and B side by side, in lockstep."""

    def __init__(self, a: Any, b: Any, registry: Any, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        from gradient_lab.engine.service.worker import SessionService
        from gradient_lab.engine.training.experiment import experiment_to_dict

        self.setWindowTitle("Gradient Lab — A/B comparison")
        self.resize(1300, 850)
        self.lines = differences(experiment_to_dict(a), experiment_to_dict(b))
        self.services = {
            "A": SessionService(a, registry),
            "B": SessionService(b, registry),
        }
        self.bridges = {name: ServiceBridge(svc, self) for name, svc in self.services.items()}
        self.latest: dict[str, Any] = {}
        self.outputs = {name: OutputView() for name in self.services}
        self.landscapes = {
            name: LandscapeView(lambda svc=svc: svc) for name, svc in self.services.items()
        }
        self.steps: dict[str, list[tuple[float, float]]] = {name: [] for name in self.services}
        self.epochs: dict[str, list[dict[str, Any]]] = {name: [] for name in self.services}
        self.lockstep = Lockstep(list(self.services.values()), self)

        self.loss_plot = pg.PlotWidget(title="loss per epoch (training solid, validation dashed)")
        self.metric_plot = pg.PlotWidget(title="validation metric per epoch")
        self.curves: dict[str, Any] = {}
        for plot in (self.loss_plot, self.metric_plot):
            plot.addLegend(offset=(-10, 10))
            plot.setMenuEnabled(False)
            plot.setLabel("bottom", "step")
        for name, colour in COLOURS.items():
            self.curves[f"{name} train"] = self.loss_plot.plot(
                pen=pg.mkPen(colour, width=2), name=f"{name} train"
            )
            self.curves[f"{name} val"] = self.loss_plot.plot(
                pen=pg.mkPen(colour, width=2, style=QtCore.Qt.PenStyle.DashLine),
                name=f"{name} validation",
            )
            self.curves[f"{name} metric"] = self.metric_plot.plot(
                pen=pg.mkPen(colour, width=2), name=name
            )
        self._build()
        for name, bridge in self.bridges.items():
            bridge.snapshots.connect(lambda snaps, name=name: self._snapshots(name, snaps))
        for service in self.services.values():
            service.start()

    def _build(self) -> None:
        bar = self.addToolBar("Comparison")
        self.play_action = QtGui.QAction("Play", self)
        self.play_action.setCheckable(True)
        self.play_action.setShortcut(QtGui.QKeySequence("Space"))
        self.play_action.toggled.connect(self._play)
        self.step_action = QtGui.QAction("Step minibatch", self)
        self.step_action.setShortcut(QtGui.QKeySequence("Shift+Right"))
        self.step_action.triggered.connect(lambda: self.lockstep.send(lambda s: s.run(1)))
        self.epoch_action = QtGui.QAction("Step epoch", self)
        self.epoch_action.setShortcut(QtGui.QKeySequence("Ctrl+Right"))
        self.epoch_action.triggered.connect(self._epoch)
        for action in (self.play_action, self.step_action, self.epoch_action):
            bar.addAction(action)
            self.addAction(action)
        self.state = QtWidgets.QLabel()
        bar.addWidget(self.state)
        heading = QtWidgets.QLabel("B differs from A in: " + "; ".join(self.lines))
        heading.setWordWrap(True)
        sides = QtWidgets.QHBoxLayout()
        for name in self.services:
            box = QtWidgets.QGroupBox(name)
            layout = QtWidgets.QVBoxLayout(box)
            tabs = QtWidgets.QTabWidget()
            tabs.addTab(self.outputs[name], "output")
            tabs.addTab(self.landscapes[name], "loss landscape")
            layout.addWidget(tabs)
            sides.addWidget(box)
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.metric_plot)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.addWidget(heading)
        layout.addLayout(sides, 3)
        layout.addLayout(plots, 2)
        self.setCentralWidget(central)

    def _play(self, on: bool) -> None:
        self.lockstep.play(on)
        self.play_action.setText("Pause" if on else "Play")

    def _epoch(self) -> None:
        a = self.latest.get("A")
        if a is None:
            return
        self.lockstep.send(lambda service: service.epoch())

    def _snapshots(self, name: str, snapshots: list[Any]) -> None:
        first = snapshots[0]
        if name not in self.latest:
            self.outputs[name].set_facts(first.facts)
            self.landscapes[name].set_facts(first.facts)
        for snap in snapshots:
            snap.merge_epochs(self.epochs.setdefault(name, []))
        self.latest[name] = snapshots[-1]
        self.outputs[name].show_snapshot(snapshots[-1])
        self.landscapes[name].show_snapshot(snapshots[-1])
        self._draw_curves(name)
        self.state.setText(
            "   " + "   ".join(f"{n}: step {s.step}" for n, s in sorted(self.latest.items()))
        )

    def _draw_curves(self, name: str) -> None:
        epochs = self.epochs[name]
        steps = [r["step"] for r in epochs]
        self.curves[f"{name} train"].setData(steps, [r["train_loss"] for r in epochs])
        self.curves[f"{name} val"].setData(steps, [r.get("val_loss", float("nan")) for r in epochs])
        metric = next((k for k in ("val_accuracy", "val_r2") if epochs and k in epochs[-1]), None)
        if metric is not None:
            self.metric_plot.setTitle(f"{metric.replace('_', ' ')} per epoch")
            self.curves[f"{name} metric"].setData(
                steps, [r.get(metric, float("nan")) for r in epochs]
            )

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.lockstep.play(False)
        self.lockstep.timer.stop()
        for view in self.landscapes.values():
            view.close_scan()
        for bridge in self.bridges.values():
            bridge.close()
        super().closeEvent(event)
