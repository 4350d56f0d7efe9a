"""Work that would freeze the window (loading the engine and its plugins, reading an experiment)
runs on a thread of its own; its result comes back on the GUI thread, polled by a timer, so
no Qt object is touched from the worker and no signal crosses threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6 import QtCore

POLL_MS = 15
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradient-lab loader")


def in_background(work: Callable[[], Any]) -> Future[Any]:
    """Run ``work()`` off the GUI thread (one such job at a time, in order)."""
    return _pool.submit(work)


def when_done(
    owner: QtCore.QObject, future: Future[Any], done: Callable[[Future[Any]], None]
) -> Future[Any]:
    """``done(future)`` on the GUI thread once ``future`` is done, unless ``owner`` is gone."""
    timer = QtCore.QTimer(owner)
    timer.setInterval(POLL_MS)

    def poll() -> None:
        if future.done():
            timer.stop()
            timer.deleteLater()
            done(future)

    timer.timeout.connect(poll)
    timer.start()
    return future


class Inbox:
    """What a worker thread hands the GUI thread: (kind, item) pairs under a lock. Workers hold
    an inbox, never a Qt object, so no Qt wrapper is ever released off the GUI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, Any]] = []

    def push(self, kind: str, item: Any) -> None:
        with self._lock:
            self._items.append((kind, item))

    def take(self) -> list[tuple[str, Any]]:
        with self._lock:
            items, self._items = self._items, []
        return items
