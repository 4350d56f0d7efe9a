"""Carries a session service's snapshots and events onto the GUI thread.

The service calls its listeners on the worker thread. The bridge's listener only appends to a
queue under a lock; a timer on the GUI thread drains it about 60 times a second and hands the
views, in order, every snapshot since the last drain (curves need each one's new history rows)
and the events. No Qt signal crosses threads and no view reads an array training writes.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

from gradient_lab.app.background import Inbox

DRAIN_MS = 16


class ServiceBridge(QtCore.QObject):
    """``snapshots(list)``: the snapshots published since the last drain, oldest first;
    ``happened(name, payload)``: "built", "compiling", "error", "diverged", "rewound"."""

    snapshots = QtCore.Signal(list)
    happened = QtCore.Signal(str, object)

    def __init__(self, service: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self._inbox = ServiceInbox()
        # the worker holds the inbox, never this QObject: no Qt wrapper is released on it
        self._unsubscribe = service.subscribe(self._inbox)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def drain(self) -> None:
        """Deliver what the worker published since the last drain (the timer calls this)."""
        pending = self._inbox.take()
        batch: list[Any] = []
        for event, item in pending:
            if event == "snapshot":
                batch.append(item)
                continue
            if batch:
                self.snapshots.emit(batch)
                batch = []
            self.happened.emit(event, item)
        if batch:
            self.snapshots.emit(batch)

    def close(self) -> None:
        """Stop listening and close the service (its worker thread ends)."""
        self._timer.stop()
        self._unsubscribe()
        self.service.close()


class ServiceInbox(Inbox):
    """The service's listener: on the worker thread it only queues, under a lock."""

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if event in ("state_changed", "step_done"):
            return
        self.push(event, payload["snapshot"] if event == "snapshot" else payload)
