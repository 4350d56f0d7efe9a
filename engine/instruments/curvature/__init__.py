"""Curvature of the loss: Hessian-vector products, eigenvalues, trace, spectral density, sharpness.

Everything is about the full-batch, evaluation-mode loss an ``Evaluator`` sees. The Hessian is
never formed unless asked for: an ``HessianOperator`` multiplies by it, exactly, with Pearlmutter's
R-operator (a forward pass of directional derivatives, then a backward pass of their gradients) for
models built from dense, activation, flatten, dropout, batch-normalization and residual layers and
the built-in losses: any layer that describes itself as one of these (``fusion()``,
``evaluation_form()``). Any other layer or loss falls back to central differences of the gradient,
which is approximate, and says so (``hvp_method``).

Conventions: theta is the model's flat parameter vector (P values); a block of directions is an
array (k, P); eigenvalues "top" means largest by algebraic value, which is what sharpness means.
No function here changes the model: the exact path reads weights from theta without loading it,
and the finite-difference path goes through ``Evaluator``, which restores parameters bit for bit.

The parts: ``derivatives`` (closed-form second derivatives of activations and losses), ``rops``
(the R-operator's ops), ``rules`` (which layers have an exact rule), ``hessian`` (the operator and
the dense Hessian), ``eigen`` (Lanczos and the top eigenpairs), ``trace_density`` (Hutchinson's
trace, the spectral density) and ``sharpness`` (the recorder for training). Every public name is
importable from here.
"""

from gradient_lab.engine.instruments.curvature.derivatives import (
    EXACT_LOSSES,
    FD_STEP,
    Array,
    LossHessian,
    builtin_second_derivative,
    loss_hessian,
    second_derivative,
)
from gradient_lab.engine.instruments.curvature.eigen import StopRule, lanczos, top_eigenvectors
from gradient_lab.engine.instruments.curvature.hessian import (
    MAX_FULL_HESSIAN,
    HessianOperator,
    full_hessian,
    hvp,
    spectrum,
)
from gradient_lab.engine.instruments.curvature.rules import EXACT, FINITE_DIFFERENCES, hvp_method
from gradient_lab.engine.instruments.curvature.sharpness import SharpnessRecorder, record_sharpness
from gradient_lab.engine.instruments.curvature.trace_density import (
    density,
    hutchinson_trace,
    slq_nodes,
)

__all__ = [
    "EXACT",
    "EXACT_LOSSES",
    "FD_STEP",
    "FINITE_DIFFERENCES",
    "MAX_FULL_HESSIAN",
    "Array",
    "HessianOperator",
    "LossHessian",
    "SharpnessRecorder",
    "StopRule",
    "builtin_second_derivative",
    "density",
    "full_hessian",
    "hutchinson_trace",
    "hvp",
    "hvp_method",
    "lanczos",
    "loss_hessian",
    "record_sharpness",
    "second_derivative",
    "slq_nodes",
    "spectrum",
    "top_eigenvectors",
]
