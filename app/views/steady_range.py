"""Auto-range that holds still: a live plot whose range followed its data exactly would move
its axes at every frame, and redrawing an axis (its ticks and their text) costs more than the
plot's data. A steady range stays while the data is inside; data that leaves it makes it grow
at once, with headroom, so a curve growing step by step moves its axis a few times, not thirty
times a second; data that has shrunk well inside it for a while makes it shrink (a noisy
histogram whose largest bin comes and goes does not make the axis flicker)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

FILL = 0.5  # data spanning less than this share of the range...
PATIENCE = 20  # ...this many times in a row (about a second of frames) makes the range shrink
HEADROOM = 0.25  # a range outgrown gets this share of its new span beyond the data


class SteadyRange:
    """One axis's range, following its data lazily: ``follow(shown, data)`` gives the range
    to show for data spanning ``data`` when ``shown`` is shown."""

    def __init__(self) -> None:
        self.small = 0  # how many times in a row the data filled too little of the range
        self.last: tuple[float, float] | None = None  # the range this gave last

    def follow(self, shown: tuple[float, float], data: tuple[float, float]) -> tuple[float, float]:
        self.last = self._follow(shown, data)
        return self.last

    def _follow(self, shown: tuple[float, float], data: tuple[float, float]) -> tuple[float, float]:
        low, high = shown
        d_low, d_high = data
        span = d_high - d_low
        if span <= 0 or high <= low or not self._ours(shown):
            self.small = 0  # a range set otherwise (a default, the user, a log switch) is not kept
            return data
        if d_low < low or d_high > high:  # outgrown: grow where the data left, at once
            self.small = 0
            extra = HEADROOM * span
            grown = (
                d_low - extra if d_low < low else low,
                d_high + extra if d_high > high else high,
            )
            return grown if span >= FILL * (grown[1] - grown[0]) else data
        if span >= FILL * (high - low):
            self.small = 0
            return shown
        self.small += 1
        if self.small < PATIENCE:
            return shown
        self.small = 0
        return data

    def _ours(self, shown: tuple[float, float]) -> bool:
        if self.last is None:
            return False
        tolerance = 1e-6 * max(abs(self.last[1] - self.last[0]), 1e-300)
        return all(abs(a - b) <= tolerance for a, b in zip(shown, self.last, strict=True))


class SteadyViewBox(pg.ViewBox):
    """A ``pg.ViewBox`` whose auto-range follows its data as ``SteadyRange`` does; ranges
    set by code or by the user's mouse are taken as they are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steady = (SteadyRange(), SteadyRange())

    def setRange(self, *args: Any, **kwargs: Any) -> None:
        if self._updatingRange:  # called by the auto-range
            shown = self.viewRange()
            for axis, key in enumerate(("xRange", "yRange")):
                if kwargs.get(key) is not None:
                    kwargs[key] = self.steady[axis].follow(tuple(shown[axis]), tuple(kwargs[key]))
        super().setRange(*args, **kwargs)


def steady_plot(**kwargs: Any) -> pg.PlotWidget:
    """A ``pg.PlotWidget`` with a ``SteadyViewBox``."""
    return pg.PlotWidget(viewBox=SteadyViewBox(), **kwargs)
