"""The main window: the network diagram and its output over the plane in the middle, the
curves in a dock, the training controls in a toolbar and the session's state in the status
bar. It owns one session service at a time and renders its newest snapshot about 30 times a
second; every number shown comes from the snapshot."""

from __future__ import annotations

from concurrent.futures import Future
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app.background import in_background, when_done
from gradient_lab.app.bridge import ServiceBridge
from gradient_lab.app.session_loader import PluginOptions, load
from gradient_lab.app.settings import app_settings
from gradient_lab.app.training_controls import TrainingControls
from gradient_lab.app.views.curves_view import CurvesView
from gradient_lab.app.views.network_view import NetworkView
from gradient_lab.app.views.output_view import OutputView

RENDER_MS = 33


def examples_folder() -> Path:
    return Path(str(files("gradient_lab.assets").joinpath("examples")))


class MainWindow(QtWidgets.QMainWindow):
    """``open_experiment(path)`` starts a session on a file. The window shows at once: the
    engine and the plugins load on a thread (``registry`` None: discovered with
    ``plugin_options``), and the session builds (and compiles) on its worker thread, progress
    in the status bar."""

    def __init__(self, registry: Any = None, plugin_options: PluginOptions | None = None) -> None:
        super().__init__()
        self.registry = registry
        self.plugin_options = plugin_options or PluginOptions()
        self.loading: Future[Any] | None = None
        self.path: Path | None = None
        self.bridge: ServiceBridge | None = None
        self.facts: Any = None
        self.latest: Any = None
        self.rendered_version = -1
        self.phase_done: str | None = None
        self.setWindowTitle("Gradient Lab")
        self.resize(1280, 800)
        self.setDockNestingEnabled(True)

        self.network = NetworkView()
        self.output = OutputView()
        split = QtWidgets.QSplitter()
        split.addWidget(self.network)
        split.addWidget(self.output)
        split.setSizes([760, 520])
        self.notice = QtWidgets.QLabel()
        self.notice.setWordWrap(True)
        self.notice.setVisible(False)
        self.notice.setStyleSheet("background:#fde2e1; color:#7a1212; padding:6px;")
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notice)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

        self.curves = CurvesView()
        self.curves_dock = self._dock(
            "Curves", self.curves, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea
        )

        self.resizeDocks([self.curves_dock], [250], QtCore.Qt.Orientation.Vertical)
        self.controls = TrainingControls(self, self.service)
        self.controls.set_enabled(False)
        self._toolbar()
        self._menus()
        self._status_bar()
        self.network.edit_requested.connect(self.edit_value)

        self.render_timer = QtCore.QTimer(self)
        self.render_timer.setInterval(RENDER_MS)
        self.render_timer.timeout.connect(self.draw_frame)
        self.render_timer.start()
        self._restore_layout()

    # ------------------------------------------------------------------ building the window
    def _dock(self, title: str, widget: QtWidgets.QWidget, area: Any) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock {title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _toolbar(self) -> None:
        bar = self.addToolBar("Training")
        bar.setObjectName("toolbar training")
        bar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in self.controls.actions()[:-1]:
            bar.addAction(action)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" Speed "))
        bar.addWidget(self.controls.speed)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" Epoch "))
        bar.addWidget(self.controls.target_epoch)
        bar.addAction(self.controls.run_to_epoch)

    def _menus(self) -> None:
        menu = self.menuBar()
        file = menu.addMenu("&File")
        open_action = file.addAction("&Open…", self.choose_experiment)
        open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        examples = file.addMenu("&Examples")
        for path in sorted(examples_folder().glob("*.toml")):
            examples.addAction(path.stem.replace("_", " "), partial(self.open_experiment, path))
        file.addSeparator()
        quit_action = file.addAction("&Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        training = menu.addMenu("&Training")
        for action in self.controls.actions():
            training.addAction(action)
        self.view_menu = menu.addMenu("&View")
        self.view_menu.addAction(self.curves_dock.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        shortcuts = help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        shortcuts.setShortcut(QtGui.QKeySequence("F1"))

    def _status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QtWidgets.QLabel("starting…")
        self.compile_bar = QtWidgets.QProgressBar()
        self.compile_bar.setMinimumWidth(340)
        self.compile_bar.setVisible(False)
        bar.addWidget(self.state_label, 1)
        bar.addPermanentWidget(self.compile_bar)

    # ------------------------------------------------------------------ sessions
    def service(self) -> Any:
        return None if self.bridge is None else self.bridge.service

    def choose_experiment(self) -> None:
        start = str(self.path.parent if self.path else examples_folder())
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open an experiment", start, "Experiments (*.toml)"
        )
        if name:
            self.open_experiment(Path(name))

    def open_experiment(self, path: str | Path, loading: Future[Any] | None = None) -> Future[Any]:
        """Read ``path`` off the GUI thread (or take ``loading``, a ``session_loader.load`` of
        it already started), then start a session on it; a bad file gets a dialog naming the
        field (the session running now goes on untouched)."""
        path = Path(path)
        self.state_label.setText(f"loading {path.name}…")
        registry, options = self.registry, self.plugin_options
        self.loading = when_done(
            self,
            loading or in_background(lambda: load(path, registry, options)),
            lambda done: self._loaded(path, done),
        )
        return self.loading

    def _loaded(self, path: Path, done: Future[Any]) -> None:
        try:
            self.registry, experiment = done.result()
        except (OSError, ValueError) as exc:  # ExperimentError and PluginError are ValueErrors
            self.state_label.setText(f"could not open {path.name}")
            self.rendered_version = -1  # the running session's state comes back at the next frame
            self.show_error(f"Cannot open {path.name}", str(exc))
            return
        self.start_session(experiment, path)

    def start_session(self, experiment: Any, path: Path) -> None:
        from gradient_lab.engine.service.worker import SessionService

        self.close_session()
        self.path = path
        self.setWindowTitle(f"Gradient Lab — {path.stem}")
        self.state_label.setText(f"building {path.name}…")
        self.notice.setVisible(False)
        self.curves.clear()
        service = SessionService(experiment, self.registry)
        self.bridge = ServiceBridge(service, self)
        self.bridge.snapshots.connect(self._snapshots)
        self.bridge.happened.connect(self._event)
        service.start()

    def close_session(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge.deleteLater()
        self.bridge, self.facts, self.latest, self.rendered_version = None, None, None, -1
        self.controls.set_enabled(False)

    # ------------------------------------------------------------------ what the service says
    def _snapshots(self, snapshots: list[Any]) -> None:
        first = snapshots[0]
        if self.facts is not first.facts:
            self.facts = first.facts
            self.output.set_facts(first.facts)
            self.network.set_facts(first.facts, first)
            self.controls.set_enabled(True)
        self.curves.add_snapshots(snapshots)
        self.latest = snapshots[-1]

    def _event(self, name: str, payload: Any) -> None:
        if name == "compiling":
            done, total = payload["done"], payload["total"]
            self.compile_bar.setVisible(done < total)
            self.compile_bar.setRange(0, total)
            self.compile_bar.setValue(done)
            self.compile_bar.setFormat(f"compiling kernels: {payload['kernel']} {done}/{total}")
        elif name == "error":
            error = payload["error"]
            if self.facts is None:  # the build failed: the session never started
                self.state_label.setText("the session could not be built")
                self.show_notice(f"Cannot build this experiment: {error}")
            else:
                self.show_notice(f"{type(error).__name__}: {error}")
        elif name == "diverged":
            self.show_notice(f"Training diverged: {payload['divergence'].describe()}")

    # ------------------------------------------------------------------ drawing
    def draw_frame(self) -> None:
        """Draw the newest snapshot if it is new (the render timer calls this)."""
        snap = self.latest
        if snap is None or snap.version == self.rendered_version:
            return
        self.rendered_version = snap.version
        self.phase_done = _phase_done(snap, self.controls.last_command)
        self.output.show_snapshot(snap)
        self.network.show_snapshot(snap, self.phase_done)
        self.controls.follow(snap)
        if snap.diverged:
            self.show_notice(f"Training diverged: {snap.diverged}")
        self.state_label.setText(_state_text(snap, self.curves.latest()))

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(True)

    def show_error(self, title: str, text: str) -> None:
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, text, parent=self)
        box.setObjectName("error dialog")
        box.open()

    def edit_value(self, key: str, index: tuple[int, ...]) -> None:
        """Ask for a new value of weight ``key[index]`` and set it (a recorded edit)."""
        if self.latest is None:
            return
        current = float(self.latest.parameters()[key][index])
        where = f"{key}[{', '.join(str(i) for i in index)}]"
        value, ok = QtWidgets.QInputDialog.getDouble(
            self, "Edit a weight", f"New value of {where}:", current, -1e6, 1e6, 4
        )
        if ok and self.service() is not None:
            self.service().set_weight(key, index, value)

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td><b>{a.shortcut().toString()}</b></td>"
            f"<td>{a.text().replace('&', '')}: {a.statusTip()}</td></tr>"
            for a in [*self.controls.actions(), *self._menu_actions()]
            if not a.shortcut().isEmpty()
        )
        box = QtWidgets.QMessageBox(self)
        box.setObjectName("shortcuts dialog")
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(f"<table cellspacing=6>{rows}</table>")
        box.open()

    def _menu_actions(self) -> list[QtGui.QAction]:
        found = []
        for menu in self.menuBar().findChildren(QtWidgets.QMenu):
            found += [a for a in menu.actions() if a not in self.controls.actions()]
        return list(dict.fromkeys(found))

    # ------------------------------------------------------------------ closing
    def _restore_layout(self) -> None:
        settings = app_settings()
        geometry, state = settings.value("window/geometry"), settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        settings = app_settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.sync()
        self.render_timer.stop()
        self.close_session()
        super().closeEvent(event)


def _phase_done(snap: Any, last_command: str) -> str | None:
    """The phase just run, when the user steps phase by phase."""
    if last_command != "step_phase":
        return None
    names = snap.facts.phase_names
    return names[snap.phase_index - 1] if snap.phase_index else names[-1]


def _state_text(snap: Any, epoch: dict[str, float]) -> str:
    parts = [f"step {snap.step}", f"epoch {snap.epoch}"]
    if snap.phase_index:
        parts.append(f"next phase: {snap.next_phase}")
    if snap.step or snap.phase_index:
        parts.append(f"loss {snap.last_loss:.4g}")
    for key in ("val_accuracy", "train_accuracy", "val_r2"):
        if key in epoch:
            value = epoch[key]
            shown = f"{100 * value:.1f}%" if key.endswith("accuracy") else f"{value:.3f}"
            parts.append(f"{key.replace('_', ' ')} {shown}")
            break
    if snap.playing:
        parts.append("playing")
    return "   ·   ".join(parts)
