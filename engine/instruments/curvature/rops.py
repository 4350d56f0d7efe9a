"""Pearlmutter's R-operator, one differentiable step at a time: each op runs the plain
forward and backward passes once, then an R-forward and R-backward pass per block of
directions, writing the Hessian products of its own weights."""

from __future__ import annotations

import numpy as np

from gradient_lab.engine.instruments.curvature.derivatives import Array, second_derivative
from gradient_lab.engine.model import Model, Slot
from gradient_lab.engine.plugin_api import Activation


class Block:
    """k directions in parameter space and their Hessian products, addressed by slot."""

    def __init__(self, directions: Array) -> None:
        self.directions = directions
        self.out = np.zeros_like(directions)

    def direction(self, slot: Slot) -> Array:
        part = self.directions[:, slot.offset : slot.offset + slot.size]
        return part.reshape((len(part), *slot.shape))

    def put(self, slot: Slot, value: Array) -> None:
        self.out[:, slot.offset : slot.offset + slot.size] = value.reshape(len(value), -1)


def _param(theta: Array, slot: Slot) -> Array:
    return np.asarray(Model.view(theta, slot), dtype=np.float64)


def _lead(v: Array, ndim: int) -> Array:
    """A per-feature direction block (k, F) shaped to broadcast over (k, batch, ..., F)."""
    return v.reshape((len(v),) + (1,) * (ndim - 2) + v.shape[1:])


def _times(x: Array, m: Array) -> Array:
    """x (..., i) times each of m's k matrices (k, i, j): (k, ..., j)."""
    flat = x.reshape(-1, x.shape[-1]) @ m
    return flat.reshape((len(m), *x.shape[:-1], m.shape[-1]))


class Op:
    """One differentiable step. The plain passes run once per theta and keep what the R-passes
    reuse for every block of directions. ``None`` stands for a zero R-value (nothing upstream
    depends on theta), so layers before the first weight cost nothing. The base is the
    identity."""

    has_params = False
    input_needed = True  # False for the first op with weights: nothing upstream to feed

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, gy: Array) -> Array:
        return gy

    def rforward(self, rx: Array | None, d: Block) -> Array | None:
        return rx

    def rbackward(self, rgy: Array, d: Block) -> Array:
        return rgy

    def slots(self) -> list[Slot]:
        """The weights this op reads (so a layer with weights no op knows is refused)."""
        return []


class AffineOp(Op):
    """z = a W + b: R{z} = R{a} W + a V_W + V_b; R{g_W} = R{a}ᵀ g_z + aᵀ R{g_z}, R{g_b} = Σ R{g_z},
    R{g_a} = R{g_z} Wᵀ + g_z V_Wᵀ."""

    has_params = True

    def __init__(self, theta: Array, w: Slot, b: Slot | None) -> None:
        self.w_slot, self.b_slot = w, b
        self.W = _param(theta, w)
        self.b = None if b is None else _param(theta, b)

    def slots(self) -> list[Slot]:
        return [self.w_slot] if self.b_slot is None else [self.w_slot, self.b_slot]

    def forward(self, a: Array) -> Array:
        self.a = a
        z = a @ self.W
        return z if self.b is None else z + self.b

    def backward(self, gz: Array) -> Array:
        self.gz = gz
        return gz @ self.W.T

    def rforward(self, ra: Array | None, d: Block) -> Array | None:
        self.ra = ra
        rz = _times(self.a, d.direction(self.w_slot))
        if self.b_slot is not None:
            rz = rz + _lead(d.direction(self.b_slot), rz.ndim)
        return rz if ra is None else rz + ra @ self.W

    def rbackward(self, rgz: Array, d: Block) -> Array:
        n_in, n_out = self.W.shape
        rgz_rows = rgz.reshape(len(rgz), -1, n_out)
        rg_w = self.a.reshape(-1, n_in).T @ rgz_rows
        if self.ra is not None:
            ra_rows = self.ra.reshape(len(self.ra), -1, n_in)
            rg_w = rg_w + ra_rows.swapaxes(1, 2) @ self.gz.reshape(-1, n_out)
        d.put(self.w_slot, rg_w)
        if self.b_slot is not None:
            d.put(self.b_slot, rgz_rows.sum(axis=1))
        if not self.input_needed:
            return rgz
        return rgz @ self.W.T + _times(self.gz, d.direction(self.w_slot).swapaxes(1, 2))


class ElementwiseOp(Op):
    """y = f(z): R{y} = f' R{z}; R{g_z} = f'' R{z} g_y + f' R{g_y}."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def forward(self, z: Array) -> Array:
        y = self.act.apply(z)
        self.d1 = self.act.gradient(z, y, np.ones_like(z))
        self.d2 = second_derivative(self.act, z, y)
        return y

    def backward(self, gy: Array) -> Array:
        self.gy = gy
        return self.d1 * gy

    def rforward(self, rz: Array | None, d: Block) -> Array | None:
        self.rz = rz
        return None if rz is None else self.d1 * rz

    def rbackward(self, rgy: Array, d: Block) -> Array:
        out = self.d1 * rgy
        return out if self.rz is None else out + self.d2 * self.rz * self.gy


def _row_dot(u: Array, v: Array) -> Array:
    return (u * v).sum(axis=-1, keepdims=True)


class SoftmaxOp(Op):
    """y = softmax(z) by rows: g_z = y (g_y - <y, g_y>), differentiated by the product rule."""

    def __init__(self, act: Activation) -> None:
        self.act = act

    def forward(self, z: Array) -> Array:
        self.y = self.act.apply(z)
        return self.y

    def backward(self, gy: Array) -> Array:
        self.gy, self.c = gy, _row_dot(gy, self.y)
        return self.y * (gy - self.c)

    def rforward(self, rz: Array | None, d: Block) -> Array | None:
        self.ry = None if rz is None else self.y * (rz - _row_dot(self.y, rz))
        return self.ry

    def rbackward(self, rgy: Array, d: Block) -> Array:
        y, ry = self.y, self.ry
        out = y * (rgy - _row_dot(y, rgy))
        if ry is None:
            return out
        return out + ry * (self.gy - self.c) - y * _row_dot(ry, self.gy)


class ReshapeOp(Op):
    """Each sample reshaped to ``sample_shape`` (flatten; dropout in evaluation mode keeps it)."""

    def __init__(self, sample_shape: tuple[int, ...]) -> None:
        self.sample_shape = sample_shape

    def forward(self, x: Array) -> Array:
        self.shape = x.shape
        return x.reshape((len(x), *self.sample_shape))

    def backward(self, gy: Array) -> Array:
        return gy.reshape(self.shape)

    def rforward(self, rx: Array | None, d: Block) -> Array | None:
        return None if rx is None else rx.reshape((len(rx), self.shape[0], *self.sample_shape))

    def rbackward(self, rgy: Array, d: Block) -> Array:
        return rgy.reshape((len(rgy), *self.shape))


class ChannelAffineOp(Op):
    """y = gamma x̂ + beta with x̂ = (x - mean) / sqrt(var + eps): a per-channel affine map
    (channels on axis 1 of the batch) whose scale and shift train, as batch normalization is in
    evaluation mode (on its running statistics)."""

    has_params = True

    def __init__(
        self, theta: Array, gamma: Slot, beta: Slot, mean: Array, var: Array, eps: float
    ) -> None:
        self.gamma_slot, self.beta_slot = gamma, beta
        self.gamma, self.beta = _param(theta, gamma), _param(theta, beta)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.inv_std = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + eps)

    def slots(self) -> list[Slot]:
        return [self.gamma_slot, self.beta_slot]

    def forward(self, x: Array) -> Array:
        self.shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        self.c_inv = self.inv_std.reshape(self.shape)
        self.c_gamma = self.gamma.reshape(self.shape)
        self.x_hat = (x - self.mean.reshape(self.shape)) * self.c_inv
        return self.c_gamma * self.x_hat + self.beta.reshape(self.shape)

    def backward(self, gy: Array) -> Array:
        self.gy = gy
        return gy * self.c_gamma * self.c_inv

    def _directions(self, d: Block, slot: Slot) -> Array:
        """A per-channel direction block (k, C) shaped to broadcast over (k, batch, C, ...)."""
        v = d.direction(slot)
        return v.reshape((len(v), *self.shape))

    def rforward(self, rx: Array | None, d: Block) -> Array | None:
        self.rx = rx
        ry = self._directions(d, self.gamma_slot) * self.x_hat
        ry = ry + self._directions(d, self.beta_slot)
        return ry if rx is None else ry + self.c_gamma * self.c_inv * rx

    def rbackward(self, rgy: Array, d: Block) -> Array:
        axes = (1, *range(3, rgy.ndim))  # all but the direction and channel axes
        rg_gamma = (rgy * self.x_hat).sum(axis=axes)
        if self.rx is not None:
            rg_gamma = rg_gamma + (self.gy * self.c_inv * self.rx).sum(axis=axes)
        d.put(self.gamma_slot, rg_gamma)
        d.put(self.beta_slot, rgy.sum(axis=axes))
        v_gamma = self._directions(d, self.gamma_slot)
        return self.c_inv * (rgy * self.c_gamma + self.gy * v_gamma)


class ResidualOp(Op):
    """y = x + block(x): every pass adds the skip path to the block's."""

    has_params = True

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops

    def slots(self) -> list[Slot]:
        return [slot for op in self.ops for slot in op.slots()]

    def forward(self, x: Array) -> Array:
        h = x
        for op in self.ops:
            h = op.forward(h)
        return x + h

    def backward(self, gy: Array) -> Array:
        g = gy
        for op in reversed(self.ops):
            g = op.backward(g)
        return g + gy

    def rforward(self, rx: Array | None, d: Block) -> Array | None:
        r = rx
        for op in self.ops:
            r = op.rforward(r, d)
        assert r is not None  # the block has weights
        return r if rx is None else r + rx

    def rbackward(self, rgy: Array, d: Block) -> Array:
        r = rgy
        for op in reversed(self.ops):
            r = op.rbackward(r, d)
        return r + rgy
