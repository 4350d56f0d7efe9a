"""Loss landscapes (after Li et al. 2018): the loss along lines and over planes in parameter space.

- 1D: along the segment between two parameter states (``line_between``: init to current,
  checkpoint to checkpoint) or along one direction from a point (``line_along``: a random
  filter-normalized direction, the negative gradient, the top Hessian eigenvector).
- 2D: ``LandscapeJob`` scans a grid around a point spanned by two directions: random Gaussian
  filter-normalized ones, the first two principal components of the recorded trajectory, two
  individual weights, or the top two Hessian eigenvectors. The recorded trajectory is projected
  onto the plane so the optimizer's path can be drawn on the surface.

Conventions. ``loss[j, i]`` is the loss at ``center + x[i] * d1 + y[j] * d2``: rows follow y,
columns follow x. Both axes contain 0.0 exactly, and the value there is the loss at the center as
computed by ``Evaluator.loss`` (the "current loss", bit for bit). The loss is the data loss (no
regularization penalty) in evaluation mode (dropout off, batch normalization on its running
statistics) on the full training set or on a seeded subsample whose size the result states.
Only trainable parameters move; running statistics stay those of the session.

A job snapshots the session when it is created (parameters, layer state, trajectory) and then
works on a private copy of the model: it can run in a worker thread while the session keeps
training, and it never writes to the session. The line functions take an ``Evaluator``: one from
``snapshot_evaluator(session)`` gives them the same freedom (a plain ``Evaluator(session)``
borrows the session's model and restores it bit for bit). Dense stacks run on compiled kernels
on every core (see ``PlaneLoss``); ``warm_up()`` compiles them ahead, as the session's kernels
are.

The parts: ``grid`` (coordinates, LandscapeError), ``directions``, ``trajectory`` (the recorded
path, its projection, states of the run), ``plane_loss`` (evaluating points, generic and compiled)
over ``scan_kernels`` (the compiled scan), ``lines`` (1D), ``planes`` (the 2D job) and ``saving``
(``save_npz``; its docstring lists the arrays of the file). Every public name is importable from
here.
"""

from gradient_lab.engine.instruments.landscape.directions import (
    Directions,
    WeightChoice,
    filter_normalize,
    gradient_direction,
    hessian_direction,
    hessian_directions,
    is_bias_like,
    pca_directions,
    random_direction,
    random_directions,
    weight_directions,
    weight_offset,
)
from gradient_lab.engine.instruments.landscape.grid import (
    Array,
    LandscapeError,
    Progress,
    Stop,
    alphas,
    axis,
    coarse_indices,
    origin_index,
)
from gradient_lab.engine.instruments.landscape.lines import (
    ALONG,
    INTERPOLATION,
    LineResult,
    line_along,
    line_between,
)
from gradient_lab.engine.instruments.landscape.plane_loss import (
    PlaneLoss,
    fast_path_supported,
    piecewise_slope,
    snapshot_evaluator,
    warm_up,
)
from gradient_lab.engine.instruments.landscape.planes import (
    DEFAULT_COARSE,
    DEFAULT_SIZE,
    DIRECTION_KINDS,
    LandscapeJob,
    LandscapeResult,
)
from gradient_lab.engine.instruments.landscape.saving import save_npz
from gradient_lab.engine.instruments.landscape.trajectory import (
    TrajectoryRecorder,
    checkpoint_trajectory,
    parameters_at,
    project,
)

__all__ = [
    "ALONG",
    "DEFAULT_COARSE",
    "DEFAULT_SIZE",
    "DIRECTION_KINDS",
    "INTERPOLATION",
    "Array",
    "Directions",
    "LandscapeError",
    "LandscapeJob",
    "LandscapeResult",
    "LineResult",
    "PlaneLoss",
    "Progress",
    "Stop",
    "TrajectoryRecorder",
    "WeightChoice",
    "alphas",
    "axis",
    "checkpoint_trajectory",
    "coarse_indices",
    "fast_path_supported",
    "filter_normalize",
    "gradient_direction",
    "hessian_direction",
    "hessian_directions",
    "is_bias_like",
    "line_along",
    "line_between",
    "origin_index",
    "parameters_at",
    "pca_directions",
    "piecewise_slope",
    "project",
    "random_direction",
    "random_directions",
    "save_npz",
    "snapshot_evaluator",
    "warm_up",
    "weight_directions",
    "weight_offset",
]
