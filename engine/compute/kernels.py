"""Compiled kernels for stacks of dense layers: one phase at a time, or many steps in one call.

A network is described by a tuple of per-layer arrays (``net``) over one flat parameter vector
``theta``; the kernels are typed by array dtypes and by whether BLAS may be called (see matmul),
so a few compiled (and disk-cached) copies serve every network, activation plugin and optimizer.
Built-in activations, losses and optimizer rules are inlined by code; a plugin activation is
called through its compiled ``cfunc``.
The phase functions are the same ones the fused loop calls, so stepping phase by phase and running
fast give the same bits.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.extending import overload

# Activation codes (0 calls the plugin's compiled function).
ACT_CUSTOM, ACT_LINEAR, ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_LEAKY = 0, 1, 2, 3, 4, 5
ACT_ELU, ACT_GELU, ACT_SILU, ACT_SOFTPLUS, ACT_SOFTMAX = 6, 7, 8, 9, 10
ACTIVATION_CODES = {
    "linear": ACT_LINEAR,
    "sigmoid": ACT_SIGMOID,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
    "leaky_relu": ACT_LEAKY,
    "elu": ACT_ELU,
    "gelu": ACT_GELU,
    "silu": ACT_SILU,
    "softplus": ACT_SOFTPLUS,
    "softmax": ACT_SOFTMAX,
}

LOSS_MSE, LOSS_MAE, LOSS_HUBER, LOSS_BCE, LOSS_BCE_LOGITS = 1, 2, 3, 4, 5
LOSS_CE_LOGITS, LOSS_CE_PROBS, LOSS_HINGE, LOSS_MULTI_MARGIN = 6, 7, 8, 9
LOSS_CODES = {
    "mse": LOSS_MSE,
    "mae": LOSS_MAE,
    "huber": LOSS_HUBER,
    "bce": LOSS_BCE,
    "bce_with_logits": LOSS_BCE_LOGITS,
    "cross_entropy_logits": LOSS_CE_LOGITS,
    "cross_entropy_probs": LOSS_CE_PROBS,
    "hinge": LOSS_HINGE,
    "multi_margin": LOSS_MULTI_MARGIN,
}

OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADADELTA, OPT_ADAM, OPT_ADAMW = 1, 2, 3, 4, 5, 6
# Hyperparameters each inline rule reads, in the order of the kernel's ``hp`` vector.
OPTIMIZER_RULES: dict[str, tuple[int, tuple[str, ...]]] = {
    "sgd": (OPT_SGD, ("lr", "momentum", "dampening", "weight_decay", "nesterov")),
    "adagrad": (OPT_ADAGRAD, ("lr", "lr_decay", "weight_decay", "eps")),
    "rmsprop": (OPT_RMSPROP, ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")),
    "adadelta": (OPT_ADADELTA, ("lr", "rho", "eps", "weight_decay")),
    "adam": (OPT_ADAM, ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")),
    "adamw": (OPT_ADAMW, ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")),
}

REG_L1, REG_L2, REG_CLIP_NORM, REG_CLIP_VALUE, REG_WEIGHT_DECAY = 1, 2, 3, 4, 5
# Regularizers read their one hyperparameter by these names.
REGULARIZER_RULES: dict[str, tuple[int, str]] = {
    "l1": (REG_L1, "strength"),
    "l2": (REG_L2, "strength"),
    "clip_norm": (REG_CLIP_NORM, "max_norm"),
    "clip_value": (REG_CLIP_VALUE, "clip_value"),
    "weight_decay": (REG_WEIGHT_DECAY, "decay"),
}

SMALL_MATMUL = 4096  # up to this many multiply-adds a plain loop beats a BLAS call

# NumPy error semantics (x / 0 -> inf, no exception checks) let LLVM vectorize the loops.
jit = nb.njit(cache=True, nogil=True, error_model="numpy")
# Helpers of the training loop are inlined into it: tiny networks are dispatch-bound, and around a
# call Numba reference-counts every array the caller holds.
jit_inline = nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")


# ------------------------------------------------------------------------------------ activations
# tanh is the playground's activation and the C library's is a scalar call (about 11 ns); this one
# is plain arithmetic that LLVM vectorizes (about 3 ns) and stays within 4 units in the last place
# of the C library's result: tanh|x| = E / (E + 2) with E = expm1(2|x|) = 2^k (e^r - 1) + (2^k - 1),
# 2|x| = k ln2 + r, |r| <= ln2/2. One polynomial for every |x| (no branch for LLVM to compute
# twice), and no cancellation near 0: there k = 0 and E = e^r - 1 comes straight from its series.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00


@jit_inline
def _expm1_reduced(r):
    """e^r - 1 by its Taylor series to degree 13 (|r| <= ln2/2: error below 1e-17)."""
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r


@jit_inline
def _tanh(x):
    a = abs(x)
    y = 2.0 * min(a, 22.0)  # tanh(22) is 1 in float64
    k = int(y * _INV_LN2 + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    scale = float(np.int64(1) << k)
    e = scale * _expm1_reduced(r) + (scale - 1.0)
    t = e / (e + 2.0)
    t = t if a == a else a  # NaN stays NaN, so divergence shows
    return math.copysign(t, x)


@jit_inline
def _exp(x):
    """math.exp(x), bit for bit, without the C library's slow path below -746, where e^x is 0.0
    and a call took ten times as long (a landscape far from its center meets it at every
    point)."""
    return math.exp(x) if x > -746.0 else (0.0 if x == x else x)


# The scalar sigmoid jitted code calls (array_math.sigmoid is the NumPy form for code outside the
# kernels). Kept apart on purpose: it is typed for one float, and its exp form gives the fast
# path's exact bits, which the conformance check compares with the sigmoid plugin.
@jit
def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + _exp(-x))
    e = _exp(x)
    return e / (1.0 + e)


@jit
def act_value(code, x, a, b, fn):
    """y = f(x) for one element."""
    if code == ACT_LINEAR:
        return x
    if code == ACT_SIGMOID:
        return _sigmoid(x)
    if code == ACT_TANH:
        return _tanh(x)
    if code == ACT_RELU:
        return 0.0 if x <= 0.0 else x
    if code == ACT_LEAKY:
        return x if x > 0.0 else a * x
    if code == ACT_ELU:
        return x if x > 0.0 else a * math.expm1(x)
    if code == ACT_GELU:
        return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
    if code == ACT_SILU:
        return x * _sigmoid(x)
    if code == ACT_SOFTPLUS:
        if a * x > b:
            return x
        return math.log1p(math.exp(a * x)) / a
    return fn(x, a, b)


@jit
def act_deriv(code, x, y, a, b, dfn):
    """dy/dx for one element, given x and y = f(x)."""
    if code == ACT_LINEAR:
        return 1.0
    if code == ACT_SIGMOID:
        return y * (1.0 - y)
    if code == ACT_TANH:
        return 1.0 - y * y
    if code == ACT_RELU:
        return 1.0 if x > 0.0 else 0.0
    if code == ACT_LEAKY:
        return 1.0 if x > 0.0 else a
    if code == ACT_ELU:
        return 1.0 if x > 0.0 else y + a
    if code == ACT_GELU:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))) + x * math.exp(-0.5 * x * x) / math.sqrt(
            2.0 * math.pi
        )
    if code == ACT_SILU:
        s = _sigmoid(x)
        return s * (1.0 + x * (1.0 - s))
    if code == ACT_SOFTPLUS:
        if a * x > b:
            return 1.0
        return _sigmoid(a * x)
    return dfn(x, y, a, b)


# ---------------------------------------------------------------------------------- flat blocks
# The training loop works on flat buffers: an (n, m) block of values is a buffer and an offset,
# element (i, j) at buffer[offset + i * m + j]. Indexing, not array views: Numba builds and
# reference-counts every view (about 30 ns), and a playground step would need about forty.
# Offsets and sizes become unsigned (U) before indexing: Numba then skips its negative-index
# test, and LLVM can vectorize the loops instead of gathering element by element.
U = np.uint64


@jit_inline
def activate(code, a, b, fn, z, zo, y, yo, n, m):
    """y = act(z) on an (n, m) block; softmax works row by row.

    The common activations get their own loops (so they vectorize); the rest go element by
    element through ``act_value``."""
    zo, yo, n, m = U(zo), U(yo), U(n), U(m)
    if code == ACT_SOFTMAX:
        for i in range(n):
            zr = zo + i * m
            yr = yo + i * m
            top = z[zr]
            for j in range(U(1), m):
                top = max(top, z[zr + j])
            total = 0.0
            for j in range(m):
                e = _exp(z[zr + j] - top)
                y[yr + j] = e
                total += e
            for j in range(m):
                y[yr + j] = y[yr + j] / total
    elif code == ACT_TANH:
        for q in range(n * m):
            y[yo + q] = _tanh(z[zo + q])
    elif code == ACT_RELU:
        for q in range(n * m):
            v = z[zo + q]
            y[yo + q] = 0.0 if v <= 0.0 else v  # NaN passes, as in PyTorch
    elif code == ACT_LINEAR:
        for q in range(n * m):
            y[yo + q] = z[zo + q]
    else:
        for q in range(n * m):
            y[yo + q] = act_value(code, z[zo + q], a, b, fn)


@jit_inline
def activate_backward(code, a, b, dfn, z, zo, y, yo, dy, dyo, dz, dzo, n, m):
    """dz = dL/dz from dy = dL/dy on an (n, m) block."""
    zo, yo, dyo, dzo, n, m = U(zo), U(yo), U(dyo), U(dzo), U(n), U(m)
    if code == ACT_SOFTMAX:
        for i in range(n):
            r = i * m
            inner = 0.0
            for j in range(m):
                inner += dy[dyo + r + j] * y[yo + r + j]
            for j in range(m):
                dz[dzo + r + j] = y[yo + r + j] * (dy[dyo + r + j] - inner)
    elif code == ACT_TANH:
        for q in range(n * m):
            v = y[yo + q]
            dz[dzo + q] = dy[dyo + q] * (1.0 - v * v)
    elif code == ACT_RELU:
        for q in range(n * m):
            dz[dzo + q] = dy[dyo + q] if z[zo + q] > 0.0 else 0.0
    elif code == ACT_LINEAR:
        for q in range(n * m):
            dz[dzo + q] = dy[dyo + q]
    else:
        for q in range(n * m):
            dz[dzo + q] = dy[dyo + q] * act_deriv(code, z[zo + q], y[yo + q], a, b, dfn)


@jit_inline
def apply_activation(code, a, b, fn, z, y):
    """y = act(z) on C-contiguous (batch, units) arrays."""
    n, m = z.shape
    activate(code, a, b, fn, z.reshape(n * m), 0, y.reshape(n * m), 0, n, m)


@jit_inline
def activation_backward(code, a, b, dfn, z, y, dy, dz):
    """dz = dL/dz from dy = dL/dy on C-contiguous (batch, units) arrays."""
    n, m = z.shape
    activate_backward(
        code, a, b, dfn, z.reshape(n * m), 0, y.reshape(n * m), 0, dy.reshape(n * m), 0,
        dz.reshape(n * m), 0, n, m,
    )  # fmt: skip


# ------------------------------------------------------------------------------- matrix products
# Above ``blas_above`` multiply-adds BLAS does the work, out of line. ``blas_above`` None means
# plain loops only, decided by type so the BLAS branch is compiled out: a call in the loop, even
# one never taken, makes Numba reference-count the arrays around it (5% of a playground step).


def use_blas(blas_above, size):
    """Whether a product of ``size`` multiply-adds goes to BLAS."""
    return blas_above is not None and size > blas_above


@overload(use_blas)
def _use_blas_typed(blas_above, size):
    if isinstance(blas_above, nb.types.NoneType):
        return lambda blas_above, size: False
    return lambda blas_above, size: size > blas_above


@jit
def _blas_nn(x, xo, w, wo, out, oo, n, k, m):
    xm = x[xo : xo + n * k].reshape(n, k)
    out[oo : oo + n * m].reshape(n, m)[:, :] = np.dot(xm, w[wo : wo + k * m].reshape(k, m))


@jit
def _blas_tn(x, xo, d, do, out, oo, n, k, m):
    xm = x[xo : xo + n * k].reshape(n, k)
    out[oo : oo + k * m].reshape(k, m)[:, :] = np.dot(xm.T, d[do : do + n * m].reshape(n, m))


@jit
def _blas_nt(d, do, w, wo, out, oo, n, k, m):
    dm = d[do : do + n * m].reshape(n, m)
    out[oo : oo + n * k].reshape(n, k)[:, :] = np.dot(dm, w[wo : wo + k * m].reshape(k, m).T)


@jit_inline
def matmul(x, xo, w, wo, out, oo, n, k, m, blas_above):
    """out = x @ w for blocks x (n, k), w (k, m)."""
    if use_blas(blas_above, n * k * m):
        _blas_nn(x, xo, w, wo, out, oo, n, k, m)
        return
    xo, wo, oo, n, k, m = U(xo), U(wo), U(oo), U(n), U(k), U(m)
    for i in range(n):
        r = oo + i * m
        for j in range(m):
            out[r + j] = 0.0
        for p in range(k):
            xv = x[xo + i * k + p]
            for j in range(m):
                out[r + j] += xv * w[wo + p * m + j]


@jit_inline
def matmul_tn(x, xo, d, do, out, oo, n, k, m, blas_above):
    """out = x.T @ d for blocks x (n, k), d (n, m): a weight gradient."""
    if use_blas(blas_above, n * k * m):
        _blas_tn(x, xo, d, do, out, oo, n, k, m)
        return
    xo, do, oo, n, k, m = U(xo), U(do), U(oo), U(n), U(k), U(m)
    for q in range(k * m):
        out[oo + q] = 0.0
    for i in range(n):
        for p in range(k):
            xv = x[xo + i * k + p]
            for j in range(m):
                out[oo + p * m + j] += xv * d[do + i * m + j]


@jit_inline
def matmul_nt(d, do, w, wo, out, oo, n, k, m, blas_above):
    """out = d @ w.T for blocks d (n, m), w (k, m): an input gradient."""
    if use_blas(blas_above, n * k * m):
        _blas_nt(d, do, w, wo, out, oo, n, k, m)
        return
    do, wo, oo, n, k, m = U(do), U(wo), U(oo), U(n), U(k), U(m)
    for i in range(n):
        for p in range(k):
            acc = 0.0
            for j in range(m):
                acc += d[do + i * m + j] * w[wo + p * m + j]
            out[oo + i * k + p] = acc


@jit_inline
def mm_nn(x, w, out):
    """out = x @ w on C-contiguous matrices."""
    n, k = x.shape
    m = w.shape[1]
    flat_x, flat_w, flat_out = x.reshape(n * k), w.reshape(k * m), out.reshape(n * m)
    matmul(flat_x, 0, flat_w, 0, flat_out, 0, n, k, m, SMALL_MATMUL)


@jit_inline
def add_bias(bias, bo, z, zo, n, m):
    """z[i, j] += bias[j] on an (n, m) block."""
    bo, zo, n, m = U(bo), U(zo), U(n), U(m)
    for i in range(n):
        for j in range(m):
            z[zo + i * m + j] += bias[bo + j]


@jit_inline
def sum_rows(d, do, out, oo, n, m):
    """out[j] = sum over i of d[i, j] (a bias gradient), summed in row order."""
    do, oo, n, m = U(do), U(oo), U(n), U(m)
    for j in range(m):
        out[oo + j] = 0.0
    for i in range(n):
        for j in range(m):
            out[oo + j] += d[do + i * m + j]


@jit_inline
def copy_block(src, so, dst, do, count):
    so, do, count = U(so), U(do), U(count)
    for q in range(count):
        dst[do + q] = src[so + q]


# ---------------------------------------------------------------------------------------- layers
# net = (w_off, b_off, n_in, n_out, act_code, act_a, act_b): one entry per layer; w_off = -1 for a
# layer without weights (an activation layer, n_in == n_out). Layer l maps a block x (n, n_in[l])
# to its pre-activation z and activation y (n, n_out[l]).


@jit_inline
def layer_spec(net, l, blas_above):
    """Layer l's numbers as a tuple of scalars, (w_off, b_off, n_in, n_out, act, act_a, act_b,
    blas_above), for the layer functions: unpacking ``net`` inside them would reference-count
    seven arrays per call, a third of a playground step's time. ``blas_above``: see matmul."""
    return (net[0][l], net[1][l], net[2][l], net[3][l], net[4][l], net[5][l], net[6][l], blas_above)


@jit_inline
def forward_layer(spec, theta, x, xo, z, zo, y, yo, n, fn):
    """z = x @ W + b (or z = x), y = act(z) for the layer ``spec`` (from ``layer_spec``)."""
    w_off, b_off, k, m, act, act_a, act_b, blas_above = spec
    if w_off >= 0:
        matmul(x, xo, theta, w_off, z, zo, n, k, m, blas_above)
        if b_off >= 0:
            add_bias(theta, b_off, z, zo, n, m)
    else:
        copy_block(x, xo, z, zo, n * m)
    activate(act, act_a, act_b, fn, z, zo, y, yo, n, m)


@jit
def forward_all(net, theta, acts, pre, stride, n, fn, blas_above):
    """Every layer's forward for n rows in ``acts`` (row k of ``stride`` values holds layer k's
    input, the last row the output): one call, so the function argument is unboxed once."""
    for k in range(len(net[0])):
        spec = layer_spec(net, k, blas_above)
        o = k * stride
        forward_layer(spec, theta, acts, o, pre, o, acts, o + stride, n, fn)


@jit_inline
def backward_layer(
    spec, theta, x, xo, z, zo, y, yo, dy, dyo, dz, dzo, dx, dxo, n, grad, dfn, through_act,
    need_dx,
):  # fmt: skip
    """From dy = dL/dy: parameter gradients into ``grad`` and dL/dx into ``dx``.

    ``through_act`` False means dy already is dL/dz (softmax fused with cross-entropy)."""
    w_off, b_off, k, m, act, act_a, act_b, blas_above = spec
    if through_act:
        activate_backward(act, act_a, act_b, dfn, z, zo, y, yo, dy, dyo, dz, dzo, n, m)
    else:
        copy_block(dy, dyo, dz, dzo, n * m)
    if w_off >= 0:
        matmul_tn(x, xo, dz, dzo, grad, w_off, n, k, m, blas_above)
        if b_off >= 0:
            sum_rows(dz, dzo, grad, b_off, n, m)
        if need_dx:
            matmul_nt(dz, dzo, theta, w_off, dx, dxo, n, k, m, blas_above)
    elif need_dx:
        copy_block(dz, dzo, dx, dxo, n * m)


# ----------------------------------------------------------------------------------------- losses


@jit_inline
def loss_and_grad(code, p, t, hp0, dp):
    """Loss value (PyTorch definition, mean reduction) and dL/dp written into ``dp``.

    For LOSS_CE_PROBS ``dp`` receives dL/dz of the softmax before it, (p - t) / batch."""
    n, m = p.shape
    total = 0.0
    if code == LOSS_MSE or code == LOSS_MAE or code == LOSS_HUBER:
        scale = 1.0 / (n * m)
        for i in range(n):
            for j in range(m):
                d = p[i, j] - t[i, j]
                if code == LOSS_MSE:
                    total += d * d
                    dp[i, j] = 2.0 * d * scale
                elif code == LOSS_MAE:
                    total += abs(d)
                    dp[i, j] = (1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) * scale
                elif abs(d) < hp0:
                    total += 0.5 * d * d
                    dp[i, j] = d * scale
                else:
                    total += hp0 * (abs(d) - 0.5 * hp0)
                    dp[i, j] = (hp0 if d > 0 else -hp0) * scale
        return total * scale
    if code == LOSS_BCE or code == LOSS_BCE_LOGITS or code == LOSS_HINGE:
        scale = 1.0 / (n * m)
        for i in range(n):
            for j in range(m):
                q = p[i, j]
                y = t[i, j]
                if code == LOSS_BCE:
                    total -= y * max(math.log(q), -100.0) + (1.0 - y) * max(math.log1p(-q), -100.0)
                    dp[i, j] = (q - y) / max((1.0 - q) * q, 1e-12) * scale
                elif code == LOSS_BCE_LOGITS:
                    total += max(q, 0.0) - q * y + math.log1p(_exp(-abs(q)))
                    dp[i, j] = (_sigmoid(q) - y) * scale
                else:
                    margin = hp0 - y * q
                    if margin > 0.0:
                        total += margin
                        dp[i, j] = -y * scale
                    else:
                        dp[i, j] = 0.0
        return total * scale
    scale = 1.0 / n
    if code == LOSS_CE_LOGITS:
        for i in range(n):
            top = p[i, 0]
            for j in range(1, m):
                top = max(top, p[i, j])
            s = 0.0
            for j in range(m):  # e^(z - max) kept in dp: one exp an element
                e = _exp(p[i, j] - top)
                dp[i, j] = e
                s += e
            lse = top + math.log(s)
            weight = _row_sum(t, i) * scale / s
            for j in range(m):
                total += t[i, j] * (lse - p[i, j])
                dp[i, j] = dp[i, j] * weight - t[i, j] * scale
        return total * scale
    if code == LOSS_CE_PROBS:
        for i in range(n):
            for j in range(m):
                if t[i, j] != 0.0:
                    total -= t[i, j] * max(math.log(p[i, j]), -100.0)
                dp[i, j] = (p[i, j] * _row_sum(t, i) - t[i, j]) * scale
        return total * scale
    # LOSS_MULTI_MARGIN: PyTorch MultiMarginLoss(p=1), target class = argmax of the one-hot row.
    for i in range(n):
        cls = 0
        for j in range(1, m):
            if t[i, j] > t[i, cls]:
                cls = j
        for j in range(m):
            dp[i, j] = 0.0
        for j in range(m):
            if j != cls:
                margin = hp0 - p[i, cls] + p[i, j]
                if margin > 0.0:
                    total += margin / m
                    dp[i, j] += scale / m
                    dp[i, cls] -= scale / m
    return total * scale


@jit_inline
def _row_sum(t, i):
    s = 0.0
    for j in range(t.shape[1]):
        s += t[i, j]
    return s


# ------------------------------------------------------------------------- regularizers, updates


@jit_inline
def add_penalties(reg_code, reg_val, theta, mask, grad):
    """Add loss-stage penalties' gradients to ``grad``; return the penalty value."""
    total = 0.0
    for r in range(reg_code.shape[0]):
        c = reg_code[r]
        s = reg_val[r]
        if c == REG_L1:
            for i in range(theta.shape[0]):
                w = theta[i] * mask[i]
                total += s * abs(w)
                grad[i] += s * (1.0 if w > 0 else (-1.0 if w < 0 else 0.0))
        elif c == REG_L2:
            for i in range(theta.shape[0]):
                w = theta[i] * mask[i]
                total += s * w * w
                grad[i] += 2.0 * s * w
    return total


@jit_inline
def transform_gradient(reg_code, reg_val, grad):
    """Gradient-stage regularizers: clipping by global norm or by value, in listed order."""
    for r in range(reg_code.shape[0]):
        c = reg_code[r]
        v = reg_val[r]
        if c == REG_CLIP_NORM:
            sq = 0.0
            for i in range(grad.shape[0]):
                sq += grad[i] * grad[i]
            scale = v / (math.sqrt(sq) + 1e-6)
            if scale < 1.0:
                for i in range(grad.shape[0]):
                    grad[i] *= scale
        elif c == REG_CLIP_VALUE:
            for i in range(grad.shape[0]):
                grad[i] = min(max(grad[i], -v), v)


@jit_inline
def _sgd(hp, t, buf, theta, grad, update):
    lr, mom, damp, wd, nesterov = hp[0], hp[1], hp[2], hp[3], hp[4] != 0.0
    n = theta.shape[0]
    if mom == 0.0:
        for i in range(n):
            update[i] = -lr * (grad[i] + wd * theta[i])
    elif t == 1.0:
        for i in range(n):
            g = grad[i] + wd * theta[i]
            buf[i] = g
            update[i] = -lr * (g + mom * g if nesterov else g)
    elif nesterov:
        for i in range(n):
            g = grad[i] + wd * theta[i]
            buf[i] = mom * buf[i] + (1.0 - damp) * g
            update[i] = -lr * (g + mom * buf[i])
    else:
        for i in range(n):
            g = grad[i] + wd * theta[i]
            buf[i] = mom * buf[i] + (1.0 - damp) * g
            update[i] = -lr * buf[i]


@jit_inline
def _adagrad(hp, t, acc, theta, grad, update):
    lr, lr_decay, wd, eps = hp[0], hp[1], hp[2], hp[3]
    clr = lr / (1.0 + (t - 1.0) * lr_decay)
    for i in range(theta.shape[0]):
        g = grad[i] + wd * theta[i]
        acc[i] += g * g
        update[i] = -clr * g / (math.sqrt(acc[i]) + eps)


@jit_inline
def _rmsprop(hp, sq, buf, gavg, theta, grad, update):
    lr, alpha, eps, wd, mom, centered = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5] != 0.0
    for i in range(theta.shape[0]):
        g = grad[i] + wd * theta[i]
        sq[i] = alpha * sq[i] + (1.0 - alpha) * g * g
        if centered:
            gavg[i] = alpha * gavg[i] + (1.0 - alpha) * g
            update[i] = g / (math.sqrt(sq[i] - gavg[i] * gavg[i]) + eps)
        else:
            update[i] = g / (math.sqrt(sq[i]) + eps)
    if mom > 0.0:
        for i in range(theta.shape[0]):
            buf[i] = mom * buf[i] + update[i]
            update[i] = -lr * buf[i]
    else:
        for i in range(theta.shape[0]):
            update[i] = -lr * update[i]


@jit_inline
def _adadelta(hp, sq, acc, theta, grad, update):
    lr, rho, eps, wd = hp[0], hp[1], hp[2], hp[3]
    for i in range(theta.shape[0]):
        g = grad[i] + wd * theta[i]
        sq[i] = rho * sq[i] + (1.0 - rho) * g * g
        delta = math.sqrt(acc[i] + eps) / math.sqrt(sq[i] + eps) * g
        acc[i] = rho * acc[i] + (1.0 - rho) * delta * delta
        update[i] = -lr * delta


@jit_inline
def _adam(hp, t, decoupled, m, v, vmax, theta, grad, update):
    """Adam (L2 added to the gradient) or AdamW (decoupled shrink), branch-free inside loops."""
    lr, b1, b2, eps, wd, amsgrad = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5] != 0.0
    step_size = lr / (1.0 - b1**t)
    bc2_sqrt = math.sqrt(1.0 - b2**t)
    n = theta.shape[0]
    if decoupled:
        for i in range(n):
            update[i] = -lr * wd * theta[i]
    else:
        for i in range(n):
            update[i] = 0.0
    l2 = 0.0 if decoupled else wd
    for i in range(n):
        g = grad[i] + l2 * theta[i]
        m[i] = b1 * m[i] + (1.0 - b1) * g
        v[i] = b2 * v[i] + (1.0 - b2) * g * g
    if amsgrad:
        for i in range(n):
            vmax[i] = max(vmax[i], v[i])
            update[i] -= step_size * m[i] / (math.sqrt(vmax[i]) / bc2_sqrt + eps)
    else:
        for i in range(n):
            update[i] -= step_size * m[i] / (math.sqrt(v[i]) / bc2_sqrt + eps)


@jit_inline
def optimizer_step(code, hp, step, slots, theta, grad, update, mask, reg_code, reg_val):
    """One PyTorch-rule update: writes ``update``, applies it to theta, advances ``step``.

    ``slots`` rows are the optimizer's state arrays in its declared ``inline_state`` order."""
    step[0] += 1.0
    t = step[0]
    if code == OPT_SGD:
        _sgd(hp, t, slots[0], theta, grad, update)
    elif code == OPT_ADAGRAD:
        _adagrad(hp, t, slots[0], theta, grad, update)
    elif code == OPT_RMSPROP:
        _rmsprop(hp, slots[0], slots[1], slots[2], theta, grad, update)
    elif code == OPT_ADADELTA:
        _adadelta(hp, slots[0], slots[1], theta, grad, update)
    else:
        _adam(hp, t, code == OPT_ADAMW, slots[0], slots[1], slots[2], theta, grad, update)
    lr = hp[0]
    n = theta.shape[0]
    for r in range(reg_code.shape[0]):
        if reg_code[r] == REG_WEIGHT_DECAY:
            for i in range(n):
                update[i] -= lr * reg_val[r] * theta[i] * mask[i]
    for i in range(n):
        theta[i] += update[i]


# ---------------------------------------------------------------------------------- fused steps


@jit_inline
def gather_rows(src, order, start, count, out, oo):
    """Block (count, src.shape[1]) at out[oo:] = src[order[start + i]]: one minibatch in the
    epoch's order."""
    oo, count, m = U(oo), U(count), U(src.shape[1])
    for i in range(count):
        row = order[start + i]
        r = oo + i * m
        for j in range(m):
            out[r + j] = src[row, j]


@jit
def train_steps(
    net,
    theta,
    grad,
    update,
    mask,
    x_all,
    t_all,
    order,
    batch_start,
    batch_size,
    lrs,
    loss_code,
    loss_hp,
    fuse_softmax_ce,
    opt_code,
    opt_hp,
    step,
    slots,
    reg_code,
    reg_val,
    acts,
    pre,
    dacts,
    dz,
    targets,
    fn,
    dfn,
    losses,
    outputs,
    snap_at,
    snaps,
    blas_above,
):
    """Run ``len(batch_start)`` whole training steps in one call; per-step loss into ``losses``.

    Unless ``outputs`` is empty, each step's network outputs (before its update) go into it at
    the batch's positions in ``order`` (m values a position): an epoch's record computes its
    training metrics from them, with no second pass over the data.

    After step ``snap_at[j]`` (ascending) the parameters, gradient and update are copied into
    ``snaps[j, 0..2]``, for state recorders.
    ``blas_above``: see matmul.

    Flat buffers with one row of ``stride = len(dz)`` values per layer: ``acts`` holds the batch
    (row 0) and each layer's activation (row l + 1), ``pre`` the pre-activations, ``dacts`` the
    gradients with respect to ``acts``. Stops early (returning the number of steps done) when
    the loss stops being finite."""
    n_in, n_out = net[2], net[3]
    n_layers = n_in.shape[0]
    last = n_layers - 1
    m = n_out[last]
    stride = dz.shape[0]
    out = (last + 1) * stride
    j = 0  # the next snapshot
    for s in range(batch_start.shape[0]):
        bs = batch_size[s]
        gather_rows(x_all, order, batch_start[s], bs, acts, 0)
        gather_rows(t_all, order, batch_start[s], bs, targets, 0)
        for l in range(n_layers):
            o = l * stride
            forward_layer(
                layer_spec(net, l, blas_above), theta, acts, o, pre, o, acts, o + stride, bs, fn
            )
        value = loss_and_grad(
            loss_code, acts[out : out + bs * m].reshape(bs, m), targets[: bs * m].reshape(bs, m),
            loss_hp, dacts[out : out + bs * m].reshape(bs, m),
        )  # fmt: skip
        if outputs.shape[0] > 0:
            copy_block(acts, out, outputs, batch_start[s] * m, bs * m)
        for l in range(last, -1, -1):
            o = l * stride
            through = not (fuse_softmax_ce and l == last)
            spec = layer_spec(net, l, blas_above)
            backward_layer(
                spec, theta, acts, o, pre, o, acts, o + stride, dacts, o + stride, dz, 0, dacts, o,
                bs, grad, dfn, through, l > 0,
            )  # fmt: skip
        losses[s] = value
        if not math.isfinite(value):
            return s
        add_penalties(reg_code, reg_val, theta, mask, grad)
        transform_gradient(reg_code, reg_val, grad)
        opt_hp[0] = lrs[s]
        optimizer_step(opt_code, opt_hp, step, slots, theta, grad, update, mask, reg_code, reg_val)
        if j < snap_at.shape[0] and j < snaps.shape[0] and snap_at[j] == s:
            for i in range(theta.shape[0]):
                snaps[j, 0, i] = theta[i]
                snaps[j, 1, i] = grad[i]
                snaps[j, 2, i] = update[i]
            j += 1
    return batch_start.shape[0]


@nb.cfunc("float64(float64, float64, float64)", cache=True)
def _no_function(x, a, b):
    return x


@nb.cfunc("float64(float64, float64, float64, float64)", cache=True)
def _no_derivative(x, y, a, b):
    return 1.0


NO_FUNCTION = _no_function
NO_DERIVATIVE = _no_derivative
