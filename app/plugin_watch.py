"""Watching the drop-in plugin folders, so a plugin a student saves is checked at once.

Qt's QFileSystemWatcher watches the folders (a file added, removed or renamed into place) and
each ``.py`` file in them (written in place). Editors often save atomically, writing a new file
and renaming it over the old one: the watch on the old file then dies with it, so after every
event the watches are armed again on the files there now. Events come in bursts (an editor
writes, then sets the time); a short settling timer gathers a burst into one report, of the
files whose modification time or size changed, appeared or went away.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6 import QtCore

SETTLE_MS = 100  # one report for an editor's burst of events (write, rename, touch)

Stamp = tuple[int, int]


def plugin_files(folder: Path) -> list[Path]:
    """The drop-in files discovery loads from ``folder`` (names starting with "_" are not)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def _stamp(path: Path) -> Stamp | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class PluginFolderWatcher(QtCore.QObject):
    """``files_changed(list[Path])``: drop-in files saved, added or removed since the last
    report. Folders missing now are watched once ``arm()`` finds them (after one is made)."""

    files_changed = QtCore.Signal(list)

    def __init__(
        self,
        folders: Iterable[str | Path],
        parent: QtCore.QObject | None = None,
        settle_ms: int = SETTLE_MS,
    ) -> None:
        super().__init__(parent)
        self.folders = [Path(f) for f in folders]
        self._watcher = QtCore.QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._touched)
        self._watcher.directoryChanged.connect(self._touched)
        self._settle = QtCore.QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(settle_ms)
        self._settle.timeout.connect(self._report)
        self._known: dict[Path, Stamp] = self._stamps()
        self.arm()

    def _stamps(self) -> dict[Path, Stamp]:
        found = {}
        for folder in self.folders:
            for path in plugin_files(folder):
                stamp = _stamp(path)
                if stamp is not None:
                    found[path] = stamp
        return found

    def arm(self) -> None:
        """Watch every folder and the files in them afresh (a renamed-over file's old watch is
        gone, and the new file needs one)."""
        if self._watcher.files():
            self._watcher.removePaths(self._watcher.files())
        if self._watcher.directories():
            self._watcher.removePaths(self._watcher.directories())
        folders = [str(f) for f in self.folders if f.is_dir()]
        files = [str(p) for f in self.folders for p in plugin_files(f)]
        if folders or files:
            self._watcher.addPaths(folders + files)

    def watched(self) -> list[str]:
        return [*self._watcher.directories(), *self._watcher.files()]

    def _touched(self, _path: str) -> None:
        self.arm()
        self._settle.start()  # restarts: a burst of events makes one report

    def _report(self) -> None:
        changed = self.changes()
        if changed:
            self.files_changed.emit(changed)

    def changes(self) -> list[Path]:
        """The files changed since the last call (or the start), now taken as seen."""
        now = self._stamps()
        changed = sorted(p for p in set(now) | set(self._known) if now.get(p) != self._known.get(p))
        self._known = now
        return changed

    def stop(self) -> None:
        """Watch nothing more (the view closing)."""
        self._settle.stop()
        paths = self.watched()
        if paths:
            self._watcher.removePaths(paths)
