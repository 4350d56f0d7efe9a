"""Writing a line or plane result to a NumPy .npz (no pickles).

File format of ``save_npz``:

- ``kind``: "plane" or "line" (0-d string).
- plane: ``x`` (nx,), ``y`` (ny,), ``loss`` (ny, nx) with ``loss[j, i]`` at (x[i], y[j]) and NaN
  where a cancelled scan left no value, ``done`` (ny, nx) bool, ``origin_loss`` (0-d),
  ``center``, ``d1``, ``d2`` (P,), ``directions`` (0-d string: random, pca, weights, hessian or
  custom), ``labels`` (2,) axis names, ``explained_variance`` (2,) for PCA directions,
  ``eigenvalues`` (2,) for Hessian directions, ``trajectory`` (k, 2) and ``trajectory_steps`` (k,)
  when a trajectory was projected, ``complete`` (0-d bool).
- line: ``alpha`` (n,), ``loss`` (n,), ``label`` (0-d string), ``complete``.
- both: ``description`` (0-d string: the data the loss was evaluated on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gradient_lab.engine.files import atomic_save_npz
from gradient_lab.engine.instruments.landscape.grid import Array
from gradient_lab.engine.instruments.landscape.lines import LineResult
from gradient_lab.engine.instruments.landscape.planes import LandscapeResult


def save_npz(result: LandscapeResult | LineResult, path: str | Path) -> None:
    """Write a result atomically in the format of this module's docstring."""
    arrays: dict[str, Array] = {
        "description": np.array(result.description),
        "complete": np.array(result.complete),
    }
    if isinstance(result, LineResult):
        arrays.update(kind=np.array("line"), alpha=result.alpha, loss=result.loss)
        arrays["label"] = np.array(result.label)
        atomic_save_npz(path, arrays)
        return
    dirs = result.directions
    arrays.update(
        kind=np.array("plane"),
        x=result.x,
        y=result.y,
        loss=result.loss,
        done=result.done,
        origin_loss=np.array(result.origin_loss),
        center=np.asarray(result.center),
        d1=np.asarray(dirs.d1),
        d2=np.asarray(dirs.d2),
        directions=np.array(dirs.kind),
        labels=np.array(dirs.labels),
    )
    if dirs.explained_variance is not None:
        arrays["explained_variance"] = dirs.explained_variance
    if dirs.eigenvalues is not None:
        arrays["eigenvalues"] = dirs.eigenvalues
    if result.trajectory is not None:
        arrays["trajectory"] = result.trajectory
        if result.trajectory_steps is not None:
            arrays["trajectory_steps"] = result.trajectory_steps
    atomic_save_npz(path, arrays)
