"""A teacher's classroom settings: views hidden and controls locked for an experiment, kept in
its file ([classroom] hide = [...], lock = [...]) so the class opens it that way."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6 import QtWidgets

from gradient_lab.engine.training.classroom import (
    CLASSROOM_LOCKS,
    CLASSROOM_VIEWS,
    ClassroomSpec,
)

LOCK_TEXT = {
    "editor": "the experiment editor (its forms read only)",
    "weights": "typing weights into the network diagram",
    "plugins": "the plugin manager (no new, reloaded or checked plugins)",
}


def views_of(window: Any) -> dict[str, QtWidgets.QWidget]:
    """Each hideable view's widget: its dock, or the timeline itself."""
    return {
        "editor": window.editor_dock,
        "curves": window.curves_dock,
        "step inspector": window.inspector_dock,
        "weights": window.weights_dock,
        "gradients": window.gradients_dock,
        "landscape": window.landscape_dock,
        "curvature": window.curvature_dock,
        "plugins": window.plugins_dock,
        "timeline": window.timeline,
    }


def apply_classroom(window: Any, spec: ClassroomSpec) -> None:
    """Hide what the teacher hid (its View-menu entry too) and lock what they locked."""
    for name, widget in views_of(window).items():
        hidden = name in spec.hide
        if isinstance(widget, QtWidgets.QDockWidget):
            widget.toggleViewAction().setEnabled(not hidden)
            if hidden:
                widget.hide()
        else:
            widget.setVisible(not hidden)
    window.editor.setEnabled("editor" not in spec.lock)
    window.editor.setToolTip("Locked by the teacher" if "editor" in spec.lock else "")
    window.plugins.setEnabled("plugins" not in spec.lock)
    window.weights_locked = "weights" in spec.lock


class ClassroomDialog(QtWidgets.QDialog):
    """Choose what to hide and lock; OK applies it to the window and the experiment (Save
    writes it to the file)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.setWindowTitle("Classroom settings")
        self.setObjectName("classroom dialog")
        self.window_ = window
        spec = window.experiment.classroom
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel("Hide these views:"))
        self.hide_boxes = {}
        for name in CLASSROOM_VIEWS:
            box = QtWidgets.QCheckBox(name)
            box.setChecked(name in spec.hide)
            self.hide_boxes[name] = box
            layout.addWidget(box)
        layout.addWidget(QtWidgets.QLabel("Lock:"))
        self.lock_boxes = {}
        for name in CLASSROOM_LOCKS:
            box = QtWidgets.QCheckBox(LOCK_TEXT[name])
            box.setChecked(name in spec.lock)
            self.lock_boxes[name] = box
            layout.addWidget(box)
        note = QtWidgets.QLabel("Saved with the experiment (File → Save).")
        layout.addWidget(note)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.accepted.connect(self._apply)

    def spec(self) -> ClassroomSpec:
        return ClassroomSpec(
            hide=[n for n, box in self.hide_boxes.items() if box.isChecked()],
            lock=[n for n, box in self.lock_boxes.items() if box.isChecked()],
        )

    def _apply(self) -> None:
        window = self.window_
        window.experiment = dataclasses.replace(window.experiment, classroom=self.spec())
        apply_classroom(window, window.experiment.classroom)
