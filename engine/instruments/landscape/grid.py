"""Grid coordinates: axes that hold 0.0 exactly, the coarse first pass through the origin,
and line positions that hit the end points exactly; the error every part raises."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Array = np.ndarray
Progress = Callable[[int, int], None]
Stop = Callable[[], bool]


class LandscapeError(ValueError):
    """A request the landscape engine cannot honour (bad range, unknown weight, too few states)."""


def axis(size: int, lo: float, hi: float) -> Array:
    """``size`` values on a uniform step from about ``lo`` to about ``hi`` with 0.0 exactly among
    them: (i - i0) * h, so the origin is a grid point and a symmetric range is exactly symmetric."""
    if size < 2:
        raise LandscapeError(f"size = {size} is not allowed: expected at least 2 points")
    if not lo <= 0.0 <= hi or lo == hi:
        raise LandscapeError(f"range ({lo}, {hi}) must contain 0 and have positive length")
    h = (hi - lo) / (size - 1)
    i0 = round(-lo / h)
    return (np.arange(size) - i0) * h


def origin_index(values: Array) -> int:
    return int(np.flatnonzero(values == 0.0)[0])


def coarse_indices(size: int, origin: int, coarse: int) -> Array:
    """Every stride-th index through the origin, about ``coarse`` of them (all if too few)."""
    stride = max(1, (size - 1) // max(1, coarse - 1))
    return np.flatnonzero((np.arange(size) - origin) % stride == 0)


def alphas(lo: float, hi: float, count: int, exact: Sequence[float] = (0.0, 1.0)) -> Array:
    """``count`` values from lo to hi; the grid value nearest each of ``exact`` is set to it, so
    the end points of a segment are evaluated exactly at their states."""
    values = np.linspace(lo, hi, count)
    step = (hi - lo) / max(count - 1, 1)
    for e in exact:
        k = int(np.argmin(np.abs(values - e)))
        if abs(values[k] - e) <= 0.5 * step:
            values[k] = e
    return values
