"""Colours shared by every view: a diverging blue/orange map (negative orange, positive blue,
as TensorFlow Playground draws them; safe for the common colour-blindnesses) and class colours
from Okabe and Ito's colour-blind-safe set."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui

NEGATIVE = (245, 147, 34)
MIDDLE = (232, 234, 235)
POSITIVE = (8, 119, 189)
CLASS_COLOURS = [
    (230, 159, 0),
    (0, 114, 178),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
    (0, 0, 0),
    (120, 120, 120),
    (150, 75, 0),
]

DIVERGING = pg.ColorMap([0.0, 0.5, 1.0], [NEGATIVE, MIDDLE, POSITIVE])
_LEVELS = 511
_DIVERGING_LUT = DIVERGING.map(np.linspace(0.0, 1.0, _LEVELS), mode="byte")


def diverging_rgba(values: np.ndarray, limit: float = 1.0) -> np.ndarray:
    """RGBA bytes for values in [-limit, limit] (clipped): orange, light grey, blue (a lookup
    table of 511 levels: drawn 30 times a second, the colour map's own interpolation costs)."""
    position = (np.clip(np.asarray(values) / limit, -1.0, 1.0) + 1.0) * (0.5 * (_LEVELS - 1))
    return _DIVERGING_LUT[np.rint(np.nan_to_num(position)).astype(np.intp)]


def class_colour(label: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def qcolour(rgb: tuple[int, int, int], alpha: int = 255) -> QtGui.QColor:
    return QtGui.QColor(rgb[0], rgb[1], rgb[2], alpha)


def qimage(rgba: np.ndarray) -> QtGui.QImage:
    """A QImage owning a copy of (h, w, 4) RGBA bytes."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = rgba.shape[:2]
    return QtGui.QImage(rgba.data, w, h, 4 * w, QtGui.QImage.Format.Format_RGBA8888).copy()
