"""Nothing lost: the working run is written every few seconds (and at once after an edit) as a
recorded run, the experiment, its edits and its step, in the config folder. A clean close
removes it; one found at start means the app was killed or crashed, and the window offers to
rebuild the run from it, bit for bit."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from gradient_lab.app.settings import config_folder

AUTOSAVE_MS = 5000


def autosave_path() -> Path:
    return config_folder() / "autosave" / "run.json"


def leftover() -> Path | None:
    """The autosave a killed or crashed app left behind, if any."""
    path = autosave_path()
    return path if path.is_file() else None


def discard() -> None:
    """Remove the autosave (a clean close, or the user declined to recover it): kept once as
    ``run.json.previous``, so a wrong click loses nothing."""
    path = autosave_path()
    if path.is_file():
        path.replace(path.with_name("run.json.previous"))


class Autosaver(QtCore.QObject):
    """Asks the session's worker to write the run whenever it changed since the last save; the
    writing happens there, between steps, so the window never waits on the disk."""

    def __init__(self, parent: QtCore.QObject, state: Callable[[], tuple[Any, Any, str]]):
        """``state()``: (service, newest snapshot, the source file's path) or Nones."""
        super().__init__(parent)
        self.state = state
        self.saved_version = -1
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(AUTOSAVE_MS)
        self.timer.timeout.connect(self.save)
        self.timer.start()

    def save(self, force: bool = False) -> Any:
        """Write the run now if it changed (or ``force``); returns the worker's future."""
        service, snapshot, source = self.state()
        if service is None or snapshot is None:
            return None
        if snapshot.version == self.saved_version and not force:
            return None
        self.saved_version = snapshot.version
        path = autosave_path()
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(session: Any) -> None:
            from gradient_lab.engine.training.recorded_run import write_recorded_run

            write_recorded_run(session, path, source, time.time())

        return service.call(write)
