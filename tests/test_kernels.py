"""The engine's own compiled math agrees with the C library where it replaces it."""

import math

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels


def apply(code, z):
    z = np.asarray(z, dtype=float).reshape(-1, 1)
    y = np.empty_like(z)
    kernels.apply_activation(code, 0.0, 0.0, kernels.NO_FUNCTION, z, y)
    return y.ravel()


def test_vectorized_tanh_is_within_4_ulp_of_the_c_library():
    rng = np.random.default_rng(3)
    z = np.concatenate(
        [
            rng.normal(0, 1, 200_000),
            rng.uniform(-30, 30, 200_000),
            rng.normal(0, 1e-6, 20_000),
            np.linspace(0.6, 0.65, 10_001),
            np.linspace(21.9, 22.1, 1001),
        ]
    )
    ours, reference = apply(kernels.ACT_TANH, z), np.tanh(z)
    ulps = np.abs(ours - reference) / np.spacing(np.abs(reference))
    assert ulps.max() <= 4
    assert np.all(np.abs(ours) <= 1.0)


def test_tanh_and_relu_keep_signed_zero_infinities_and_nan():
    special = [0.0, -0.0, np.inf, -np.inf, np.nan]
    tanh = apply(kernels.ACT_TANH, special)
    assert tanh[0] == 0.0 and np.signbit(tanh[1]) and tanh[2] == 1.0 and tanh[3] == -1.0
    assert np.isnan(tanh[4])
    relu = apply(kernels.ACT_RELU, special)
    assert relu[2] == np.inf and relu[3] == 0.0 and np.isnan(relu[4])


def test_the_kernels_exp_is_the_c_librarys_bit_for_bit_also_where_it_underflows():
    rng = np.random.default_rng(5)
    z = np.concatenate(
        [rng.uniform(-800, -700, 50_000), rng.normal(0, 30, 50_000), [-746.0, -745.2, -745.1]]
    )
    z = np.concatenate([z, [0.0, -0.0, np.inf, -np.inf, np.nan, 709.0, 710.0]])
    ours = exp_of(z)
    reference = np.array([c_exp(v) for v in z])
    np.testing.assert_array_equal(ours, reference)  # NaN where NaN, same bits elsewhere


def c_exp(x):
    """The C library's exp, as Python's math module calls it (inf where Python raises)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


@nb.njit(cache=True)
def exp_of(z):
    out = np.empty_like(z)
    for i in range(z.size):
        out[i] = kernels._exp(z[i])
    return out
