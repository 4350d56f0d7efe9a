"""The window's views: each renders what a snapshot holds or answers, and nothing more."""

import pyqtgraph as pg

# images are indexed [row, column] = [y, x], as the engine's grids are
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
