"""One input field per declared plugin parameter, chosen by the parameter's type: a spin box
for whole numbers, a text field for numbers (so 1e-4 can be typed), a check box, a list of
choices; a parameter named after a plugin kind (activation, initializer) lists that kind's
plugins. The engine's own check (``Param.validate``) decides what is allowed, and its message
is shown on the field."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

from gradient_lab.engine.plugin_api import KINDS, Param, PluginError

INVALID_STYLE = "border: 2px solid #c0392b; background: #fdecea;"
SPIN_LIMIT = 2**31 - 1


def number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class ParamField(QtCore.QObject):
    """``widget`` edits ``param``; ``changed(value)`` fires with a value the parameter's check
    accepted; a refused entry is marked on the field with the engine's message."""

    changed = QtCore.Signal(object)

    def __init__(self, param: Param, value: Any, registry: Any, parent: QtWidgets.QWidget | None):
        super().__init__(parent)
        self.param = param
        self.value = value
        self.widget = self._make(param, value, registry, parent)
        self._tip = param.help + (f" ({param.allowed()})" if param.help else param.allowed())
        self.widget.setToolTip(self._tip)
        self.widget.setObjectName(f"field {param.name}")

    # ------------------------------------------------------------------ widgets
    def _make(
        self, param: Param, value: Any, registry: Any, parent: QtWidgets.QWidget | None
    ) -> Any:
        names = registry.names(param.name) if param.name in KINDS else []
        if param.choices or names:
            box = QtWidgets.QComboBox(parent)
            for choice in param.choices or names:
                box.addItem(str(choice), choice)
            box.setCurrentIndex(max(0, box.findData(value)))
            box.activated.connect(lambda _i: self._offer(box.currentData()))
            return box
        if param.type == "bool":
            check = QtWidgets.QCheckBox(parent)
            check.setChecked(bool(value))
            check.toggled.connect(self._offer)
            return check
        if param.type == "int":
            spin = QtWidgets.QSpinBox(parent)
            low = -SPIN_LIMIT if param.low is None else int(param.low)
            high = SPIN_LIMIT if param.high is None else int(min(param.high, SPIN_LIMIT))
            spin.setRange(low, high)
            spin.setValue(int(value))
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._offer)
            return spin
        line = QtWidgets.QLineEdit(number_text(value), parent)
        if param.type not in ("float", "str"):
            line.setReadOnly(True)  # lists and tables: edited in the experiment file
            return line
        line.editingFinished.connect(lambda: self._offer(self._typed(line.text())))
        return line

    def _typed(self, text: str) -> Any:
        if self.param.type != "float":
            return text
        try:
            return float(text)
        except ValueError:
            return text  # the check says what is expected

    # ------------------------------------------------------------------ values
    def _offer(self, value: Any) -> None:
        try:
            checked = self.param.validate(value)
        except PluginError as exc:
            self.set_error(str(exc))
            return
        self.set_error(None)
        if checked != self.value:
            self.value = checked
            self.changed.emit(checked)

    def set_value(self, value: Any) -> None:
        """Show ``value`` (undo, redo) without reporting a change."""
        self.value = value
        widget = self.widget
        widget.blockSignals(True)
        if isinstance(widget, QtWidgets.QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif isinstance(widget, QtWidgets.QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QtWidgets.QSpinBox):
            widget.setValue(int(value))
        else:
            widget.setText(number_text(value))
        widget.blockSignals(False)
        self.set_error(None)

    def set_error(self, message: str | None) -> None:
        """Mark the field with ``message`` (the engine's), or clear the mark."""
        self.error = message
        self.widget.setStyleSheet(INVALID_STYLE if message else "")
        self.widget.setToolTip(message or self._tip)
