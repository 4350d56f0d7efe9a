"""Compiling plugin activations once, and applying any activation to arrays with the kernels.

A plugin's scalar ``f``/``df`` become ``numba.cfunc`` objects with ``cache=True``: they are cached
on disk next to the plugin's file, and every kernel typed by their signature serves them all.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.plugin_api import use_compiled_activations

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


use_compiled_activations(apply_activation, activation_gradient)
