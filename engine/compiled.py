"""Compiling plugin activations once, and warming the kernels up with visible progress.

A plugin's scalar ``f``/``df`` become ``numba.cfunc`` objects with ``cache=True``: they are cached
on disk next to the plugin's file, and every kernel typed by their signature serves them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numba as nb
import numpy as np

from engine import kernels

F_SIG = "float64(float64, float64, float64)"
DF_SIG = "float64(float64, float64, float64, float64)"

_compiled: dict[Any, tuple[Any, Any]] = {}


def activation_functions(cls: Any) -> tuple[Any, Any]:
    """The compiled (f, df) of an element-wise activation class (compiled once per process)."""
    if cls not in _compiled:
        _compiled[cls] = (_cfunc(F_SIG, cls.f), _cfunc(DF_SIG, cls.df))
    return _compiled[cls]


def _cfunc(signature: str, function: Any) -> Any:
    """Compile with the disk cache; a stale cache entry that cannot load is bypassed."""
    try:
        return nb.cfunc(signature, cache=True)(function)
    except ImportError:
        return nb.cfunc(signature)(function)


def activation_args(act: Any) -> tuple[int, float, float, Any, Any]:
    """(code, a, b, f, df) for the kernels: an inline code, or 0 and the compiled functions."""
    a, b = act.scalar_args()
    code = kernels.ACTIVATION_CODES.get(act.inline)
    if code is not None:
        return code, a, b, kernels.NO_FUNCTION, kernels.NO_DERIVATIVE
    f, df = activation_functions(type(act))
    return kernels.ACT_CUSTOM, a, b, f, df


def _as_rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1] if x.ndim else 1)


def apply_activation(act: Any, z: np.ndarray) -> np.ndarray:
    code, a, b, f, _ = activation_args(act)
    rows = _as_rows(z)
    out = np.empty_like(rows)
    kernels.apply_activation(code, a, b, f, rows, out)
    return out.reshape(z.shape)


def activation_gradient(act: Any, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    code, a, b, _, df = activation_args(act)
    out = np.empty_like(_as_rows(z))
    kernels.activation_backward(code, a, b, df, _as_rows(z), _as_rows(y), _as_rows(dy), out)
    return out.reshape(z.shape)


CompileProgress = Callable[[str, int, int], None]


def warm_up(
    progress: CompileProgress | None = None, dtype: Any = np.float64, blas_above: int | None = None
) -> float:
    """Compile (or load from the disk cache) every kernel for ``dtype``, in the variant with or
    without BLAS (``kernels.matmul``); return the seconds taken.

    ``progress(kernel_name, done, total)`` is called before each kernel and once at the end."""
    from engine.fused import FusedNet  # local: fused imports this module

    started = time.perf_counter()
    steps = FusedNet.warm_up_steps(dtype, blas_above)
    for done, (label, run) in enumerate(steps):
        if progress is not None:
            progress(label, done, len(steps))
        run()
    if progress is not None:
        progress("done", len(steps), len(steps))
    return time.perf_counter() - started
