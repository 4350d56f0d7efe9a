"""Stepping into a composite layer: its forward or backward runs in a helper thread that stops
after each child call, so a session can advance one child at a time.

A composite's forward is ordinary Python calling its children (``ctx.forward("attn", ...)``);
to stop in the middle of it without asking plugin authors to write generators, the call runs in
its own thread and waits at every child boundary until the session asks for the next phase.
Only one of the two threads runs at any time, so results are the same as a straight call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

STOP_TIMEOUT = 5.0  # seconds a cancelled helper may take to unwind


class SteppingCancelled(BaseException):
    """Raised inside the helper thread when the step it belongs to was abandoned (a rewind)."""


class CallStepper:
    """``work(pause)`` run in a helper thread; ``pause(label)`` hands control back.

    ``advance()`` runs the work up to its next pause and returns that pause's label, or None
    when the work has finished (its return value is then in ``result``)."""

    def __init__(self, work: Callable[[Callable[[str], None]], Any]) -> None:
        self._resume = threading.Semaphore(0)
        self._paused = threading.Semaphore(0)
        self._cancelled = False
        self._label: str | None = None
        self.done = False
        self.result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[Callable[[str], None]], Any]) -> None:
        self._resume.acquire()
        try:
            if self._cancelled:
                raise SteppingCancelled
            self.result = work(self._pause)
        except SteppingCancelled:
            pass
        except BaseException as exc:  # handed to the session's thread by advance()
            self._error = exc
        self.done = True
        self._label = None
        self._paused.release()

    def _pause(self, label: str) -> None:
        self._label = label
        self._paused.release()
        self._resume.acquire()
        if self._cancelled:
            raise SteppingCancelled

    def advance(self) -> str | None:
        if self.done:
            return None
        self._resume.release()
        self._paused.acquire()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._label

    def cancel(self) -> None:
        """Abandon the work: the helper thread unwinds at its pause and ends."""
        if self.done:
            return
        self._cancelled = True
        self._resume.release()
        self._thread.join(STOP_TIMEOUT)
