"""The main window: the network diagram and its output over the plane in the middle, the
curves in a dock, the training controls in a toolbar and the session's state in the status
bar. It owns one session service at a time and renders its newest snapshot about 30 times a
second; every number shown comes from the snapshot."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from gradient_lab.app import autosave, collector, theme
from gradient_lab.app.background import in_background, when_done
from gradient_lab.app.bridge import ServiceBridge
from gradient_lab.app.classroom import ClassroomDialog, apply_classroom
from gradient_lab.app.dock_turns import DockTurns
from gradient_lab.app.editor.experiment_editor import ExperimentEditor
from gradient_lab.app.editor.weight_edit import WeightChange
from gradient_lab.app.export import ExportMenu
from gradient_lab.app.labs import LABS
from gradient_lab.app.session_loader import PluginOptions, load
from gradient_lab.app.settings import app_settings
from gradient_lab.app.steady_label import SteadyLabel
from gradient_lab.app.training_controls import TrainingControls
from gradient_lab.app.views.curvature_view import CurvatureView
from gradient_lab.app.views.curves_view import CurvesView
from gradient_lab.app.views.gradients_view import GradientsView
from gradient_lab.app.views.landscape_view import LandscapeView
from gradient_lab.app.views.network_view import NetworkView
from gradient_lab.app.views.output_view import OutputView
from gradient_lab.app.views.plugin_manager import PluginManagerView
from gradient_lab.app.views.step_inspector import StepInspector
from gradient_lab.app.views.timeline import Timeline
from gradient_lab.app.views.weights_view import WeightsView

RENDER_MS = 25  # the frame clock: a frame is drawn when a snapshot is new, up to 40 a second
TURNS_ABOVE = 10.0  # steps a second beyond which the docks take turns (at 5 steps/s all draw)
SNAPSHOT_RATE = 60.0  # at most; at full speed one a compiled chunk, about 45 a second
RECENT_FILES = 8
# the status bar's training state while playing (it widens, now and then, for a wider one)
STATE_TEMPLATE = "   ·   ".join(
    ["step 999999", "epoch 99999", "loss 1.234e-05", "val accuracy 100.0%", "playing"]
)


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
        self.closed = False  # loads that finish after the window closed start nothing
        self.comparisons: list[Any] = []
        self.labs: dict[Any, Any] = {}
        self.weights_locked = False  # a teacher's classroom setting
        self.path: Path | None = None
        self.experiment: Any = None
        self.bridge: ServiceBridge | None = None
        self.facts: Any = None
        self.latest: Any = None
        self.rendered_version = -1
        self.frames = 0
        self.dock_turns = DockTurns()
        self._last_tick = time.perf_counter()  # when the frame clock ticked last
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
        self.timeline = Timeline(self.service)
        layout.addWidget(self.timeline)
        self.setCentralWidget(central)

        self.curves = CurvesView()
        bottom = QtCore.Qt.DockWidgetArea.BottomDockWidgetArea
        self.curves_dock = self._dock("Curves", self.curves, bottom)

        self.resizeDocks([self.curves_dock], [250], QtCore.Qt.Orientation.Vertical)
        self.inspector = StepInspector()
        self.inspector_dock = self._dock("Step inspector", self.inspector, bottom)
        self.tabifyDockWidget(self.curves_dock, self.inspector_dock)
        self.weights = WeightsView()
        self.weights_dock = self._dock("Weights", self.weights, bottom)
        self.tabifyDockWidget(self.curves_dock, self.weights_dock)
        self.gradients = GradientsView()
        self.gradients_dock = self._dock("Gradients", self.gradients, bottom)
        self.tabifyDockWidget(self.curves_dock, self.gradients_dock)
        self.landscape = LandscapeView(self.service)
        self.landscape_dock = self._dock("Loss landscape", self.landscape, bottom)
        self.tabifyDockWidget(self.curves_dock, self.landscape_dock)
        self.curvature = CurvatureView(self.service)
        self.curvature_dock = self._dock("Curvature", self.curvature, bottom)
        self.tabifyDockWidget(self.curves_dock, self.curvature_dock)
        for dock, view in (
            (self.weights_dock, self.weights),
            (self.gradients_dock, self.gradients),
            (self.curves_dock, self.curves),
            (self.inspector_dock, self.inspector),
            (self.landscape_dock, self.landscape),
        ):  # a dock shown again (its tab raised) draws the newest state at once
            dock.visibilityChanged.connect(partial(self._dock_shown, view))
        for view in (self.curves, self.weights, self.gradients):
            view.history_clock.own = False  # their history is drawn at the frame clock
        self.landscape.own_clock = False
        self.curves_dock.raise_()
        self.plugins = PluginManagerView(self.plugin_options, registry=self.registry)
        right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        self.plugins_dock = self._dock("Plugins", self.plugins, right)
        self.plugins_dock.hide()  # View → Plugins
        self.plugins.registry_changed.connect(self._registry_changed)
        self.editor = ExperimentEditor()
        left = QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        self.editor_dock = self._dock("Experiment", self.editor, left)
        self.resizeDocks([self.editor_dock], [400], QtCore.Qt.Orientation.Horizontal)
        self.editor.changed.connect(self._experiment_edited)
        self.editor.live_edit.connect(self._live_edit)
        self.editor.reinitialize.connect(self._reinitialize)
        self.controls = TrainingControls(self, self.service)
        self.controls.set_enabled(False)
        self._toolbar()
        self._menus()
        self._status_bar()
        app = QtWidgets.QApplication.instance()
        if isinstance(app, QtWidgets.QApplication):
            theme.restore_theme(app, self)
        theme.notifier().changed.connect(self._redraw_all)  # the edges' colours are mixed
        self.network.edit_requested.connect(self.edit_value)
        self.network.neuron_selected.connect(self._neuron_selected)

        self.render_timer = QtCore.QTimer(self)
        self.render_timer.setInterval(RENDER_MS)
        self.render_timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)  # no 5% slack
        self.render_timer.timeout.connect(self.draw_frame)
        self.render_timer.start()
        self.autosaver = autosave.Autosaver(
            self, lambda: (self.service(), self.latest, str(self.path or ""))
        )
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
        new_action = file.addAction("&New", self.new_experiment)
        new_action.setShortcut(QtGui.QKeySequence.StandardKey.New)
        new_action.setStatusTip("Start from the default experiment, untitled")
        open_action = file.addAction("&Open…", self.choose_experiment)
        open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        open_action.setStatusTip("Open an experiment file")
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        examples = file.addMenu("&Examples")
        for path in sorted(examples_folder().glob("*.toml")):
            examples.addAction(path.stem.replace("_", " "), partial(self.open_experiment, path))
        file.addSeparator()
        save_action = file.addAction("&Save", self.save)
        save_action.setShortcut(QtGui.QKeySequence.StandardKey.Save)
        save_action.setStatusTip("Save the experiment (a built-in one asks where)")
        save_as = file.addAction("Save &As…", self.save_as)
        save_as.setShortcut(QtGui.QKeySequence("Ctrl+Shift+S"))
        save_as.setStatusTip("Save the experiment to a new file")
        file.addSeparator()
        self.export_menu = ExportMenu(self.current_view, lambda: self.latest, self)
        file.addMenu(self.export_menu)
        file.addSeparator()
        quit_action = file.addAction("&Quit", self.close)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        quit_action.setStatusTip("Quit (the window layout is kept)")
        edit = menu.addMenu("&Edit")
        undo = self.editor.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QtGui.QKeySequence.StandardKey.Undo)
        undo.setStatusTip("Undo the last edit of the experiment or of a weight")
        redo = self.editor.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcut(QtGui.QKeySequence("Ctrl+Y"))
        redo.setStatusTip("Redo what was undone")
        edit.addAction(undo)
        edit.addAction(redo)
        self.addAction(undo)
        self.addAction(redo)
        training = menu.addMenu("&Training")
        for action in self.controls.actions():
            training.addAction(action)
        training.addSeparator()
        compare = training.addAction("Compare &A/B…", self.compare)
        compare.setShortcut(QtGui.QKeySequence("Ctrl+B"))
        compare.setStatusTip("Train this experiment beside a copy with one change, in lockstep")
        self.view_menu = menu.addMenu("&View")
        self.view_menu.addAction(self.editor_dock.toggleViewAction())
        self.view_menu.addAction(self.curves_dock.toggleViewAction())
        self.view_menu.addAction(self.inspector_dock.toggleViewAction())
        self.view_menu.addAction(self.weights_dock.toggleViewAction())
        self.view_menu.addAction(self.gradients_dock.toggleViewAction())
        self.view_menu.addAction(self.landscape_dock.toggleViewAction())
        self.view_menu.addAction(self.curvature_dock.toggleViewAction())
        self.view_menu.addAction(self.plugins_dock.toggleViewAction())
        self.view_menu.addSeparator()
        self.view_menu.addMenu(theme.AppearanceMenu(self))
        classroom = self.view_menu.addAction("&Classroom settings…", self.classroom_settings)
        classroom.setStatusTip("Hide views and lock controls for this experiment")
        leave = QtGui.QAction("Leave presentation mode", self)
        leave.setShortcut(QtGui.QKeySequence("Escape"))
        leave.triggered.connect(self._leave_presentation)
        self.addAction(leave)
        labs = menu.addMenu("&Labs")
        for title, cls in LABS:
            labs.addAction(f"{title}…", partial(self.open_lab, cls))
        help_menu = menu.addMenu("&Help")
        shortcuts = help_menu.addAction("&Keyboard shortcuts", self.show_shortcuts)
        shortcuts.setShortcut(QtGui.QKeySequence("F1"))
        shortcuts.setStatusTip("This list")

    def _status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = SteadyLabel("starting…", STATE_TEMPLATE)
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
        if self.closed:
            return
        try:
            self.registry, experiment = done.result()
        except (OSError, ValueError) as exc:  # ExperimentError and PluginError are ValueErrors
            self.state_label.setText(f"could not open {path.name}")
            self.rendered_version = -1  # the running session's state comes back at the next frame
            self.show_error(f"Cannot open {path.name}", str(exc))
            return
        self.start_session(experiment, path)
        self.editor.set_experiment(experiment, self.registry)
        self.plugins.set_registry(self.registry)

    def start_session(self, experiment: Any, path: Path, title: str = "") -> Any:
        """A new session on ``experiment`` (read from ``path``); returns its service."""
        from gradient_lab.engine.service.worker import SessionService

        self.close_session()
        self.path, self.experiment = path, experiment
        apply_classroom(self, experiment.classroom)
        self.setWindowTitle(f"Gradient Lab — {title or path.stem}")
        if not _built_in(path):
            self._remember(path)
        self.state_label.setText(f"building {path.name}…")
        self.notice.setVisible(False)
        self.curves.clear()
        self.timeline.clear()
        self.curvature.clear()
        service = SessionService(experiment, self.registry, snapshot_rate=SNAPSHOT_RATE)
        self.bridge = ServiceBridge(service, self)
        self.bridge.snapshots.connect(self._snapshots)
        self.bridge.happened.connect(self._event)
        service.start()
        return service

    def close_session(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge.deleteLater()
        self.bridge, self.facts, self.latest, self.rendered_version = None, None, None, -1
        self.controls.set_enabled(False)

    def _leave_presentation(self) -> None:
        if theme.in_presentation():
            theme.set_presentation(self, False)

    def current_view(self) -> QtWidgets.QWidget:
        """The view an export takes: the one holding the keyboard focus (the last clicked),
        else the network diagram."""
        focus = QtWidgets.QApplication.focusWidget()
        views = [self.network, self.output.plot, self.curves.loss_plot, self.curves.metric_plot]
        for view in views:
            if focus is not None and (view is focus or view.isAncestorOf(focus)):
                return view
        return self.network

    # ------------------------------------------------------------------ files
    def new_experiment(self) -> None:
        from gradient_lab.engine.cli.main import default_experiment_path

        self.open_experiment(default_experiment_path())

    def save(self) -> bool:
        """Save to the file the experiment came from; a built-in one asks for a new file."""
        if self.experiment is None:
            return False
        if self.path is None or _built_in(self.path):
            return self.save_as()
        return self._write(self.path)

    def save_as(self) -> bool:
        if self.experiment is None:
            return False
        start = str(self.path.parent if self.path and not _built_in(self.path) else Path.home())
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save the experiment", start, "Experiments (*.toml)"
        )
        if not name:
            return False
        path = Path(name) if name.endswith(".toml") else Path(name + ".toml")
        if not self._write(path):
            return False
        self.path = path
        self.setWindowTitle(f"Gradient Lab — {path.stem}")
        self._remember(path)
        return True

    def _write(self, path: Path) -> bool:
        from gradient_lab.engine.training.experiment import save_experiment

        try:
            save_experiment(self.experiment, path)  # atomic: the old file or the whole new one
        except OSError as exc:
            self.show_error(f"Cannot save {path.name}", f"{path}: {exc.strerror or exc}")
            return False
        self.statusBar().showMessage(f"saved {path}", 4000)
        return True

    def _remember(self, path: Path) -> None:
        settings = app_settings()
        files = [str(path.resolve())]
        files += [f for f in _strings(settings.value("recent/files")) if f != files[0]]
        settings.setValue("recent/files", files[:RECENT_FILES])

    def recent_files(self) -> list[str]:
        return _strings(app_settings().value("recent/files"))

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for name in self.recent_files():
            self.recent_menu.addAction(name, partial(self.open_experiment, Path(name)))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    # ------------------------------------------------------------------ recovery
    def offer_recovery(self) -> Future[Any] | None:
        """If the last session was killed or crashed, offer to rebuild its run from the
        autosave (read off the GUI thread); None when there is nothing to recover."""
        path = autosave.leftover()
        if path is None:
            return None
        registry, options = self.registry, self.plugin_options

        def read() -> tuple[Any, Any]:
            from gradient_lab.app.session_loader import load_registry
            from gradient_lab.engine.training.recorded_run import read_recorded_run

            reg = registry or load_registry(options)
            return reg, read_recorded_run(path, reg)

        return when_done(self, in_background(read), self._ask_recovery)

    def _ask_recovery(self, done: Future[Any]) -> None:
        if self.closed:
            return
        try:
            self.registry, run = done.result()
        except (OSError, ValueError) as exc:
            autosave.discard()
            self.show_error("Cannot recover the last session", str(exc))
            return
        name = Path(run.source).stem if run.source else "an experiment"
        when = QtCore.QDateTime.fromSecsSinceEpoch(int(run.saved_at)).toString()
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Question,
            "Recover the last session?",
            f"Gradient Lab did not close cleanly. Recover {name} at step {run.step:,} "
            f"with its {len(run.edits)} edit(s), saved {when}?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            self,
        )
        box.setObjectName("recovery dialog")
        box.finished.connect(lambda answer: self._recovery_answered(answer, run))
        box.open()

    def _recovery_answered(self, answer: int, run: Any) -> None:
        if answer != QtWidgets.QMessageBox.StandardButton.Yes:
            autosave.discard()
            return
        source = Path(run.source) if run.source else autosave.autosave_path()
        service = self.start_session(run.experiment, source, title=f"{source.stem} (recovered)")
        self.editor.set_experiment(run.experiment, self.registry)
        service.call(lambda session: session.replay(run.edits, run.step))

    # ------------------------------------------------------------------ what the service says
    def _snapshots(self, snapshots: list[Any]) -> None:
        first = snapshots[0]
        if self.facts is not first.facts:
            self.facts = first.facts
            self.output.set_facts(first.facts)
            self.network.set_facts(first.facts, first)
            theme.style_widget(self.network)  # its texts are new
            self.inspector.set_facts(first.facts)
            self.weights.set_facts(first.facts, first)
            self.gradients.set_facts(first.facts, first)
            self.landscape.set_facts(first.facts)
            self.controls.set_enabled(True)
            collector.settle_heap()  # the engine and this session are here to stay
        self.curves.add_snapshots(snapshots)
        self.weights.add_snapshots(snapshots)
        self.gradients.add_snapshots(snapshots)
        self.curvature.add_snapshots(snapshots)
        self.latest = snapshots[-1]

    def _event(self, name: str, payload: Any) -> None:
        if name == "compiling":
            done, total = payload["done"], payload["total"]
            self.compile_bar.setVisible(done < total)
            self.compile_bar.setRange(0, total)
            self.compile_bar.setValue(done)
            self.compile_bar.setFormat(f"compiling kernels: {payload['kernel']} {done}/{total}")
            if done == total:
                collector.settle_heap()  # and so are the kernels
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
        now = time.perf_counter()
        gap, self._last_tick = now - self._last_tick, now
        snap = self.latest
        if snap is None or snap.version == self.rendered_version:
            return
        self.rendered_version = snap.version
        self.frames += 1
        self.phase_done = _phase_done(snap, self.controls.last_command)
        self.output.show_snapshot(snap)
        self.network.show_snapshot(snap, self.phase_done)
        self.landscape.show_snapshot(snap)  # the live path grows even with the dock hidden
        docks = [
            (view, draw)
            for view, draw in self._dock_drawers()
            if _shown(view) and (view is not self.landscape or self.landscape.result is not None)
        ]  # a landscape not computed yet has nothing to draw
        rate = self.controls.rate()
        fast = snap.playing and (rate is None or rate > TURNS_ABOVE)
        self.network.set_playing_fast(fast)
        if fast:
            # playing fast: the docks draw in turn, as many a frame as there is time for; a
            # paused, stepped or slowly played state is drawn everywhere at once
            docks = self.dock_turns.take(docks, gap)
        for _view, draw in docks:
            draw(snap)
        if not snap.playing:
            self.landscape.draw_pending()  # even behind a tab: its path is the run's record
        self.controls.follow(snap)
        self.timeline.follow(snap)
        if snap.diverged:
            self.show_notice(f"Training diverged: {snap.diverged}")
        self.state_label.setText(_state_text(snap, self.curves.latest()))

    def _redraw_all(self, _look: str = "") -> None:
        """Draw the newest snapshot again at the next frame (a new background)."""
        self.rendered_version = -1

    def _dock_drawers(self) -> list[tuple[QtWidgets.QWidget, Any]]:
        """Each dock's view and how it draws a snapshot (its history included)."""

        def state_and_history(view: Any) -> Any:
            return lambda snap: (view.show_snapshot(snap), view.history_clock.draw_pending())

        return [
            (self.inspector, lambda snap: self.inspector.show_snapshot(snap, self.phase_done)),
            (self.weights, state_and_history(self.weights)),
            (self.gradients, state_and_history(self.gradients)),
            (self.curves, lambda snap: self.curves.history_clock.draw_pending()),
            (self.landscape, lambda snap: self.landscape.draw_pending()),
        ]

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
        if self.weights_locked:
            self.statusBar().showMessage("Editing weights is locked for this experiment", 4000)
            return
        current = float(self.latest.parameters()[key][index])
        where = f"{key}[{', '.join(str(i) for i in index)}]"
        value, ok = QtWidgets.QInputDialog.getDouble(
            self, "Edit a weight", f"New value of {where}:", current, -1e6, 1e6, 4
        )
        if ok and self.service() is not None:
            self.editor.undo_stack.push(WeightChange(self.set_weight, key, index, current, value))

    def set_weight(self, key: str, index: tuple[int, ...], value: float) -> None:
        """A recorded edit of one weight; the run forks here."""
        service = self.service()
        if service is None or self.latest is None:
            return
        service.set_weight(key, index, value)
        self.timeline.fork_at(self.latest.step)
        self.autosaver.save(force=True)

    def classroom_settings(self) -> Any:
        """The teacher's dialog: views to hide and controls to lock, kept in the experiment."""
        if self.experiment is None:
            return None
        dialog = ClassroomDialog(self)
        dialog.open()
        return dialog

    def _experiment_edited_classroom(self, experiment: Any) -> Any:
        """The editor rebuilds the experiment from its forms: the classroom settings stay."""
        if self.experiment is None:
            return experiment
        return dataclasses.replace(experiment, classroom=self.experiment.classroom)

    def open_lab(self, cls: Any) -> Any:
        """A theory lab in a window of its own (kept, and closed with this one)."""
        lab = self.labs.get(cls)
        if lab is None:
            lab = cls(self.registry, self)
            lab.open_experiment.connect(self.open_experiment)
            self.labs[cls] = lab
        lab.show()
        lab.raise_()
        return lab

    def compare(self) -> Any:
        """Choose what B changes; the comparison opens in a window of its own."""
        if self.experiment is None or self.registry is None:
            return None
        from gradient_lab.app.ab_compare import CompareSetup, CompareWindow

        setup = CompareSetup(self.experiment, self.registry, self)
        setup.setObjectName("compare setup")

        def start(a: Any, b: Any) -> None:
            window = CompareWindow(a, b, self.registry)
            self.comparisons.append(window)
            window.show()

        setup.chosen.connect(start)
        setup.open()
        return setup

    def _dock_shown(self, view: Any, visible: bool) -> None:
        if visible and self.latest is not None:
            dict(self._dock_drawers())[view](self.latest)

    def _neuron_selected(self, layer: int, unit: int) -> None:
        if layer < 0:
            return
        self.inspector.select(layer, unit)
        self.inspector_dock.show()
        self.inspector_dock.raise_()
        if self.latest is not None:
            self.inspector.show_snapshot(self.latest, self.phase_done)

    def _registry_changed(self, registry: Any) -> None:
        """Plugins reloaded (a saved drop-in, Reload): the editor's forms offer them at once;
        the running session keeps the plugins it was built with."""
        self.registry = registry
        if self.experiment is not None:
            self.editor.set_registry(registry)

    # ------------------------------------------------------------------ the editor
    def _experiment_edited(self, experiment: Any) -> None:
        self.experiment = self._experiment_edited_classroom(experiment)  # what Save writes

    def _live_edit(self, target: str, name: str, value: Any) -> None:
        """A hyperparameter or the batch size changed: a recorded edit of the running session."""
        service = self.service()
        if service is None or self.latest is None:
            return
        if target == "batch_size":
            service.set_batch_size(value)
        else:
            service.set_hyperparameter(target, name, value)
        self.timeline.fork_at(self.latest.step)
        self.autosaver.save(force=True)
        self.statusBar().showMessage(
            f"{target} {name} = {value} from step {self.latest.step}", 4000
        )

    def _reinitialize(self, experiment: Any) -> None:
        """The editor's structural changes, confirmed: a new session from step 0."""
        self.start_session(experiment, self.path or Path("untitled.toml"))

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
        self.closed = True
        for window in [*self.comparisons, *self.labs.values()]:
            window.close()
        self.landscape.close_scan()
        self.render_timer.stop()
        self.autosaver.timer.stop()
        self.close_session()
        autosave.discard()  # a clean close: nothing to recover next time
        super().closeEvent(event)


def _shown(view: QtWidgets.QWidget) -> bool:
    """On screen: a dock's view behind another tab, or closed, is not drawn."""
    return view.isVisible() and not view.visibleRegion().isEmpty()


def _built_in(path: Path) -> bool:
    """The default experiment and the examples are read-only templates: Save asks for a file."""
    from gradient_lab.engine.cli.main import default_experiment_path

    folder = examples_folder().resolve()
    path = path.resolve()
    return path == default_experiment_path().resolve() or folder in path.parents


def _strings(value: Any) -> list[str]:
    """A QSettings list (an INI file gives a str for one item, None for none)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


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
