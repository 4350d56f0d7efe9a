"""A label whose size only grows. A label's text changing at every frame (the step count, the
training state) asks its window for a new layout each time; the main window then lays out and
animates every dock to where it already is, which repaints them all (about 8% of the window's
time while playing). A label of fixed size asks for none, so this one keeps a fixed size wide
enough for a template and for the widest text it has shown, and widens only for a wider one."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

HEADROOM = "0000"  # a label outgrown widens by this much more than its text


class SteadyLabel(QtWidgets.QLabel):
    """One line of text, at least as wide as ``template``."""

    def __init__(self, text: str, template: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(text, parent)
        self.template = template
        self._fit(start_over=True)

    def setText(self, text: str) -> None:
        super().setText(text)
        if self.sizeHint().width() > self.width():
            self._fit()

    def changeEvent(self, event: QtCore.QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QtCore.QEvent.Type.FontChange, QtCore.QEvent.Type.StyleChange):
            self._fit(start_over=True)  # presentation mode's larger font, another theme

    def _fit(self, start_over: bool = False) -> None:
        hint = self.sizeHint()
        metrics = self.fontMetrics()
        frame = hint.width() - metrics.horizontalAdvance(self.text())  # margins and indent
        width = frame + metrics.horizontalAdvance(self.template)
        if hint.width() > width:  # outgrown: with room for a few more digits, so it is seldom
            width = hint.width() + metrics.horizontalAdvance(HEADROOM)
        if not start_over:
            width = max(width, self.width())
        if (width, hint.height()) != (self.width(), self.height()) or not self._fixed():
            self.setFixedSize(width, hint.height())

    def _fixed(self) -> bool:
        return self.minimumSize() == self.maximumSize()
