"""Plain callbacks for session events: no Qt, so the GUI, the CLI and tests subscribe alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EVENTS = (
    "phase_done",
    "step_done",
    "epoch_done",
    "diverged",
    "rewound",
    "compiling",
    "state_changed",  # an edit: views refresh what they show
)


class Events:
    """Subscribe with ``events.on(name, callback)``; callbacks get keyword arguments."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}

    def on(self, name: str, callback: Callable[..., Any]) -> Callable[[], None]:
        """Subscribe; returns a function that unsubscribes."""
        if name not in self._subscribers:
            raise ValueError(f"unknown event {name!r}; events are {', '.join(EVENTS)}")
        self._subscribers[name].append(callback)
        return lambda: self._subscribers[name].remove(callback)

    def emit(self, name: str, **payload: Any) -> None:
        for callback in list(self._subscribers[name]):
            callback(**payload)
