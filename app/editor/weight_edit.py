"""A weight typed into the network diagram as one step on the undo stack: undo sets the old
value back, as a new recorded edit (the run's history keeps both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6 import QtGui


class WeightChange(QtGui.QUndoCommand):
    def __init__(
        self,
        set_weight: Callable[[str, Any, float], Any],
        key: str,
        index: Any,
        old: float,
        new: float,
    ) -> None:
        where = ", ".join(str(i) for i in index)
        super().__init__(f"{key}[{where}] = {new:g}")
        self.set_weight, self.key, self.index, self.old, self.new = set_weight, key, index, old, new

    def redo(self) -> None:
        self.set_weight(self.key, self.index, self.new)

    def undo(self) -> None:
        self.set_weight(self.key, self.index, self.old)
