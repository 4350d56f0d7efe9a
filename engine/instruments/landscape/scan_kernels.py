"""The compiled scan: the loss at many points of a plane, on every core (see ``PlaneLoss``
in plane_loss.py for the two facts they use).

Numba's disk cache keys these kernels on this file alone, though they compile in code from
engine/compute/kernels.py: after changing that file, delete this file's cache
(scan_kernels.*; the test comparing the compiled and generic paths notices a stale copy)."""

from __future__ import annotations

import numba as nb
import numpy as np

from gradient_lab.engine.compute import kernels

# OpenBLAS runs a matrix product on one thread when m * n * k <= 65536 * 4; the compiled scan
# feeds it row blocks below that size so its two threads never compete for BLAS threads.
SINGLE_THREAD_GEMM = 262_144


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _finish(l0, net, theta, nr, zb, yb, fn, loss_code, t, hp0, dp):
    """Layers l0 .. last (layer l0's pre-activation already in zb[l0 % 2]) and the loss of the
    block; the engine's own activation, layer and loss code, so the definitions cannot drift."""
    _, _, n_in, n_out, act, act_a, act_b = net
    n_layers = n_in.shape[0]
    zf = zb.reshape(zb.size)
    yf = yb.reshape(yb.size)
    stride = zb.shape[1]
    o = (l0 % 2) * stride
    kernels.activate(act[l0], act_a[l0], act_b[l0], fn, zf, o, yf, o, nr, n_out[l0])
    for l in range(l0 + 1, n_layers):
        xo = ((l - 1) % 2) * stride
        o = (l % 2) * stride
        kernels.forward_layer(
            kernels.layer_spec(net, l, kernels.SMALL_MATMUL), theta, yf, xo, zf, o, yf, o, nr, fn
        )
    m = n_out[n_layers - 1]
    pred = yb[(n_layers - 1) % 2, : nr * m].reshape(nr, m)
    return kernels.loss_and_grad(loss_code, pred, t, hp0, dp[:nr])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _point_loss(net, theta, a, b, p0, p1, p2, t, loss_code, hp0, fn, rows, zb, yb, dp):
    """Mean loss at one point whose parameters are ``theta``: the first layer from the three
    products, the rest through ``_finish``, block by block."""
    b_off, n_out = net[1], net[3]
    n = p0.shape[0]
    m0 = n_out[0]
    total = 0.0
    for r0 in range(0, n, rows):
        nr = min(rows, n - r0)
        z = zb[0, : nr * m0].reshape(nr, m0)
        for i in range(nr):
            for j in range(m0):
                z[i, j] = p0[r0 + i, j] + a * p1[r0 + i, j] + b * p2[r0 + i, j]
        if b_off[0] >= 0:
            for i in range(nr):
                for j in range(m0):
                    z[i, j] += theta[b_off[0] + j]
        first = np.int64(0)  # a typed value, not a literal: one compiled _finish serves both
        total += (
            _finish(first, net, theta, nr, zb, yb, fn, loss_code, t[r0 : r0 + nr], hp0, dp) * nr
        )
    return total / n


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _points_share(c, chunks, net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work, out):
    """Thread c's contiguous share of the points."""
    th, zbuf, ybuf, dpbuf = work
    theta = th[c]
    n_points = a_vals.shape[0]
    for q in range(c * n_points // chunks, (c + 1) * n_points // chunks):
        a = a_vals[q]
        b = b_vals[q]
        for k in range(theta.shape[0]):
            theta[k] = center[k] + a * d1[k] + b * d2[k]
        out[q] = _point_loss(
            net, theta, a, b, p[0], p[1], p[2], t, loss[0], loss[1], fn, rows, zbuf[c], ybuf[c],
            dpbuf[c],
        )  # fmt: skip


@nb.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def plane_losses(net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work, out):
    """out[q] = loss at center + a_vals[q] d1 + b_vals[q] d2, where p = X times the first layer's
    W of center, d1 and d2. Each thread takes a share of the points with its own buffers (work:
    one leading row per thread; allocating inside the parallel loop would be hoisted out of it
    and shared)."""
    chunks = work[0].shape[0]
    for c in nb.prange(chunks):
        _points_share(c, chunks, net, center, d1, d2, p, t, a_vals, b_vals, loss, fn, rows, work,
                      out)  # fmt: skip


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_weights(center, d1, d2, w_off, b_off, b, wb, db, cb, fb):
    """The second layer along grid row b: W + b E (wb) moving by D (db) per unit of a; the same
    for its bias (cb, fb)."""
    m0, m1 = wb.shape
    for i in range(m0):
        for j in range(m1):
            k = w_off + i * m1 + j
            wb[i, j] = center[k] + b * d2[k]
            db[i, j] = d1[k]
    for j in range(m1):
        cb[j] = center[b_off + j] + b * d2[b_off + j] if b_off >= 0 else 0.0
        fb[j] = d1[b_off + j] if b_off >= 0 else 0.0


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_inputs(p0, p1, p2, center, d1, d2, b_off, r0, nr, b, q, r):
    """Samples r0 .. r0 + nr: the first pre-activation along grid row b is q + a r."""
    m0 = q.shape[1]
    for i in range(nr):
        for j in range(m0):
            q[i, j] = p0[r0 + i, j] + b * p2[r0 + i, j]
            r[i, j] = p1[r0 + i, j]
    if b_off >= 0:
        for i in range(nr):
            for j in range(m0):
                q[i, j] += center[b_off + j] + b * d2[b_off + j]
                r[i, j] += d1[b_off + j]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _plan_flips(q, r, nr, a_vals, taken, n_t, slope, side, qm, rm, flips, counts):
    """Each unit's side at the row's first point (side, and q, r scaled by its slope there) and
    the units that change side later, bucketed by the point where they do: afterwards
    flips[2, counts[k - 1] : counts[k]] are the flat indices changing at taken point k.

    q + a r > 0 is monotone in a even in floating point, so a binary search over the points finds
    exactly the point where the direct test would first differ."""
    when, what, order = flips[0], flips[1], flips[2]
    a0 = a_vals[taken[0]]
    a_end = a_vals[taken[n_t - 1]]
    for k in range(n_t + 1):
        counts[k] = 0
    n_flip = 0
    m0 = q.shape[1]
    for i in range(nr):
        for j in range(m0):
            qi = q[i, j]
            ri = r[i, j]
            on = qi + a0 * ri > 0.0
            side[i, j] = 1.0 if on else 0.0
            coef = 1.0 if on else slope
            qm[i, j] = qi * coef
            rm[i, j] = ri * coef
            if slope != 1.0 and (qi + a_end * ri > 0.0) != on:
                lo = 1
                hi = n_t - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if (qi + a_vals[taken[mid]] * ri > 0.0) != on:
                        hi = mid
                    else:
                        lo = mid + 1
                when[n_flip] = lo
                what[n_flip] = i * m0 + j
                counts[lo] += 1
                n_flip += 1
    total = 0
    for k in range(n_t + 1):
        count = counts[k]
        counts[k] = total
        total += count
    for f in range(n_flip):
        order[counts[when[f]]] = what[f]
        counts[when[f]] += 1


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _row_sums(qm, rm, wb, db, nr, u, v, x2, tmp):
    """U = qm wb, V = rm wb + qm db, X = rm db over the active units at the row's first point
    (in slices small enough for BLAS to stay on the calling thread)."""
    step = max(1, SINGLE_THREAD_GEMM // (wb.shape[0] * wb.shape[1]))
    for i0 in range(0, nr, step):
        i1 = min(nr, i0 + step)
        kernels.mm_nn(qm[i0:i1], wb, u[i0:i1])
        kernels.mm_nn(rm[i0:i1], wb, v[i0:i1])
        kernels.mm_nn(qm[i0:i1], db, tmp[i0:i1])
        kernels.mm_nn(rm[i0:i1], db, x2[i0:i1])
    for i in range(nr):
        for h in range(v.shape[1]):
            v[i, h] += tmp[i, h]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _flip(i, j, s, q, r, wb, db, u, v, x2):
    """Unit j of sample i changes side: its share of U, V, X changes by s times its terms."""
    sq = s * q[i, j]
    sr = s * r[i, j]
    for h in range(u.shape[1]):
        w = wb[j, h]
        d = db[j, h]
        u[i, h] += sq * w
        v[i, h] += sr * w + sq * d
        x2[i, h] += sr * d


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _taken(take, row, taken):
    """The indices of the points wanted in this row, ascending; their count."""
    n_t = 0
    for k in range(take.shape[1]):
        if take[row, k]:
            taken[n_t] = k
            n_t += 1
    return n_t


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_block(r0, nr, b, taken, n_t, slope, geometry, loss, fn, work, c, partial_row):
    """One block of samples along one grid row: plan the side changes, build U, V, X, then at
    each point apply its changes, assemble the second pre-activation and finish the network."""
    (net, tail_net, center, d1, d2, p, t, a_vals) = geometry
    mats, vecs, tails, blk0, blk1, flips, points, zbuf, ybuf, dpbuf = work
    m0 = net[3][0]
    m1 = net[3][1]
    q, r, qm, rm, side = blk0[c, 0], blk0[c, 1], blk0[c, 2], blk0[c, 3], blk0[c, 4]
    u, v, x2, tmp = blk1[c, 0], blk1[c, 1], blk1[c, 2], blk1[c, 3]
    wb, db, cb, fb = mats[c, 0], mats[c, 1], vecs[c, 0], vecs[c, 1]
    counts, order = points[c, 1], flips[c, 2]
    _row_inputs(p[0], p[1], p[2], center, d1, d2, net[1][0], r0, nr, b, q, r)
    _plan_flips(q, r, nr, a_vals, taken, n_t, slope, side, qm, rm, flips[c], counts)
    _row_sums(qm, rm, wb, db, nr, u, v, x2, tmp)
    pos = 0
    for k in range(n_t):
        a = a_vals[taken[k]]
        while pos < counts[k]:
            i = order[pos] // m0
            j = order[pos] - i * m0
            pos += 1
            s = (1.0 - slope) if side[i, j] == 0.0 else (slope - 1.0)
            side[i, j] = 1.0 - side[i, j]
            _flip(i, j, s, q, r, wb, db, u, v, x2)
        z = zbuf[c, 1, : nr * m1].reshape(nr, m1)
        for i in range(nr):
            for h in range(m1):
                z[i, h] = u[i, h] + a * (v[i, h] + a * x2[i, h]) + cb[h] + a * fb[h]
        value = _finish(
            np.int64(1), tail_net, tails[c, k], nr, zbuf[c], ybuf[c], fn, loss[0],
            t[r0 : r0 + nr], loss[1], dpbuf[c],
        )  # fmt: skip
        partial_row[taken[k]] += value * nr


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sweep_share(c, chunks, tail_start, geometry, b_vals, take, slope, loss, fn, rows, work,
                 partial):  # fmt: skip
    """Thread c's contiguous share of the samples, along every row."""
    net, _, center, d1, d2, _, t, a_vals = geometry
    mats, vecs, tails, points = work[0], work[1], work[2], work[6]
    n = t.shape[0]
    taken = points[c, 0]
    lo, hi = c * n // chunks, (c + 1) * n // chunks
    for row in range(b_vals.shape[0]):
        n_t = _taken(take, row, taken)
        if n_t == 0:
            continue
        b = b_vals[row]
        _row_weights(center, d1, d2, net[0][1], net[1][1], b, mats[c, 0], mats[c, 1], vecs[c, 0],
                     vecs[c, 1])  # fmt: skip
        for k in range(n_t):
            a = a_vals[taken[k]]
            for i in range(tails.shape[2]):
                j = tail_start + i
                tails[c, k, i] = center[j] + a * d1[j] + b * d2[j]
        for r0 in range(lo, hi, rows):
            _sweep_block(r0, min(rows, hi - r0), b, taken, n_t, slope, geometry, loss, fn, work,
                         c, partial[c, row])  # fmt: skip


@nb.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def piecewise_losses(tail_start, geometry, b_vals, take, slope, loss, fn, rows, work, partial):
    """partial[c, j, i] = thread c's share (its samples' summed loss) at a_vals[i], b_vals[j] for
    every take[j, i]; a_vals ascending. See PlaneLoss for the row sweep. Each thread takes a
    contiguous share of the samples, so every row keeps every core busy."""
    chunks = partial.shape[0]
    net, tail_net, center, d1, d2, p, t, a_vals = geometry  # a parallel loop takes no nesting
    for c in nb.prange(chunks):
        plane = (net, tail_net, center, d1, d2, p, t, a_vals)
        _sweep_share(c, chunks, tail_start, plane, b_vals, take, slope, loss, fn, rows, work,
                     partial)  # fmt: skip
