"""Which docks draw a frame while training plays fast. On these 2 cores the window shares the
interpreter with the training thread, and every dock drawn at every frame would cost about
twice the frame. So the network and its output draw every frame, and the docks shown draw in
turn, as many a frame as the window has time for: the frame clock firing late says it has
none. More docks a frame while frames come on time, fewer as soon as one is late; each dock
still draws now and then however busy the window is."""

from __future__ import annotations

from typing import Any

LATE_S = 0.030  # a gap between two ticks of the 25 ms frame clock longer than this is late
FEWER = 0.8  # a late tick: this share of the docks a frame
MORE = 0.05  # a tick on time: this many docks more a frame (one more in 20 frames)
FEWEST = 0.2  # docks a frame at the busiest: each of 5 docks draws every 25 frames


class DockTurns:
    """``take(docks, gap)``: the docks to draw this frame, ``gap`` the seconds since the
    previous tick of the frame clock."""

    def __init__(self) -> None:
        self.per_frame = 1.0  # docks drawn a frame, on average
        self._credit = 0.0  # docks owed to the next frames
        self._next = 0  # whose turn it is

    def take(self, docks: list[Any], gap: float) -> list[Any]:
        if not docks:
            return []
        if gap > LATE_S:
            self.per_frame = max(FEWEST, self.per_frame * FEWER)
        else:
            self.per_frame = min(float(len(docks)), self.per_frame + MORE)
        self._credit = min(self._credit + self.per_frame, float(len(docks)))
        count = int(self._credit + 1e-9)  # five fifths make one
        self._credit -= count
        start = self._next % len(docks)
        self._next = start + count
        return [docks[(start + k) % len(docks)] for k in range(count)]
