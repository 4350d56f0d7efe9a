"""The training controls: reset, step a phase, a minibatch or an epoch, play and pause at a
chosen speed, run to epoch N, each a QAction with its keyboard shortcut (the Help dialog lists
them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

SPEEDS: list[tuple[str, float | None]] = [
    ("1 step/s", 1.0),
    ("5 steps/s", 5.0),
    ("20 steps/s", 20.0),
    ("50 steps/s", 50.0),
    ("200 steps/s", 200.0),
    ("1,000 steps/s", 1000.0),
    ("as fast as possible", None),
]
DEFAULT_SPEED = "50 steps/s"


class TrainingControls(QtCore.QObject):
    """Actions that send commands to ``service()`` (None: no session yet, nothing happens)."""

    def __init__(self, parent: QtWidgets.QWidget, service: Callable[[], Any]) -> None:
        super().__init__(parent)
        self.service = service
        self.reset = self._action(parent, "Reset", "R", "Back to the initial weights (step 0)")
        self.step_phase = self._action(
            parent,
            "Step phase",
            "Right",
            "Run one phase: forward through a layer, the loss, "
            "backward through a layer, or the update",
        )
        self.step_batch = self._action(
            parent, "Step minibatch", "Shift+Right", "Finish the step in progress, or run one"
        )
        self.step_epoch = self._action(parent, "Step epoch", "Ctrl+Right", "Run to the epoch's end")
        self.play = self._action(
            parent, "Play", "Space", "Train at the chosen speed; again to pause"
        )
        self.play.setCheckable(True)
        self.run_to_epoch = self._action(
            parent,
            "Run to epoch",
            "Ctrl+E",
            "Train as fast as possible to the end of the epoch set",
        )
        self.target_epoch = QtWidgets.QSpinBox(parent)
        self.target_epoch.setRange(1, 1_000_000)
        self.target_epoch.setValue(10)
        self.target_epoch.setToolTip("The epoch Run to epoch stops at the end of")
        self.speed = QtWidgets.QComboBox(parent)
        self.speed.setToolTip("Training speed while playing")
        for label, rate in SPEEDS:
            self.speed.addItem(label, rate)
        self.speed.setCurrentText(DEFAULT_SPEED)
        self.speed.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.reset.triggered.connect(self._reset)
        self.step_phase.triggered.connect(lambda: self._send("step_phase"))
        self.step_batch.triggered.connect(lambda: self._send("step"))
        self.step_epoch.triggered.connect(lambda: self._send("epoch"))
        self.play.triggered.connect(self._play_toggled)
        self.run_to_epoch.triggered.connect(self._run_to_epoch)
        self.speed.currentIndexChanged.connect(self._speed_changed)
        self.last_command = ""
        self._starting: Any = None  # the play/pause command not yet carried out

    @staticmethod
    def _action(parent: QtWidgets.QWidget, text: str, shortcut: str, tip: str) -> QtGui.QAction:
        action = QtGui.QAction(text, parent)
        action.setShortcut(QtGui.QKeySequence(shortcut))
        action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip} ({shortcut})")
        action.setStatusTip(tip)
        parent.addAction(action)
        return action

    def actions(self) -> list[QtGui.QAction]:
        return [
            self.reset,
            self.step_phase,
            self.step_batch,
            self.step_epoch,
            self.play,
            self.run_to_epoch,
        ]

    def rate(self) -> float | None:
        return self.speed.currentData()

    def set_enabled(self, enabled: bool) -> None:
        for action in self.actions():
            action.setEnabled(enabled)

    def follow(self, snapshot: Any) -> None:
        """Follow the session (playing stops by itself at a divergence, or at a set step), once
        the last play or pause command is carried out: older snapshots do not count."""
        if self._starting is not None and not self._starting.done():
            return
        self.show_playing(snapshot.playing)

    def show_playing(self, playing: bool) -> None:
        if self.play.isChecked() != playing:
            self.play.setChecked(playing)
        self.play.setText("Pause" if playing else "Play")
        for action in (self.step_phase, self.step_batch, self.step_epoch, self.run_to_epoch):
            action.setEnabled(not playing)

    def _send(self, command: str) -> None:
        service = self.service()
        if service is not None:
            self.last_command = command
            getattr(service, command)()

    def _reset(self) -> None:
        service = self.service()
        if service is not None:
            self.last_command = "reset"
            if self.play.isChecked():
                service.pause()
            self._starting = service.rewind(0)

    def _play_toggled(self, checked: bool) -> None:
        service = self.service()
        if service is None:
            self.play.setChecked(False)
            return
        self.last_command = "play" if checked else "pause"
        self._starting = service.play(self.rate()) if checked else service.pause()
        self.show_playing(checked)

    def _run_to_epoch(self) -> None:
        service = self.service()
        if service is not None:
            self.last_command = "run to epoch"
            self._starting = service.play(None, until_epoch=self.target_epoch.value())
            self.show_playing(True)

    def _speed_changed(self) -> None:
        service = self.service()
        if service is not None and self.play.isChecked():
            self._starting = service.play(self.rate())
