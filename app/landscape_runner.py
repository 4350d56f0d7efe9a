"""Runs a loss-landscape scan beside training: the job is made on the session's worker (it
snapshots the session there, between steps), then scans on a thread of its own while
training goes on; the coarse picture, each refinement and the interpolation line come back to
the GUI thread through a queue polled by a timer. Cancel stops at the next block of points."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from gradient_lab.app.background import Inbox, when_done

POLL_MS = 50


class LandscapeRun(QtCore.QObject):
    """``plane(result)``, ``line(result)``, ``failed(message)`` and ``finished()`` arrive on the
    GUI thread, in that order of need."""

    plane = QtCore.Signal(object)
    line = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    finished = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.job: Any = None
        self._inbox = Inbox()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._deliver)
        self.running = False

    def start(self, service: Any, options: dict[str, Any]) -> None:
        """Scan around the session's current parameters with ``LandscapeJob``'s ``options``."""
        self.cancel()
        self.running = True
        self._timer.start()

        def make(session: Any) -> tuple[Any, Any]:
            from gradient_lab.engine.instruments.landscape import LandscapeJob
            from gradient_lab.engine.instruments.landscape.trajectory import parameters_at

            return LandscapeJob(session, **options), parameters_at(session, "init")

        when_done(self, service.call(make), self._made)

    def _made(self, made: Any) -> None:
        try:
            self.job, init = made.result()
        except Exception as exc:  # a bad choice (PCA without a path): said on the dock
            self._push("failed", str(exc))
            self._push("finished", None)
            return
        # the thread holds the inbox only: no Qt object is ever released on it
        threading.Thread(
            target=_scan,
            args=(self.job, init, self._inbox),
            name="gradient-lab landscape",
            daemon=True,
        ).start()

    def _push(self, kind: str, item: Any) -> None:
        self._inbox.push(kind, item)

    def _deliver(self) -> None:
        pending = self._inbox.take()
        planes = [item for kind, item in pending if kind == "plane"]
        if planes:
            self.plane.emit(planes[-1])  # refinements replace each other: the newest counts
        for kind, item in pending:
            if kind == "line":
                self.line.emit(item)
            elif kind == "failed":
                self.failed.emit(item)
            elif kind == "finished":
                self.running = False
                self._timer.stop()
                self.finished.emit()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def close(self, wait: Callable[[], None] | None = None) -> None:
        self.cancel()
        self._timer.stop()


def _scan(job: Any, init: Any, inbox: Inbox) -> None:  # on the scan's own thread
    from gradient_lab.engine.instruments.landscape.lines import line_between

    try:
        for result in job.results():
            inbox.push("plane", result)
        if not job.cancelled:
            inbox.push("line", line_between(job.evaluator, init, job.center))
    except Exception as exc:
        inbox.push("failed", f"{type(exc).__name__}: {exc}")
    inbox.push("finished", None)
